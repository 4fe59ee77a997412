// A Machine is one booted VM with its agent connection and its disk: the
// unit the service composes. It owns those resources and releases all of
// them in destroy(), idempotently.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { IsletError, VmExitedError } from '../core/errors.js';
import { AgentClient } from '../guest/client.js';
import { ExecOptions, ExecRequest, ExecResult, execInGuest } from '../guest/exec.js';
import { FrameType } from '../guest/frame.js';
import { ReadFileOptions, WriteFileOptions, readGuestFile, writeGuestFile } from '../guest/files.js';
import { createOverlay } from '../storage/overlay.js';
import type { Accel, InitMode, NetSpec, PortForward, VmSpec } from '../vmm/argv.js';
import { hostfwdAdd, hostfwdRemove } from '../vmm/hostfwd.js';
import { ExitInfo, reattachVm, startVm, VmHandle } from '../vmm/qemu.js';

export interface BootArtifacts {
  vmlinux: string;
  initrd: string;
  rootfs: string;
  initMode: InitMode;
}

export interface MachineSpec {
  /** Default: a fresh random id (ephemeral VMs). Workspaces pass their own. */
  id?: string;
  /** Default: <diskDir>/<id>.qcow2. */
  disk?: string;
  /** Create the overlay (default), or boot an existing one (a restarted workspace). */
  createDisk?: boolean;
  artifacts: BootArtifacts;
  accel: Accel;
  runDir: string;
  diskDir: string;
  vcpus: number;
  memoryMb: number;
  /** Virtual disk size; the guest grows its root filesystem to fill it. */
  diskBytes?: number;
  hostname?: string;
  /** User-mode network or a TAP; absent: no network device. */
  net?: NetSpec;
  /** Resume from this memory state file (saved by pauseToFile) instead of booting; the disk must be the one it was saved with. */
  memoryFile?: string;
  /** Guest RAM backed by a file (templates: src/service/templates.ts); a restore from a template maps it privately. */
  ramFile?: { path: string; shared: boolean };
  tcgTbSizeMb?: number;
  tscKhz?: number;
  qemuBinary?: string;
  bootTimeoutMs: number;
  /** Deadline of each single-reply agent request once booted ([vm] request_timeout_ms). */
  requestTimeoutMs?: number;
  detached?: boolean;
  signal?: AbortSignal;
}

/** Written into every VM dir so a later islet can tell whose VM it is. */
export interface OwnerRecord {
  id: string;
  ownerPid: number;
  ephemeral: boolean;
  disk: string;
  createdAt: string;
}

export const OWNER_FILE = 'owner.json';

export function newMachineId(): string {
  return randomBytes(6).toString('hex');
}

export class Machine {
  private destroyed: Promise<void> | undefined;
  private stopped: Promise<void> | undefined;
  readonly bootMs: number;

  private constructor(
    readonly id: string,
    readonly vm: VmHandle,
    readonly agent: AgentClient,
    readonly disk: string,
    bootMs: number,
  ) {
    this.bootMs = bootMs;
  }

  static async boot(spec: MachineSpec): Promise<Machine> {
    const id = spec.id ?? newMachineId();
    const dir = path.join(spec.runDir, 'vm', id);
    const disk = spec.disk ?? path.join(spec.diskDir, `${id}.qcow2`);
    const createDisk = spec.createDisk ?? true;
    const t0 = performance.now();
    const owner: OwnerRecord = { id, ownerPid: process.pid, ephemeral: !spec.detached, disk, createdAt: new Date().toISOString() };
    let vm: VmHandle | undefined;
    try {
      // The owner record goes first, so a crash at any later point is sweepable.
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await writeFile(path.join(dir, OWNER_FILE), JSON.stringify(owner));
      if (createDisk) await createOverlay(spec.artifacts.rootfs, disk, spec.diskBytes, spec.signal);
      vm = await startVm({
        id, dir, disk,
        kernel: spec.artifacts.vmlinux,
        initrd: spec.artifacts.initrd,
        vcpus: spec.vcpus,
        memoryMb: spec.memoryMb,
        accel: spec.accel,
        initMode: spec.artifacts.initMode,
        hostname: spec.hostname ?? `islet-${id}`,
        tcgTbSizeMb: spec.tcgTbSizeMb,
        tscKhz: spec.tscKhz,
        net: spec.net,
        incoming: spec.memoryFile !== undefined,
        ramFile: spec.ramFile,
      }, { signal: spec.signal, qemuBinary: spec.qemuBinary, detached: spec.detached });
      // Over a file-backed RAM the stream holds device state only: the RAM is the file.
      if (spec.memoryFile) await loadMemory(vm, spec.memoryFile, spec.bootTimeoutMs, spec.ramFile !== undefined);
      const agent = await connectAgent(vm, spec.bootTimeoutMs, spec.signal, spec.requestTimeoutMs);
      await agent.request(FrameType.TIME_SYNC, { unixMs: Date.now() }, { signal: spec.signal });
      return new Machine(id, vm, agent, disk, Math.round(performance.now() - t0));
    } catch (e) {
      vm?.kill();
      await vm?.exited;
      await Promise.all([rm(dir, { recursive: true, force: true }), createDisk ? rm(disk, { force: true }) : undefined]);
      throw e;
    }
  }

