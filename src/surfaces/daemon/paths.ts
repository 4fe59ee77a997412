// Where a data dir's daemon can be found. The socket lives in the run dir,
// whose default path is short enough for the 108-byte sun_path limit.
import path from 'node:path';
import type { Config } from '../../core/config.js';

export interface DaemonPaths {
  /** The daemon's unix socket: REST under /v1, MCP at /mcp, and the stdio bridge. */
  socket: string;
  /** The daemon's pid, written once it listens. */
  pidFile: string;
  /** Held by the one client that is starting a daemon. */
  startLock: string;
  /** stdout and stderr of a daemon that a client started in the background. */
  log: string;
}

export function daemonPaths(config: Config): DaemonPaths {
  return {
    socket: path.join(config.paths.runDir, 'islet.sock'),
    pidFile: path.join(config.paths.runDir, 'daemon.pid'),
    startLock: path.join(config.paths.runDir, 'daemon.start'),
    log: path.join(config.paths.dataDir, 'daemon.log'),
  };
}
