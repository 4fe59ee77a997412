// Starts and supervises one QEMU process per VM. A VM is either a child of
// this process (killed with it: `islet run`) or detached (outlives it: the
// daemon's workspaces, found again through their pid file and QMP socket).
import { spawn, ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { CancelledError, VmStartError } from '../core/errors.js';
import { buildQemuArgv, VmPaths, vmPaths, VmSpec } from './argv.js';
import { isQemuOf } from './pid.js';
import { QmpClient } from './qmp.js';

export { isQemuOf };

export interface ExitInfo {
  code: number | null;
  signal: string | null;
}

export interface VmHandle {
  readonly spec: VmSpec;
  readonly paths: VmPaths;
  readonly pid: number;
  readonly qmp: QmpClient;
  readonly qemuVersion: string;
  /** Settles once when QEMU is gone, whatever the cause. */
  readonly exited: Promise<ExitInfo>;
  /** Waits up to graceMs for QEMU to exit on its own, then quits it, then kills it. */
  stop(o: { graceMs: number }): Promise<ExitInfo>;
  kill(): void;
}

export interface StartOptions {
  signal?: AbortSignal;
  qemuBinary?: string;
  /** Let QEMU outlive this process (the daemon's workspaces). */
  detached?: boolean;
  /** How long QEMU may take to open its QMP socket. */
  startTimeoutMs?: number;
}

const children = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Attached VMs die with islet: no orphan QEMU when the CLI exits or crashes. */
function trackChild(c: ChildProcess): void {
  children.add(c);
  c.once('exit', () => children.delete(c));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const ch of children) ch.kill('SIGKILL');
  });
}

export async function startVm(spec: VmSpec, o: StartOptions = {}): Promise<VmHandle> {
  const argv = buildQemuArgv(spec, o.qemuBinary);
  const paths = vmPaths(spec.dir);
  await mkdir(spec.dir, { recursive: true, mode: 0o700 });
  await Promise.all([paths.qmp, paths.agent, paths.pidfile, paths.console].map((p) => rm(p, { force: true })));
  const errFd = openSync(paths.stderr, 'w', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', errFd, errFd], detached: o.detached ?? false });
  } finally {
    closeSync(errFd);
  }
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('exit', (code, sig) => resolve({ code, signal: sig }));
    child.once('error', () => resolve({ code: null, signal: null }));
  });
  if (o.detached) child.unref();
  else trackChild(child);

  const startErr = (what: string) => {
    let stderr = '';
    try { stderr = readFileSync(paths.stderr, 'utf8').trim().slice(-2000); } catch { /* none */ }
    return new VmStartError(`QEMU ${what}${stderr ? `: ${stderr}` : ''}`, { argv, console: paths.console, stderr: paths.stderr });
  };

  let qmp: QmpClient | undefined;
  const deadline = Date.now() + (o.startTimeoutMs ?? 10_000);
  let gone = false;
  void exited.then(() => { gone = true; });
  try {
    while (!qmp) {
      if (o.signal?.aborted) throw new CancelledError('VM start', o.signal.reason);
      if (gone) throw startErr('exited during start');
      if (Date.now() > deadline) throw startErr('did not open its QMP socket in time');
      try {
        qmp = await QmpClient.connect(paths.qmp, o.signal);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ECONNREFUSED') throw e;
        // QEMU creates the socket during its own start-up, in a few ms.
        await delay(10);
      }
    }
  } catch (e) {
    // QEMU that died on its own (bad option, -cpu host on a broken KVM)
    // explains itself on stderr; a QMP error would only say "closed".
    const diedFirst = child.exitCode !== null || child.signalCode !== null;
    child.kill('SIGKILL');
    await exited;
    throw diedFirst || gone ? startErr('exited during start') : e;
  }
  if (!child.pid) throw startErr('has no pid');
  // An unref'd (detached) child's exit event may never be delivered once
  // nothing else keeps the loop alive; QEMU closing QMP is the sure sign.
  const gone2 = o.detached ? Promise.race([exited, qmp.closed.then(() => ({ code: null, signal: null }))]) : exited;
  return makeHandle(spec, paths, child.pid, qmp, gone2, () => child.kill('SIGKILL'));
}

/** Re-attaches to a detached VM after a daemon restart; undefined if it is gone. */
export async function reattachVm(spec: VmSpec): Promise<VmHandle | undefined> {
  const paths = vmPaths(spec.dir);
  const pid = await readPid(paths.pidfile);
  if (!pid || !isQemuOf(pid, spec.id)) return undefined;
  let qmp: QmpClient;
  try {
    // QMP serves one client at a time; another holder would make us wait forever.
    qmp = await QmpClient.connect(paths.qmp, AbortSignal.timeout(5_000));
  } catch {
    return undefined;
  }
  // Not our child: the QMP socket closing is how we learn it exited.
  const exited = qmp.closed.then(() => ({ code: null, signal: null }));
  return makeHandle(spec, paths, pid, qmp, exited, () => { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } });
}

function makeHandle(spec: VmSpec, paths: VmPaths, pid: number, qmp: QmpClient, exited: Promise<ExitInfo>, kill: () => void): VmHandle {
  return {
    spec, paths, pid, qmp, exited, kill,
    qemuVersion: qmp.qemuVersion,
    async stop({ graceMs }) {
      const waitExit = async (ms: number): Promise<ExitInfo | undefined> => {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<undefined>((r) => { timer = setTimeout(() => r(undefined), ms); });
        try {
          return await Promise.race([exited, timeout]);
        } finally {
          clearTimeout(timer);
        }
      };
      const first = await waitExit(graceMs);
      if (first) return first;
      await qmp.execute('quit').catch(() => undefined);
      const second = await waitExit(2_000);
      if (second) return second;
      kill();
      return exited;
    },
  };
}

async function readPid(file: string): Promise<number | undefined> {
  try {
    const n = Number.parseInt((await readFile(file, 'utf8')).trim(), 10);
    return Number.isInteger(n) && n > 1 ? n : undefined;
  } catch {
    return undefined;
  }
}
