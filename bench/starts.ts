// Every start is a restore (issue 18): workspace_start, snapshot_restore of a
// disk snapshot on a running workspace, and a disk fork, each to its first
// exec, through the pre-root template (service/preroot.ts) and through the
// cold path (templates off), beside the template create to first exec, all
// in this run. Target: each restore path within 2x the template create.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveConfig, type Config } from '../src/core/config.js';
import { setPhaseSink } from '../src/core/phases.js';
import { WorkspaceService } from '../src/service/workspaces.js';
import type { Row } from './mcp.js';
import { pinnedBoot } from './pinned-boot.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const c = { owner: 'bench' };

type Kind = 'create' | 'start' | 'restore' | 'fork';
/** Per kind, one list of [phase, ms since the previous mark] per run (core/phases.ts). */
type Phases = Record<Kind, Array<Array<[string, number]>>>;
/** Per kind, the guest's own steps of ROOT per run. */
type Guest = Record<Kind, Array<Record<string, number>>>;
interface Figures { create: number[]; start: number[]; restore: number[]; fork: number[]; paths: Set<string>; phases: Phases; guest: Guest }

async function measure(config: Config, template: boolean, n: number): Promise<Figures> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'islet-bench-starts-'));
  // This checkout's kernel and initramfs, both paths alike: the cache's "current" ones move with any build on the host.
  const vm = await pinnedBoot();
  const svc = await WorkspaceService.open(resolveConfig({ storage: { data_dir: dataDir, cache_dir: config.paths.cacheDir }, pool: { template }, vm }));
  const f: Figures = { create: [], start: [], restore: [], fork: [], paths: new Set(), phases: { create: [], start: [], restore: [], fork: [] }, guest: { create: [], start: [], restore: [], fork: [] } };
  const toExec = async (ws: string, kind: Kind, op: () => Promise<{ boot?: { path: string } }>) => {
    const t0 = performance.now();
    const marks: Array<[string, number]> = [];
    let last = t0;
    setPhaseSink((label, at, detail) => { marks.push([label, at - last]); last = at; if (detail) f.guest[kind].push(detail); });
    try {
      const r = await op();
      await svc.exec(c, { workspace_id: ws, command: 'true' });
      const end = performance.now();
      marks.push(['exec', end - last]);
      f.phases[kind].push(marks);
      f.paths.add(r.boot?.path ?? 'create');
      return end - t0;
    } finally {
      setPhaseSink(undefined);
    }
  };
  try {
    if (template) {
      // Warm both templates first (one-time costs, not a start's): the create template, then the pre-root one.
      await svc.create(c, { name: 'warm' });
      await svc.destroy(c, { workspace_id: 'warm' });
      const r = config.resources;
      await svc.preroot!.ensure({ image: r.default_image, vcpus: r.default_vcpus, memoryMb: r.default_memory_mb, net: config.network.mode !== 'none' });
    }
    for (let i = 0; i < n; i++) {
      f.create.push(await toExec(`c${i}`, 'create', () => svc.create(c, { name: `c${i}` })));
      if (i > 0) await svc.destroy(c, { workspace_id: `c${i}` });
    }
    await svc.exec(c, { workspace_id: 'c0', command: 'head -c 16777216 /dev/urandom > /root/data.bin; sync' });
    await svc.snapshotCreate(c, { workspace_id: 'c0', name: 's' });
    for (let i = 0; i < n; i++) {
      await svc.stop(c, { workspace_id: 'c0' });
      f.start.push(await toExec('c0', 'start', () => svc.start(c, { workspace_id: 'c0' })));
      f.restore.push(await toExec('c0', 'restore', () => svc.snapshotRestore(c, { workspace_id: 'c0', snapshot: 's' })));
      f.fork.push(await toExec(`f${i}`, 'fork', () => svc.fork(c, { workspace_id: 'c0', snapshot: 's', name: `f${i}` })));
      await svc.destroy(c, { workspace_id: `f${i}` });
    }
    await svc.destroy(c, { workspace_id: 'c0' });
    return f;
  } finally {
    await svc.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

export async function benchStarts(config: Config, n: number, record: (r: Row) => void): Promise<void> {
  const cold = await measure(config, false, n);
  const warm = await measure(config, true, n);
  const tc = median(warm.create);
  const cc = median(cold.create);
  record({ metric: 'create -> first exec, cold boot (median)', value: cc, unit: 'ms', note: 'templates off' });
  record({ metric: 'create -> first exec, template restore (median)', value: tc, unit: 'ms', baseline: cc, ratio: tc / cc,
    note: `${(cc / tc).toFixed(1)}x faster than cold; baseline: cold create` });
  const rows: Array<[string, keyof Figures]> = [['workspace_start', 'start'], ['snapshot_restore (disk, running)', 'restore'], ['disk fork', 'fork']];
  for (const [what, k] of rows) {
    const w = median(warm[k] as number[]);
    const cl = median(cold[k] as number[]);
    record({ metric: `${what} -> first exec, pre-root restore`, value: w, unit: 'ms', baseline: tc, ratio: w / tc,
      note: `baseline: template create; cold path ${cl.toFixed(0)} ms (${(cl / w).toFixed(1)}x slower)` });
    record({ metric: `${what} -> first exec, cold boot`, value: cl, unit: 'ms', baseline: tc, ratio: cl / tc, note: 'templates off; baseline: template create' });
  }
  printPhases(warm.phases, warm.guest);
  if (!warm.paths.has('restore') || warm.paths.has('cold')) throw new Error(`pre-root starts did not all restore: ${[...warm.paths].join(', ')}`);
}

/** Median time of each phase (in the order of the first run), so the bench shows where a start's time goes. */
function printPhases(p: Phases, g: Guest): void {
  for (const [kind, runs] of Object.entries(p)) {
    if (!runs.length) continue;
    const labels = runs[0]!.map(([l]) => l);
    const parts = labels.map((l, i) => `${l} ${median(runs.map((r) => r[i]?.[0] === l ? r[i]![1] : NaN).filter((x) => !Number.isNaN(x))).toFixed(0)}`);
    console.log(`  phases (ms, median of ${runs.length}) ${kind}: ${parts.join(' | ')}`);
    const steps = g[kind as Kind];
    if (steps.length) {
      const order = ['reseed', 'reprobe', 'flush', 'mount', 'grow', 'switch', 'mounts', 'lo', 'net'];
      const keys = Object.keys(steps[0]!).sort((x, y) => order.indexOf(x) - order.indexOf(y));
      console.log(`    in the guest during root: ${keys.map((k) => `${k} ${median(steps.map((s) => s[k] ?? 0))}`).join(' | ')}`);
    }
  }
}
