// Create-to-first-exec through the WorkspaceService, three ways, in one run:
// cold boot (templates off, no pool), template restore (the default), and a
// warm pool hit. Each is shown against the bare-QEMU-boot baseline measured by
// run.ts in the same run, and the two fast paths also against cold.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveConfig, type Config } from '../src/core/config.js';
import { WorkspaceService } from '../src/service/workspaces.js';
import { setPhaseSink } from '../src/core/phases.js';
import type { Row } from './mcp.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const c = { owner: 'bench' };

/** Per path, one list of [phase, ms since the previous mark] per create (core/phases.ts marks). */
type Marks = Array<Array<[string, number]>>;

async function createToExec(svc: WorkspaceService, name: string, phases?: Marks): Promise<number> {
  const t0 = performance.now();
  const marks: Array<[string, number]> = [];
  let last = t0;
  if (phases) setPhaseSink((label, at) => { marks.push([label, at - last]); last = at; });
  let ms: number;
  try {
    await svc.create(c, { name });
    if (phases) marks.push(['create.return', performance.now() - last]);
    last = performance.now();
    await svc.exec(c, { workspace_id: name, command: 'true' });
    ms = performance.now() - t0;
    marks.push(['exec', performance.now() - last]);
    phases?.push(marks);
  } finally {
    if (phases) setPhaseSink(undefined);
  }
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
  const tmplPhases: Marks = [];
  const hitPhases: Marks = [];
  await withService(config, { template: false }, async (svc) => {
    for (let i = 0; i < n; i++) cold.push(await createToExec(svc, `cold-${i}`));
  });
  await withService(config, { template: true }, async (svc) => {
    await createToExec(svc, 'warmup'); // builds the template if the cache has none: a one-time cost, not a create's
    for (let i = 0; i < n; i++) tmpl.push(await createToExec(svc, `tmpl-${i}`, tmplPhases));
  });
  await withService(config, { enabled: true, target_free: 1, max_size: 1 }, async (svc) => {
    for (let i = 0; i < n; i++) {
      const deadline = Date.now() + 300_000;
      while (svc.pool!.ready < 1) {
        if (Date.now() > deadline) throw new Error('the pool did not refill in 300 s');
        await new Promise((r) => setTimeout(r, 50));
      }
      hits.push(await createToExec(svc, `pool-${i}`, hitPhases));
    }
    if (svc.pool!.stats.hits !== n) throw new Error(`expected ${n} pool hits, got ${svc.pool!.stats.hits}`);
  });
  printPhases('template create', tmplPhases);
  printPhases('pool hit', hitPhases);
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

/** Median of each phase (labels in the order of the first run), so the bench shows where a fast create's time goes. */
function printPhases(what: string, runs: Marks): void {
  if (!runs.length) return;
  const parts = runs[0]!.map(([l], i) => `${l} ${median(runs.map((r) => (r[i]?.[0] === l ? r[i]![1] : NaN)).filter((x) => !Number.isNaN(x))).toFixed(1)}`);
  console.log(`  phases (ms, median of ${runs.length}) ${what}: ${parts.join(' | ')}`);
}
