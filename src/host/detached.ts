// Starting an islet command that outlives its caller: the daemon (started by
// its first client) and setup's background kernel build. Detached into its
// own process group, no terminal, stdin closed, output appended to a log.
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../core/config.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/islet.js');

export interface Detached {
  pid: number | undefined;
  /** Set once the child has exited (while this process still runs). */
  readonly state: { exited: boolean };
}

/** `islet <args...> [--config <the same file>]`, detached; `truncate` starts the log afresh. */
export function spawnIslet(config: Config, args: readonly string[], logFile: string, o: { truncate?: boolean } = {}): Detached {
  const argv = [BIN, ...args, ...(config.source ? ['--config', config.source] : [])];
  const state = { exited: false };
  const log = openSync(logFile, o.truncate ? 'w' : 'a', 0o600);
  try {
    const child = spawn(process.execPath, argv, { detached: true, stdio: ['ignore', log, log], env: process.env, cwd: '/' });
    child.once('exit', () => { state.exited = true; });
    child.once('error', () => { state.exited = true; });
    child.unref();
    return { pid: child.pid, state };
  } finally {
    closeSync(log);
  }
}
