// Create-to-first-exec through the WorkspaceService, three ways, in one run:
// cold boot (templates off, no pool), template restore (the default), and a
// warm pool hit. Each is shown against the bare-QEMU-boot baseline measured by
// run.ts in the same run, and the two fast paths also against cold.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveConfig, type Config } from '../src/core/config.js';
import { WorkspaceService } from '../src/service/workspaces.js';
import type { Row } from './mcp.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const c = { owner: 'bench' };

async function createToExec(svc: WorkspaceService, name: string): Promise<number> {
  const t0 = performance.now();
  await svc.create(c, { name });
  await svc.exec(c, { workspace_id: name, command: 'true' });
  const ms = performance.now() - t0;
  await svc.destroy(c, { workspace_id: name });
  return ms;
}

async function withService<T>(config: Config, pool: Record<string, unknown>, fn: (svc: WorkspaceService) => Promise<T>): Promise<T> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'islet-bench-pool-'));
  const svc = await WorkspaceService.open(resolveConfig({ storage: { data_dir: dataDir, cache_dir: config.paths.cacheDir }, pool }), { pool: pool.enabled === true });
  try {
    return await fn(svc);
  } finally {
    await svc.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

export async function benchPool(config: Config, n: number, bareMs: number, record: (r: Row) => void): Promise<void> {
  const cold: number[] = [];
  const tmpl: number[] = [];
  const hits: number[] = [];
  await withService(config, { template: false }, async (svc) => {
    for (let i = 0; i < n; i++) cold.push(await createToExec(svc, `cold-${i}`));
  });
  await withService(config, { template: true }, async (svc) => {
    await createToExec(svc, 'warmup'); // builds the template if the cache has none: a one-time cost, not a create's
    for (let i = 0; i < n; i++) tmpl.push(await createToExec(svc, `tmpl-${i}`));
  });
  await withService(config, { enabled: true, target_free: 1, max_size: 1 }, async (svc) => {
    for (let i = 0; i < n; i++) {
      const deadline = Date.now() + 300_000;
      while (svc.pool!.ready < 1) {
        if (Date.now() > deadline) throw new Error('the pool did not refill in 300 s');
        await new Promise((r) => setTimeout(r, 50));
      }
      hits.push(await createToExec(svc, `pool-${i}`));
    }
    if (svc.pool!.stats.hits !== n) throw new Error(`expected ${n} pool hits, got ${svc.pool!.stats.hits}`);
  });
  const [mc, mt, mh] = [median(cold), median(tmpl), median(hits)];
  record({ metric: 'create -> first exec, cold boot (median)', value: mc, unit: 'ms', baseline: bareMs, ratio: mc / bareMs,
    note: 'templates off, no pool; baseline: bare QEMU boot' });
  record({ metric: 'create -> first exec, template restore (median)', value: mt, unit: 'ms', baseline: bareMs, ratio: mt / bareMs,
    note: `${(mc / mt).toFixed(1)}x faster than cold; baseline: bare QEMU boot` });
  record({ metric: 'create -> first exec, warm pool hit (median)', value: mh, unit: 'ms', baseline: bareMs, ratio: mh / bareMs,
    note: `${(mc / mh).toFixed(1)}x faster than cold; baseline: bare QEMU boot` });
  record({ metric: 'template restore vs cold create (speed-up)', value: mc / mt, unit: 'x', note: `cold median ${mc.toFixed(0)} ms / template median ${mt.toFixed(0)} ms` });
  record({ metric: 'warm pool hit vs cold create (speed-up)', value: mc / mh, unit: 'x', note: `cold median ${mc.toFixed(0)} ms / pool median ${mh.toFixed(0)} ms` });
}
