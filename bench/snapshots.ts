// Snapshot figures through the WorkspaceService on a throwaway data dir:
// snapshot_create on a running workspace (disk only: guest sync + QMP
// blockdev-snapshot-sync), snapshot_restore of a running workspace (a
// restart: stop, swap the overlay, boot) and fork-to-first-exec (overlay +
// boot + machine-id + one exec). Baselines: an exec round trip (for create),
// workspace_stop + workspace_start (for restore), workspace_create plus one
// exec (for fork). With memory, on a 512 MiB guest: snapshot_create with
// include_memory, fork-to-first-exec from it, pause and resume times, and the
// host memory (QEMU's RSS) that pause frees.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveConfig, type Config } from '../src/core/config.js';
import { WorkspaceService } from '../src/service/workspaces.js';
import type { Row } from './mcp.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function benchSnapshots(config: Config, n: number, record: (r: Row) => void): Promise<void> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'islet-bench-snap-'));
  const svc = await WorkspaceService.open(resolveConfig({ storage: { data_dir: dataDir, cache_dir: config.paths.cacheDir } }));
  const c = { owner: 'bench' };
  const time = async (f: () => Promise<unknown>) => { const t0 = performance.now(); await f(); return performance.now() - t0; };
  try {
    const w = await svc.create(c, { name: 'bench-snap' });
    const id = w.workspace_id;
    await svc.exec(c, { workspace_id: id, command: 'head -c 16777216 /dev/urandom > /root/data.bin; sync' });

    const creates: number[] = [];
    const execs: number[] = [];
    for (let i = 0; i < Math.max(n, 5); i++) {
      await svc.exec(c, { workspace_id: id, command: `echo ${i} > /root/gen` });
      execs.push(await time(() => svc.exec(c, { workspace_id: id, command: 'true' })));
      creates.push(await time(() => svc.snapshotCreate(c, { workspace_id: id, name: `s${i}` })));
    }
    const exec = median(execs);
    record({ metric: 'snapshot_create, running workspace (disk only)', value: median(creates), unit: 'ms', baseline: exec,
      ratio: median(creates) / exec, note: 'guest sync + blockdev-snapshot-sync; baseline: exec round trip' });

    const restores: number[] = [];
    const restarts: number[] = [];
    for (let i = 0; i < Math.min(n, 3); i++) {
      restores.push(await time(() => svc.snapshotRestore(c, { workspace_id: id, snapshot: 's1' })));
      restarts.push(await time(async () => { await svc.stop(c, { workspace_id: id }); await svc.start(c, { workspace_id: id }); }));
    }
    record({ metric: 'snapshot_restore, running workspace (restart)', value: median(restores), unit: 'ms', baseline: median(restarts),
      ratio: median(restores) / median(restarts), note: 'baseline: workspace_stop + workspace_start' });

    const forks: number[] = [];
    const fresh: number[] = [];
    for (let i = 0; i < Math.min(n, 3); i++) {
      forks.push(await time(async () => {
        const f = await svc.fork(c, { workspace_id: id, snapshot: 's2', name: `bench-fork-${i}` });
        await svc.exec(c, { workspace_id: f.workspace_id, command: 'true' });
      }));
      await svc.destroy(c, { workspace_id: `bench-fork-${i}` });
      fresh.push(await time(async () => {
        const f = await svc.create(c, { name: `bench-new-${i}` });
        await svc.exec(c, { workspace_id: f.workspace_id, command: 'true' });
      }));
      await svc.destroy(c, { workspace_id: `bench-new-${i}` });
    }
    record({ metric: 'workspace_fork to first exec (disk only)', value: median(forks), unit: 'ms', baseline: median(fresh),
      ratio: median(forks) / median(fresh), note: 'baseline: workspace_create to first exec' });
    await svc.destroy(c, { workspace_id: id });
    await benchMemory(svc, n, record, median(creates), median(forks));
  } finally {
    await svc.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

async function benchMemory(svc: WorkspaceService, n: number, record: (r: Row) => void, diskCreate: number, diskFork: number): Promise<void> {
  const c = { owner: 'bench' };
  const time = async (f: () => Promise<unknown>) => { const t0 = performance.now(); await f(); return performance.now() - t0; };
  const w = await svc.create(c, { name: 'bench-mem', memory_mb: 512 });
  const id = w.workspace_id;
  // Touch 256 MiB so the guest memory is not all zero pages.
  await svc.exec(c, { workspace_id: id, command: "setsid sh -c 'head -c 268435456 /dev/urandom > /dev/shm/fill; sleep 100000' >/dev/null 2>&1 < /dev/null & sleep 20", timeout_ms: 300_000 });
  const creates: number[] = [];
  for (let i = 0; i < Math.min(n, 3); i++) creates.push(await time(() => svc.snapshotCreate(c, { workspace_id: id, name: `m${i}`, include_memory: true })));
  record({ metric: 'snapshot_create with memory (512 MiB guest)', value: median(creates), unit: 'ms', baseline: diskCreate,
    ratio: median(creates) / diskCreate, note: 'baseline: disk-only snapshot_create' });
  const forks: number[] = [];
  for (let i = 0; i < Math.min(n, 3); i++) {
    forks.push(await time(async () => {
      const f = await svc.fork(c, { workspace_id: id, snapshot: 'm0', name: `bench-mfork-${i}` });
      await svc.exec(c, { workspace_id: f.workspace_id, command: 'true' });
    }));
    await svc.destroy(c, { workspace_id: `bench-mfork-${i}` });
  }
  record({ metric: 'workspace_fork to first exec (memory fork)', value: median(forks), unit: 'ms', baseline: diskFork,
    ratio: median(forks) / diskFork, note: 'baseline: disk-only fork' });
  const pauses: number[] = [];
  const resumes: number[] = [];
  const freed: number[] = [];
  for (let i = 0; i < Math.min(n, 3); i++) {
    const pid = (await svc.info(c, { workspace_id: id })).pid!;
    const rss = rssMiB(pid);
    pauses.push((await svc.pause(c, { workspace_id: id })).pause_ms);
    freed.push(rss);
    resumes.push(await time(() => svc.resume(c, { workspace_id: id })));
  }
  record({ metric: 'workspace_pause (512 MiB guest)', value: median(pauses), unit: 'ms' });
  record({ metric: 'workspace_resume to ready (512 MiB guest)', value: median(resumes), unit: 'ms', baseline: diskFork,
    ratio: median(resumes) / diskFork, note: 'baseline: disk-only fork (a boot)' });
  record({ metric: 'host memory freed by pause (QEMU RSS)', value: median(freed), unit: 'MiB' });
  await svc.destroy(c, { workspace_id: id });
}
