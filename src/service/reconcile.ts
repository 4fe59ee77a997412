// On service start, make the records and the world agree. A VM still
// running is re-attached; a recorded VM that is gone is marked stopped; a
// create that was interrupted is undone; any QEMU, socket dir or disk of a
// workspace that has no record is removed; warm-pool VMs an earlier process
// left are ended, and so are the throwaway workspaces of `islet run`s the
// previous process was serving. kill -9 at any moment therefore loses no workspace and
// leaks no VM.
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Progress } from '../core/progress.js';
import { WORKSPACE_ID_FORM } from '../core/schemas.js';
import { vmPaths } from '../vmm/argv.js';
import { isQemuOf } from '../vmm/pid.js';
import type { Machine } from './machine.js';
import type { Runtime } from './runtime.js';
import type { Store } from './store.js';

const WS = WORKSPACE_ID_FORM;

export async function reconcile(rt: Runtime, store: Store, diskPath: (id: string) => string, progress: Progress): Promise<Map<string, Machine>> {
  const attached = new Map<string, Machine>();
  const runDir = rt.config.paths.runDir;
  const vmDir = (id: string) => path.join(runDir, 'vm', id);
  // Pool VMs hold no user state and no service holds them any more: end them all (the pool refills).
  for (const p of store.poolVms()) {
    await killRecorded(vmDir(p.id), p.id);
    await rm(vmDir(p.id), { recursive: true, force: true });
    await rm(diskPath(p.id), { force: true });
    store.deletePoolVm(p.id);
    progress(`pool VM ${p.id} left by an earlier islet process: ended`);
  }
  const rows = store.all();
  for (const row of rows) {
    if (row.kind === 'run') {
      // The run it served ended with the process that ran it (its client saw DAEMON_UNAVAILABLE): nothing to keep.
      await killRecorded(vmDir(row.id), row.id);
      await rm(vmDir(row.id), { recursive: true, force: true });
      const disk = diskPath(row.id);
      store.delete(row.id);
      await rm(disk, { force: true });
      progress(`workspace ${row.name}: the throwaway VM of an interrupted islet run; removed`);
      continue;
    }
    if (row.state === 'running' || row.state === 'creating') {
      const m = await rt.reattach({ id: row.id, disk: diskPath(row.id), image: row.image, vcpus: row.vcpus, memoryMb: row.memory_mb });
      if (m) {
        attached.set(row.id, m);
        store.setState(row.id, 'running', { pid: m.vm.pid });
        progress(`workspace ${row.name}: re-attached to its running VM (pid ${m.vm.pid})`);
        continue;
      }
      await killRecorded(vmDir(row.id), row.id);
      await rm(vmDir(row.id), { recursive: true, force: true });
      if (row.state === 'creating') {
        store.delete(row.id);
        await rm(diskPath(row.id), { force: true });
        progress(`workspace ${row.name}: creation was interrupted; removed`);
      } else {
        store.setState(row.id, 'stopped', { error: 'its VM was gone when islet started' });
        progress(`workspace ${row.name}: VM gone, marked stopped`);
      }
    } else {
      await killRecorded(vmDir(row.id), row.id);
      await rm(vmDir(row.id), { recursive: true, force: true });
    }
  }
  const known = new Set(store.all().map((r) => r.id));
  for (const pid of await qemuPidsOfWorkspaces(path.join(runDir, 'vm'))) {
    if (known.has(pid.id)) continue;
    try { process.kill(pid.pid, 'SIGKILL'); progress(`killed orphan QEMU ${pid.pid} of unknown workspace ${pid.id}`); } catch { /* gone */ }
  }
  for (const id of await readdir(path.join(runDir, 'vm')).catch(() => [] as string[])) {
    if (WS.test(id) && !known.has(id)) await rm(vmDir(id), { recursive: true, force: true });
  }
  const diskDir = path.dirname(diskPath('ws-00000000'));
  for (const f of await readdir(diskDir).catch(() => [] as string[])) {
    const id = f.replace(/\.qcow2$/, '');
    if (WS.test(id) && f.endsWith('.qcow2') && !known.has(id)) await rm(path.join(diskDir, f), { force: true });
  }
  return attached;
}

async function killRecorded(dir: string, id: string): Promise<void> {
  const pid = Number.parseInt(await readFile(vmPaths(dir).pidfile, 'utf8').catch(() => ''), 10);
  if (pid > 1 && isQemuOf(pid, id)) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
}

/** Every QEMU named islet-ws-* whose pid file lives under our run dir (not another data dir's). */
async function qemuPidsOfWorkspaces(vmRoot: string): Promise<Array<{ pid: number; id: string }>> {
  const out: Array<{ pid: number; id: string }> = [];
  for (const d of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(d)) continue;
    const argv = (await readFile(`/proc/${d}/cmdline`, 'utf8').catch(() => '')).split('\0');
    const i = argv.indexOf('-name');
    const name = i >= 0 ? argv[i + 1] : undefined;
    const pidfile = argv[argv.indexOf('-pidfile') + 1] ?? '';
    if (name?.startsWith('islet-') && WS.test(name.slice(6)) && pidfile.startsWith(vmRoot + path.sep)) {
      out.push({ pid: Number(d), id: name.slice(6) });
    }
  }
  return out;
}
