// One WorkspaceService per data dir: two would fight over the VMs' agent
// sockets (one host client per port) and reconcile each other's VMs away.
import { openSync, closeSync, readFileSync, unlinkSync, writeSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { StateConflictError } from '../core/errors.js';
import { pidAlive } from '../host/pid.js';

export interface Lock {
  release(): void;
}

export function acquireLock(dataDir: string): Lock {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = path.join(dataDir, 'service.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      let held = true;
      const release = () => {
        if (!held) return;
        held = false;
        try { if (readFileSync(file, 'utf8') === String(process.pid)) unlinkSync(file); } catch { /* gone */ }
      };
      process.once('exit', release);
      return { release };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number.parseInt(readFileSync(file, 'utf8'), 10);
      if (pid > 0 && pid !== process.pid && pidAlive(pid)) {
        throw new StateConflictError(`another islet process (pid ${pid}) is managing ${dataDir}`,
          'use that server (its MCP endpoint), stop it, or point [storage] data_dir elsewhere', { pid, lock: file });
      }
      unlinkSync(file); // left by a process that died: take it over
    }
  }
  throw new StateConflictError(`could not take the lock ${file}`, 'retry');
}
