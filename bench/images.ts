// Image sizes: every built image of the catalog (read from the cache, never
// built here), set against agentkernel's published size for the like image
// (src/images/catalog.ts REFERENCE_SIZES) as the baseline. Both in MB
// (10^6 bytes), as agentkernel writes them; `islet image list` shows MiB.
import type { Config } from '../src/core/config.js';
import { listImages, REFERENCE_SIZES } from '../src/images/catalog.js';
import type { Row } from './mcp.js';

const MB = 1e6;

export async function benchImages(config: Config, record: (r: Row) => void): Promise<void> {
  const rows = (await listImages(config)).filter((r) => r.built && r.usedBytes);
  for (const r of rows) {
    const ref = r.referenceMB ?? undefined;
    const value = (r.usedBytes ?? 0) / MB;
    const build = r.buildMs ? `built in ${(r.buildMs / 1000).toFixed(0)} s` : '';
    record({
      metric: `image ${r.name} size`, value, unit: 'MB', baseline: ref, ratio: ref ? value / ref : undefined,
      note: [build, ref ? `vs ${REFERENCE_SIZES[r.name]?.what}` : 'no agentkernel counterpart'].filter(Boolean).join(', '),
    });
  }
  const missing = Object.keys(REFERENCE_SIZES).filter((n) => !rows.some((r) => r.name === n));
  if (missing.length) record({ metric: 'images not built (no size)', value: missing.length, unit: 'images', note: `${missing.join(', ')}: npm run test:images -- NAME` });
}
