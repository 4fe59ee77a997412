// The VmDriver over QEMU: process supervision (qemu.ts), QMP (qmp.ts) and
// HMP forwards (hostfwd.ts) behind the Vm interface. Memory state moves as
// a QMP migration to or from a file; completion is QEMU's MIGRATION event
// (the "events" capability), not a poll.
import { GuestTimeoutError, InternalError, MigrationError } from '../core/errors.js';
import { phase } from '../core/phases.js';
import { run } from '../host/run.js';
import type { PortForward, VmSpec } from './argv.js';
import type { LaunchOptions, Vm, VmCapabilities, VmDriver } from './driver.js';
import { hostfwdAdd, hostfwdRemove } from './hostfwd.js';
import type { QmpClient } from './qmp.js';
import { reattachVm, startVm, VmHandle } from './qemu.js';

/** The drive id QEMU knows the root disk by (argv.ts: -drive id=root). */
const ROOT_DRIVE = 'root';
/** Memory is written to a local file: no reason to throttle the stream. */
const MIGRATE_BANDWIDTH = 8 * 1024 ** 3;
const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

const setCaps = (qmp: QmpClient, caps: Record<string, boolean>) =>
  qmp.execute('migrate-set-capabilities', { capabilities: Object.entries(caps).map(([capability, state]) => ({ capability, state })) });

/**
 * Runs one migration (either direction) started by `start`, and waits for
 * QEMU's MIGRATION event with a final status. The listener is in place
 * before the migration starts, so a fast one cannot be missed.
 */
export async function migrate(qmp: QmpClient, op: string, timeoutMs: number, start: () => Promise<unknown>): Promise<void> {
  const deadline = AbortSignal.timeout(timeoutMs);
  const done = qmp.waitEvent('MIGRATION', deadline, (e) => TERMINAL.has(String(e.data?.status)));
  done.catch(() => undefined); // consumed below; start() may fail first
  await start();
  let status: string;
  try {
    status = String((await done).data?.status);
  } catch (e) {
    if (deadline.aborted) {
      throw new GuestTimeoutError(op, timeoutMs, '', { message: `${op} did not finish in ${timeoutMs} ms`, hint: 'retry' });
    }
    throw e;
  }
  if (status === 'completed') return;
  const st = await qmp.execute<{ 'error-desc'?: string }>('query-migrate').catch(() => ({} as { 'error-desc'?: string }));
  throw new MigrationError(status, st['error-desc']);
}

/**
 * Waits until the source of a finished migration has left "finish-migrate".
 * QEMU sends the COMPLETED event from its migration thread before that
 * thread moves the run state on to "postmigrate"; a `cont` in between is
 * refused ("Migration is not finalized yet"), and a memory snapshot's guest
 * then stayed paused for good. On a loaded host the gap is long enough to
 * hit (issue 15: a parent stopped answering after its memory fork).
 */
async function settledAfterSave(qmp: QmpClient, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = await qmp.execute<{ status: string }>('query-status');
    if (st.status !== 'finish-migrate') return;
    if (Date.now() > deadline) throw new GuestTimeoutError('memory migration', timeoutMs, '', { message: 'QEMU stayed in finish-migrate after the migration completed', hint: 'retry' });
    await new Promise((r) => setTimeout(r, 10));
  }
}

class QemuVm implements Vm {
  constructor(private readonly h: VmHandle) {}

  get spec() { return this.h.spec; }
  get paths() { return this.h.paths; }
  get pid() { return this.h.pid; }
  get version() { return this.h.qemuVersion; }
  get exited() { return this.h.exited; }

  async pause(): Promise<void> { await this.h.qmp.execute('stop'); }

  /** Lets the vCPUs run again, and checks that they do: a `cont` QEMU refused must not leave a guest paused unseen. */
  async resume(): Promise<void> {
    await this.h.qmp.execute('cont');
    const st = await this.h.qmp.execute<{ status: string }>('query-status');
    if (st.status !== 'running') throw new InternalError(`QEMU is ${st.status} after cont`);
  }

  async saveState(file: string, o: { timeoutMs: number; ignoreShared?: boolean }): Promise<void> {
    const qmp = this.h.qmp;
    const t0 = Date.now();
    // Set either way: a VM restored from a template still has x-ignore-shared on from its own restore.
    await setCaps(qmp, { 'x-ignore-shared': o.ignoreShared ?? false, events: true });
    await qmp.execute('migrate-set-parameters', { 'max-bandwidth': MIGRATE_BANDWIDTH });
    await migrate(qmp, 'memory migration', o.timeoutMs, () => qmp.execute('migrate', { uri: `exec:cat > ${shellQuote(file)}` }));
    await settledAfterSave(qmp, Math.max(1_000, o.timeoutMs - (Date.now() - t0)));
  }

  /** Feeds a saved state into a QEMU started with -incoming defer, then lets the guest run. */
  async loadState(file: string, o: { timeoutMs: number; ignoreShared?: boolean }): Promise<void> {
    const qmp = this.h.qmp;
    await setCaps(qmp, { ...(o.ignoreShared ? { 'x-ignore-shared': true } : {}), events: true });
    await migrate(qmp, 'memory restore', o.timeoutMs, () => qmp.execute('migrate-incoming', { uri: `exec:cat ${shellQuote(file)}` }));
    const st = await qmp.execute<{ status: string }>('query-status');
    if (st.status !== 'running') await qmp.execute('cont');
  }

  async snapshotDisk(file: string): Promise<void> {
    await this.h.qmp.execute('blockdev-snapshot-sync', { device: ROOT_DRIVE, 'snapshot-file': file, format: 'qcow2' });
  }

  addForward(f: PortForward): Promise<void> { return hostfwdAdd(this.h.qmp, f); }
  removeForward(hostPort: number): Promise<boolean> { return hostfwdRemove(this.h.qmp, hostPort); }

  async stop(o: { graceMs: number }) {
    const x = await this.h.stop(o);
    this.h.qmp.close();
    return x;
  }

  kill(): void { this.h.kill(); }
  detach(): void { this.h.qmp.close(); }
}

export class QemuDriver implements VmDriver {
  readonly capabilities: VmCapabilities = { memoryState: true, liveDiskSnapshot: true, userForwards: true };
  private versionCache: string | undefined;

  constructor(private readonly qemuBinary = 'qemu-system-x86_64') {}

  async version(): Promise<string> {
    if (!this.versionCache) {
      const r = await run([this.qemuBinary, '--version'], { timeoutMs: 10_000 });
      this.versionCache = /version ([0-9.]+)/.exec(r.stdout)?.[1] ?? 'unknown';
    }
    return this.versionCache;
  }

  async launch(spec: VmSpec, o: LaunchOptions = {}): Promise<Vm> {
    const h = await startVm({ ...spec, incoming: spec.incoming || o.loadState !== undefined },
      { signal: o.signal, qemuBinary: this.qemuBinary, detached: o.detached });
    const vm = new QemuVm(h);
    phase('qemu.start');
    if (o.loadState) {
      try {
        await vm.loadState(o.loadState.file, o.loadState);
        phase('qemu.load');
      } catch (e) {
        h.kill();
        await h.exited;
        h.qmp.close();
        throw e;
      }
    }
    return vm;
  }

  async reattach(spec: VmSpec): Promise<Vm | undefined> {
    const h = await reattachVm(spec);
    return h && new QemuVm(h);
  }
}
