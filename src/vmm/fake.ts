// An in-process VmDriver for unit tests: no QEMU, same contract as
// qemu-driver.ts (test/contract/vmm.ts runs against both). A fake VM owns a
// JSON "guest image" that guest/fake.ts reads and writes as the guest's
// files; saveState writes that image to the state file and a launch with
// loadState reads it back, so pause/resume and memory snapshots keep the
// guest's state the way the real ones do. Failures are injected per
// operation with failNext().
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { PortInUseError, StateConflictError, VmExitedError, VmStartError } from '../core/errors.js';
import { writeFakeOverlay } from '../storage/fake.js';
import { type PortForward, type VmSpec, vmPaths } from './argv.js';
import type { ExitInfo, LaunchOptions, Vm, VmCapabilities, VmDriver } from './driver.js';

export type FakeOp = 'launch' | 'saveState' | 'loadState' | 'snapshotDisk' | 'addForward' | 'pause' | 'boot';

/** What the guest holds, as JSON: guest/fake.ts keeps its files here. */
export type FakeGuestImage = Record<string, unknown>;

export class FakeVm implements Vm {
  readonly paths;
  readonly version: string;
  readonly exited: Promise<ExitInfo>;
  private markExited!: (x: ExitInfo) => void;
  gone: ExitInfo | undefined;
  paused = false;
  detached = false;
  /** The disk QEMU writes to now (moves with snapshotDisk). */
  disk: string;
  guest: FakeGuestImage = {};
  /** The guest answers its agent socket (false: a boot that hangs). */
  agentUp = true;

  constructor(readonly spec: VmSpec, readonly pid: number, private readonly d: FakeVmDriver) {
    this.paths = vmPaths(spec.dir);
    this.version = d.qemuVersion;
    this.disk = spec.disk;
    this.exited = new Promise((r) => { this.markExited = r; });
  }

  private live(op: string): void {
    if (this.gone) throw new VmExitedError(`${op}: QMP connection closed: QEMU has exited`);
    if (this.detached) throw new VmExitedError(`${op}: this process detached from the VM`);
  }

  /** The VM ends (as after a crash, or the guest powering off). */
  exit(x: ExitInfo = { code: 0, signal: null }): void {
    if (this.gone) return;
    this.gone = x;
    for (const [p, f] of this.d.forwards) if (f === this) this.d.forwards.delete(p);
    this.markExited(x);
  }

  async pause(): Promise<void> { this.live('stop'); this.d.take('pause'); this.paused = true; }
  async resume(): Promise<void> { this.live('cont'); this.paused = false; }

  async saveState(file: string, _o: { timeoutMs: number; ignoreShared?: boolean }): Promise<void> {
    this.live('migrate');
    this.d.take('saveState');
    await writeFile(file, JSON.stringify({ fakeState: 1, guest: this.guest }), { mode: 0o600 });
  }

  async loadState(file: string): Promise<void> {
    this.d.take('loadState');
    const s = JSON.parse(await readFile(file, 'utf8')) as { fakeState?: number; guest?: FakeGuestImage };
    if (s.fakeState !== 1) throw new VmExitedError(`load of migration failed: ${file} is not a saved state`);
    this.guest = s.guest ?? {};
  }

  async snapshotDisk(file: string): Promise<void> {
    this.live('blockdev-snapshot-sync');
    this.d.take('snapshotDisk');
    const size = await stat(this.disk).then((s) => s.size, () => 0);
    await writeFakeOverlay(file, this.disk, size);
    this.disk = file;
  }

  async addForward(f: PortForward): Promise<void> {
    this.live('hostfwd_add');
    this.d.take('addForward');
    if (this.d.forwards.has(f.hostPort) || this.d.busyPorts.has(f.hostPort)) throw new PortInUseError(f.hostPort, 'could not set up host forwarding rule');
    this.d.forwards.set(f.hostPort, this);
  }

  async removeForward(hostPort: number): Promise<boolean> {
    this.live('hostfwd_remove');
    if (this.d.forwards.get(hostPort) !== this) return false;
    this.d.forwards.delete(hostPort);
    return true;
  }

  async stop(_o: { graceMs: number }): Promise<ExitInfo> {
    this.exit({ code: 0, signal: null });
    return this.exited;
  }

  kill(): void { this.exit({ code: null, signal: 'SIGKILL' }); }
  detach(): void { this.detached = true; }
}

export class FakeVmDriver implements VmDriver {
  readonly capabilities: VmCapabilities = { memoryState: true, liveDiskSnapshot: true, userForwards: true };
  qemuVersion = '7.2.0';
  /** Every VM launched, in order (also the exited ones). */
  readonly vms: FakeVm[] = [];
  readonly forwards = new Map<number, FakeVm>();
  /** Host ports some other program holds. */
  readonly busyPorts = new Set<number>();
  private readonly failures = new Map<FakeOp, Error>();
  private nextPid = 4_000_000; // above pid_max: never a real process

  /** The next `op` fails with `e` (once). 'boot': the VM starts but its agent never answers. */
  failNext(op: FakeOp, e: Error = new VmStartError(`fake ${op} failure`)): void {
    this.failures.set(op, e);
  }

  /** Throws the injected failure for op, if any. */
  take(op: FakeOp): void {
    const e = this.failures.get(op);
    if (!e) return;
    this.failures.delete(op);
    throw e;
  }

  /** The VM whose agent listens on this socket (guest/fake.ts connects through it). */
  byAgentSocket(p: string): FakeVm | undefined {
    return [...this.vms].reverse().find((v) => v.paths.agent === p && !v.gone);
  }

  running(): FakeVm[] {
    return this.vms.filter((v) => !v.gone);
  }

  async version(): Promise<string> { return this.qemuVersion; }

  async launch(spec: VmSpec, o: LaunchOptions = {}): Promise<Vm> {
    if (o.signal?.aborted) throw o.signal.reason instanceof Error ? o.signal.reason : new VmStartError('launch aborted');
    this.take('launch');
    if (this.running().some((v) => v.spec.id === spec.id)) throw new StateConflictError(`VM ${spec.id} already runs`, 'a bug in the caller');
    await mkdir(spec.dir, { recursive: true, mode: 0o700 });
    await stat(spec.disk).catch(() => { throw new VmStartError(`QEMU exited during start: could not open disk ${spec.disk}`); });
    // QEMU creates a memory-backend-file's file; the template code checks it is there.
    if (spec.ramFile) await writeFile(spec.ramFile.path, '', { flag: 'a', mode: 0o600 });
    const vm = new FakeVm(spec, this.nextPid++, this);
    await writeFile(vm.paths.pidfile, String(vm.pid));
    await writeFile(vm.paths.console, `fake console of ${spec.id}\n`);
    try {
      this.take('boot');
    } catch {
      vm.agentUp = false;
    }
    this.vms.push(vm);
    if (o.loadState) {
      try {
        await vm.loadState(o.loadState.file);
      } catch (e) {
        vm.kill();
        throw e;
      }
    }
    return vm;
  }

  async reattach(spec: VmSpec): Promise<Vm | undefined> {
    const old = this.running().find((v) => v.spec.dir === spec.dir);
    if (!old) return undefined;
    old.detached = false;
    return old;
  }
}
