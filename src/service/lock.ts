// One WorkspaceService per data dir: two would fight over the VMs' agent
// sockets (one host client per port) and reconcile each other's VMs away.
import { closeSync, linkSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
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
      // The pid is written to a private file first and linked into place, so a
      // racing process never reads a lock file that exists but is still empty
      // (and takes it over as a dead process's).
      const tmp = `${file}.${process.pid}.tmp`;
      const fd = openSync(tmp, 'w', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      try { linkSync(tmp, file); } finally { unlinkSync(tmp); }
      let held = true;
      const release = () => {
        if (!held) return;
        held = false;
        process.off('exit', release); // a process that opens services one after another must not pile up hooks
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
