// Finding the daemon, and starting it when none runs. Racing clients may each
// spawn one; only the first takes the data dir's lock, the others exit at once
// (STATE_CONFLICT) and every client connects to the winner's socket.
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import path from 'node:path';
import type { Config } from '../../core/config.js';
import { IsletError } from '../../core/errors.js';
import { spawnIslet } from '../../host/detached.js';
import { pidAlive } from '../../host/pid.js';
import { daemonPaths } from './paths.js';

/** A live daemon answers /healthz in milliseconds; one that does not within this is treated as absent. */
const PROBE_TIMEOUT_MS = 5_000;
const START_TIMEOUT_MS = 120_000;

/** True when a daemon answers HTTP (/healthz) on the socket. */
export function socketAnswers(socket: string): Promise<boolean> {
  // An HTTP answer, not a bare connect: a daemon just killed can still accept into its listen backlog
  // and then reset the connection, and a client that trusted the connect would skip starting a new one.
  return new Promise((resolve) => {
    const req = get({ socketPath: socket, path: '/healthz', agent: false, timeout: PROBE_TIMEOUT_MS }, (res) => { res.resume(); resolve(true); });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(false));
  });
}

/** The daemon's pid when one is running for this config. */
export function daemonPid(config: Config): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(daemonPaths(config).pidFile, 'utf8'), 10);
    return pid > 0 && pidAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Returns the socket of this data dir's daemon, starting one (detached, output
 * to <data_dir>/daemon.log) when none answers. Of racing clients only the one
 * that takes the start lock (<run_dir>/daemon.start) spawns; the rest wait for
 * its socket, so a cold data dir gets exactly one daemon process.
 */
export async function ensureDaemon(config: Config): Promise<string> {
  const paths = daemonPaths(config);
  const deadline = Date.now() + START_TIMEOUT_MS;
  let delay = 20;
  let spawned: { exited: boolean } | undefined;
  while (Date.now() < deadline) {
    if (await socketAnswers(paths.socket)) {
      if (spawned) releaseStartLock(paths.startLock);
      return paths.socket;
    }
    if (!spawned && takeStartLock(paths.startLock)) spawned = spawnDaemon(config, paths.log);
    if (spawned?.exited && !lockHeld(config)) {
      releaseStartLock(paths.startLock);
      throw new IsletError('HOST_PREREQUISITE', `the islet daemon did not start: ${lastLines(paths.log)}`,
        `read ${paths.log}, or run it in the foreground: islet daemon run`, { log: paths.log });
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 200);
  }
  if (spawned) releaseStartLock(paths.startLock);
  throw new IsletError('GUEST_TIMEOUT', `the islet daemon did not answer on ${paths.socket} within ${START_TIMEOUT_MS / 1000} s`,
    `read ${paths.log}`, { socket: paths.socket });
}

function spawnDaemon(config: Config, logFile: string): { exited: boolean } {
  mkdirSync(config.paths.dataDir, { recursive: true, mode: 0o700 }); // a first run: the log lives there
  return spawnIslet(config, ['daemon', 'run', '--quiet'], logFile).state;
}

/** True when this process now holds the start lock; a lock left by a dead client is taken over. */
function takeStartLock(file: string): boolean {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, String(process.pid), { mode: 0o600 });
  try {
    linkSync(tmp, file); // atomic: fails if another client holds it
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    let pid = 0;
    try { pid = Number.parseInt(readFileSync(file, 'utf8'), 10); } catch { /* released meanwhile */ }
    if (pid > 0 && pidAlive(pid)) return false;
    rmSync(file, { force: true }); // its client died before releasing it
    return false; // the next round takes it
  } finally {
    rmSync(tmp, { force: true });
  }
}

function releaseStartLock(file: string): void {
  try { if (readFileSync(file, 'utf8') === String(process.pid)) rmSync(file, { force: true }); } catch { /* gone */ }
}

/** Someone holds the data dir's service lock (a daemon starting up, or another islet process). */
function lockHeld(config: Config): boolean {
  try {
    const pid = Number.parseInt(readFileSync(path.join(config.paths.dataDir, 'service.lock'), 'utf8'), 10);
    return pid > 0 && pidAlive(pid);
  } catch {
    return false;
  }
}

function lastLines(file: string): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-3).join(' | ').slice(-600);
  } catch {
    return '(no log)';
  }
}