  get dir(): string {
    return this.vm.spec.dir;
  }

  exec(req: ExecRequest, o?: ExecOptions): Promise<ExecResult> {
    return execInGuest(this.agent, req, o);
  }

  writeFile(p: string, data: Buffer, o?: WriteFileOptions): Promise<{ bytes: number }> {
    return writeGuestFile(this.agent, p, data, o);
  }

  readFile(p: string, o: ReadFileOptions): Promise<{ data: Buffer; mode: number | undefined }> {
    return readGuestFile(this.agent, p, o);
  }

  /** Adds a host→guest TCP forward on the live VM (user-mode network only). */
  addForward(f: PortForward): Promise<void> {
    return hostfwdAdd(this.vm.qmp, f);
  }

  /** Removes the forward from hostPort; false if QEMU had none. */
  removeForward(hostPort: number): Promise<boolean> {
    return hostfwdRemove(this.vm.qmp, hostPort);
  }

  health(signal?: AbortSignal): Promise<Record<string, unknown>> {
    return this.agent.request(FrameType.HEALTH, {}, { signal });
  }

  /** Re-attaches to a detached VM left running by an earlier islet process. */
  static async reattach(spec: { id: string; runDir: string; disk: string; vmSpec: VmSpec; timeoutMs: number; requestTimeoutMs?: number }): Promise<Machine | undefined> {
    const vm = await reattachVm(spec.vmSpec);
    if (!vm) return undefined;
    try {
      const agent = await connectAgent(vm, spec.timeoutMs, undefined, spec.requestTimeoutMs);
      return new Machine(spec.id, vm, agent, spec.disk, 0);
    } catch {
      vm.qmp.close();
      return undefined;
    }
  }

  /** Powers the guest off (clean unmount), falling back to quit and kill; keeps the disk. */
  shutdown(o: { graceMs?: number } = {}): Promise<void> {
    this.stopped ??= (async () => {
      const grace = o.graceMs ?? 3_000;
      if (!this.agent.isClosed) {
        await this.agent.request(FrameType.POWEROFF, {}, { signal: AbortSignal.timeout(grace) }).catch(() => undefined);
      }
      await this.vm.stop({ graceMs: grace });
      this.agent.close();
      this.vm.qmp.close();
      await rm(this.dir, { recursive: true, force: true });
    })();
    return this.stopped;
  }

  /**
   * Saves the guest's memory and device state to `file` (QMP stop + migrate)
   * and ends QEMU: the VM's host memory is freed; the disk is kept as is.
   * On failure the guest is resumed and keeps running.
   */
  async pauseToFile(file: string, timeoutMs: number, o: { ignoreShared?: boolean } = {}): Promise<void> {
    await this.vm.qmp.execute('stop');
    try {
      await this.saveMemory(file, timeoutMs, o);
    } catch (e) {
      await this.vm.qmp.execute('cont').catch(() => undefined);
      throw e;
    }
    this.stopped ??= (async () => {
      this.agent.close();
      await this.vm.stop({ graceMs: 0 });
      this.vm.qmp.close();
      await rm(this.dir, { recursive: true, force: true });
    })();
    await this.stopped;
  }

