// Ephemeral VMs (islet run, tests, benchmarks) die with their islet process;
// if that process was killed too hard to clean up, the next islet that
// starts VMs finds them here by their owner record and removes them.
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { vmPaths } from '../vmm/argv.js';
import { isQemuOf } from '../vmm/pid.js';
import { OWNER_FILE, OwnerRecord } from './machine.js';
import { pidAlive } from '../host/pid.js';

export interface SweepResult {
  removed: string[];
  killed: number[];
}

export async function sweepOrphans(runDir: string): Promise<SweepResult> {
  const res: SweepResult = { removed: [], killed: [] };
  const root = path.join(runDir, 'vm');
  let ids: string[];
  try {
    ids = await readdir(root);
  } catch {
    return res;
  }
  for (const id of ids) {
    const dir = path.join(root, id);
    let owner: OwnerRecord;
    try {
      owner = JSON.parse(await readFile(path.join(dir, OWNER_FILE), 'utf8')) as OwnerRecord;
    } catch {
      continue; // not ours to judge: no owner record
    }
    if (!owner.ephemeral || owner.id !== id || pidAlive(owner.ownerPid)) continue;
    const pid = Number.parseInt(await readFile(vmPaths(dir).pidfile, 'utf8').catch(() => ''), 10);
    if (pid > 1 && isQemuOf(pid, id)) {
      try { process.kill(pid, 'SIGKILL'); res.killed.push(pid); } catch { /* already gone */ }
    }
    await rm(dir, { recursive: true, force: true });
    if (typeof owner.disk === 'string' && owner.disk.endsWith(`${id}.qcow2`)) await rm(owner.disk, { force: true });
    res.removed.push(id);
  }
  return res;
}