  /**
   * Writes the memory and device state of the stopped (QMP stop) guest to `file`; `cont` lets it run on afterwards.
   * ignoreShared: RAM in a shared file is left out (x-ignore-shared): the file already holds it (templates).
   */
  async saveMemory(file: string, timeoutMs: number, o: { ignoreShared?: boolean } = {}): Promise<void> {
    // Set either way: a VM restored from a template still has it on from its own restore.
    await setIgnoreShared(this.vm.qmp, o.ignoreShared ?? false);
    await this.vm.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 8 * 1024 ** 3 });
    await this.vm.qmp.execute('migrate', { uri: `exec:cat > ${shellQuote(file)}` });
    await waitMigration(this.vm.qmp, timeoutMs);
  }

  /** Closes this process's connections; the VM keeps running (daemon shutdown). */
  detach(): void {
    this.agent.close();
    this.vm.qmp.close();
  }

  /** shutdown() plus removal of the disk: nothing of the VM remains. */
  destroy(o: { graceMs?: number } = {}): Promise<void> {
    this.destroyed ??= (async () => {
      await this.shutdown(o);
      await rm(this.disk, { force: true });
    })();
    return this.destroyed;
  }
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Polls query-migrate until the migration (either direction) completes; throws if it fails or takes too long. */
async function waitMigration(qmp: VmHandle['qmp'], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = await qmp.execute<{ status?: string; 'error-desc'?: string }>('query-migrate');
    if (st.status === 'completed') return;
    if (st.status === 'failed' || st.status === 'cancelled') {
      throw new IsletError('QMP_ERROR', `memory migration ${st.status}${st['error-desc'] ? `: ${st['error-desc']}` : ''}`, 'retry; the workspace keeps running');
    }
    if (Date.now() > deadline) throw new IsletError('GUEST_TIMEOUT', `memory migration did not finish in ${timeoutMs} ms`, 'retry', undefined, { retryable: true });
    await new Promise((r) => setTimeout(r, 10));
  }
}

const setIgnoreShared = (qmp: VmHandle['qmp'], on = true) =>
  qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-ignore-shared', state: on }] });

/** Feeds a saved memory state into a QEMU started with -incoming defer, then lets the guest run. */
async function loadMemory(vm: VmHandle, file: string, timeoutMs: number, ignoreShared = false): Promise<void> {
  if (ignoreShared) await setIgnoreShared(vm.qmp);
  await vm.qmp.execute('migrate-incoming', { uri: `exec:cat ${shellQuote(file)}` });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = await vm.qmp.execute<{ status: string }>('query-status');
    if (st.status === 'running') return;
    if (st.status !== 'inmigrate') break;
    if (Date.now() > deadline) throw new IsletError('GUEST_TIMEOUT', `memory restore did not finish in ${timeoutMs} ms`, 'retry');
    await new Promise((r) => setTimeout(r, 10));
  }
  await vm.qmp.execute('cont');
}

/** Waits for the agent's hello, failing at once (with the console tail) if QEMU exits first. */
async function connectAgent(vm: VmHandle, timeoutMs: number, signal?: AbortSignal, requestTimeoutMs?: number): Promise<AgentClient> {
  const vmGone = new AbortController();
  let exit: ExitInfo | undefined;
  void vm.exited.then((x) => { exit = x; vmGone.abort(); });
  const signals = [vmGone.signal, ...(signal ? [signal] : [])];
  try {
    return await AgentClient.connect(vm.paths.agent, { timeoutMs, signal: AbortSignal.any(signals), requestTimeoutMs });
  } catch (e) {
    if (exit) {
      const tail = await consoleTail(vm.paths.console);
      throw new VmExitedError(`VM exited during boot (code ${exit.code}, signal ${exit.signal})${tail ? `; console:\n${tail}` : ''}`,
        { console: vm.paths.console });
    }
    if (e instanceof IsletError && e.code === 'GUEST_TIMEOUT') {
      const tail = await consoleTail(vm.paths.console);
      throw new IsletError('GUEST_TIMEOUT', `${e.message}${tail ? `; console:\n${tail}` : ''}`, e.hint, { ...e.details, console: vm.paths.console }, { retryable: true });
    }
    throw e;
  }
}

export async function consoleTail(file: string, lines = 20): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
