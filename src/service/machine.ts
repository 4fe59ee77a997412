// A Machine is one booted VM with its agent connection and its disk: the
// unit the service composes. It owns those resources and releases all of
// them in destroy(), idempotently.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { GuestTimeoutError, IsletError, VmExitedError } from '../core/errors.js';
import type { ExecOptions, ExecRequest, ExecResult, GuestAgent, GuestConnector, ReadFileOptions, WriteFileOptions } from '../guest/agent.js';
import type { DiskDriver } from '../storage/overlay.js';
import type { Accel, InitMode, NetSpec, PortForward, VmSpec } from '../vmm/argv.js';
import type { ExitInfo, Vm, VmDriver } from '../vmm/driver.js';
import { INJECT_AGENT_WORD } from '../images/imported-boot.js';
import { phase } from '../core/phases.js';

/** The drivers a Machine is made of: real ones (drivers.ts) or the fakes (vmm/fake.ts, guest/fake.ts, storage/fake.ts). */
export interface Drivers {
  vmm: VmDriver;
  connectAgent: GuestConnector;
  disks: DiskDriver;
}

export interface BootArtifacts {
  vmlinux: string;
  initrd: string;
  rootfs: string;
  initMode: InitMode;
  /** Stage 1 copies its own agent into the root and runs that (imported images without islet's agent). */
  injectAgent?: boolean;
}

/**
 * What a caller asks of a boot. Runtime completes it (MachineSpec) from the
 * config, the image's artifacts and the accelerator; Machine.boot turns that
 * into the VMM's VmSpec (vmm/argv.ts), which the service cannot share: the
 * VMM driver knows nothing of images, owners or disks to create.
 */
export interface BootRequest {
  /** A workspace's own id and disk; default: a throwaway VM with a fresh overlay (<diskDir>/<id>.qcow2). */
  id?: string;
  disk?: string;
  /** Create the overlay (default), or boot an existing one (a restarted workspace). */
  createDisk?: boolean;
  image?: string;
  vcpus?: number;
  memoryMb?: number;
  /** Virtual disk size; the guest grows its root filesystem to fill it. */
  diskBytes?: number;
  hostname?: string;
  /** User-mode network or a TAP; absent: the VM has no network device. */
  net?: NetSpec;
  /** Resume from this memory state file (saved by pauseToFile) instead of booting; the disk must be the one it was saved with. */
  memoryFile?: string;
  /** Guest RAM backed by a file (templates: src/service/templates.ts); a restore from a template maps it privately. */
  ramFile?: { path: string; shared: boolean };
  /** Extra kernel command line words (a pre-root template's islet.preroot). */
  cmdlineExtra?: string[];
  /**
   * Runs on the first agent that answers (a pre-root restore: stage 1 mounts
   * the disk, preroot.ts). reconnect: that connection is closed and the next
   * agent's hello awaited; otherwise the same connection goes on.
   */
  handover?: (agent: GuestAgent, signal?: AbortSignal) => Promise<{ reconnect: boolean }>;
  /** TCG translation cache size for this VM; default [vm] tcg_tb_size_mb. */
  tcgTbSizeMb?: number;
  detached?: boolean;
  signal?: AbortSignal;
}

/** A BootRequest completed by Runtime with what the host decides: everything Machine.boot needs. */
export interface MachineSpec extends Omit<BootRequest, 'vcpus' | 'memoryMb'> {
  vcpus: number;
  memoryMb: number;
  artifacts: BootArtifacts;
  accel: Accel;
  runDir: string;
  diskDir: string;
  tscKhz?: number;
  qemuBinary?: string;
  bootTimeoutMs: number;
  /** Deadline of each single-reply agent request once booted ([vm] request_timeout_ms). */
  requestTimeoutMs?: number;
  drivers: Drivers;
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
    readonly vm: Vm,
    readonly agent: GuestAgent,
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
    const { vmm, disks } = spec.drivers;
    const t0 = performance.now();
    const owner: OwnerRecord = { id, ownerPid: process.pid, ephemeral: !spec.detached, disk, createdAt: new Date().toISOString() };
    let vm: Vm | undefined;
    try {
      // The owner record goes first, so a crash at any later point is sweepable.
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await writeFile(path.join(dir, OWNER_FILE), JSON.stringify(owner));
      if (createDisk) await disks.createOverlay(spec.artifacts.rootfs, disk, spec.diskBytes, spec.signal);
      // Over a file-backed RAM the saved stream holds device state only: the RAM is the file.
      const loadState = spec.memoryFile !== undefined
        ? { file: spec.memoryFile, timeoutMs: spec.bootTimeoutMs, ignoreShared: spec.ramFile !== undefined } : undefined;
      vm = await vmm.launch({
        id, dir, disk,
        kernel: spec.artifacts.vmlinux,
        initrd: spec.artifacts.initrd,
        vcpus: spec.vcpus,
        memoryMb: spec.memoryMb,
        accel: spec.accel,
        initMode: spec.artifacts.initMode,
        cmdlineExtra: [...(spec.artifacts.injectAgent ? [INJECT_AGENT_WORD] : []), ...(spec.cmdlineExtra ?? [])],
        hostname: spec.hostname ?? `islet-${id}`,
        tcgTbSizeMb: spec.tcgTbSizeMb,
        tscKhz: spec.tscKhz,
        net: spec.net,
        incoming: loadState !== undefined,
        ramFile: spec.ramFile,
      }, { signal: spec.signal, detached: spec.detached, loadState });
      let agent = await waitAgent(spec.drivers.connectAgent, vm, spec.bootTimeoutMs, spec.signal, spec.requestTimeoutMs);
      phase('agent.hello');
      await agent.syncClock(spec.signal);
      phase('agent.clock');
      if (spec.handover) {
        const { reconnect } = await spec.handover(agent, spec.signal);
        phase('handover');
        if (reconnect) {
          agent.close();
          agent = await waitAgent(spec.drivers.connectAgent, vm, spec.bootTimeoutMs, spec.signal, spec.requestTimeoutMs);
          phase('agent.hello2');
          await agent.syncClock(spec.signal);
          phase('agent.clock2');
        }
      }
      return new Machine(id, vm, agent, disk, Math.round(performance.now() - t0));
    } catch (e) {
      vm?.kill();
      await vm?.exited;
      vm?.detach();
      await Promise.all([rm(dir, { recursive: true, force: true }), createDisk ? rm(disk, { force: true }) : undefined]);
      throw e;
    }
  }

  get dir(): string {
    return this.vm.spec.dir;
  }

  exec(req: ExecRequest, o?: ExecOptions): Promise<ExecResult> {
    return this.agent.exec(req, o);
  }

  writeFile(p: string, data: Buffer, o?: WriteFileOptions): Promise<{ bytes: number }> {
    return this.agent.writeFile(p, data, o);
  }

  readFile(p: string, o: ReadFileOptions): Promise<{ data: Buffer; mode: number | undefined }> {
    return this.agent.readFile(p, o);
  }

  /** Adds a host→guest TCP forward on the live VM (user-mode network only). */
  addForward(f: PortForward): Promise<void> {
    return this.vm.addForward(f);
  }

  /** Removes the forward from hostPort; false if QEMU had none. */
  removeForward(hostPort: number): Promise<boolean> {
    return this.vm.removeForward(hostPort);
  }

  health(signal?: AbortSignal): Promise<Record<string, unknown>> {
    return this.agent.health(signal);
  }

  /** Re-attaches to a detached VM left running by an earlier islet process. */
  static async reattach(spec: { id: string; disk: string; vmSpec: VmSpec; timeoutMs: number; requestTimeoutMs?: number; drivers: Drivers }): Promise<Machine | undefined> {
    const vm = await spec.drivers.vmm.reattach(spec.vmSpec);
    if (!vm) return undefined;
    try {
      const agent = await waitAgent(spec.drivers.connectAgent, vm, spec.timeoutMs, undefined, spec.requestTimeoutMs);
      return new Machine(spec.id, vm, agent, spec.disk, 0);
    } catch {
      vm.detach();
      return undefined;
    }
  }

  /** Powers the guest off (clean unmount), falling back to quit and kill; keeps the disk. */
  shutdown(o: { graceMs?: number } = {}): Promise<void> {
    this.stopped ??= (async () => {
      const grace = o.graceMs ?? 3_000;
      if (!this.agent.isClosed) await this.agent.powerOff(AbortSignal.timeout(grace)).catch(() => undefined);
      await this.vm.stop({ graceMs: grace });
      this.agent.close();
      this.vm.detach();
      await rm(this.dir, { recursive: true, force: true });
    })();
    return this.stopped;
  }

  /**
   * Saves the guest's memory and device state to `file` and ends the VM:
   * its host memory is freed; the disk is kept as is. On failure the guest
   * is resumed and keeps running.
   */
  async pauseToFile(file: string, timeoutMs: number, o: { ignoreShared?: boolean } = {}): Promise<void> {
    await this.vm.pause();
    try {
      await this.vm.saveState(file, { timeoutMs, ignoreShared: o.ignoreShared });
    } catch (e) {
      await this.vm.resume().catch(() => undefined);
      throw e;
    }
    this.stopped ??= (async () => {
      this.agent.close();
      await this.vm.stop({ graceMs: 0 });
      this.vm.detach();
      await rm(this.dir, { recursive: true, force: true });
    })();
    await this.stopped;
  }

  /** Closes this process's connections; the VM keeps running (daemon shutdown). */
  detach(): void {
    this.agent.close();
    this.vm.detach();
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

/** Waits for the agent's hello, failing at once (with the console tail) if QEMU exits first. */
async function waitAgent(connect: GuestConnector, vm: Vm, timeoutMs: number, signal?: AbortSignal, requestTimeoutMs?: number): Promise<GuestAgent> {
  const vmGone = new AbortController();
  let exit: ExitInfo | undefined;
  void vm.exited.then((x) => { exit = x; vmGone.abort(); });
  const signals = [vmGone.signal, ...(signal ? [signal] : [])];
  try {
    return await connect(vm.paths.agent, { timeoutMs, signal: AbortSignal.any(signals), requestTimeoutMs });
  } catch (e) {
    if (exit) {
      const tail = await consoleTail(vm.paths.console);
      throw new VmExitedError(`VM exited during boot (code ${exit.code}, signal ${exit.signal})${tail ? `; console:\n${tail}` : ''}`,
        { console: vm.paths.console });
    }
    if (e instanceof IsletError && e.code === 'GUEST_TIMEOUT') {
      const tail = await consoleTail(vm.paths.console);
      throw new GuestTimeoutError(String(e.details?.op ?? 'agent handshake'), Number(e.details?.ms ?? timeoutMs), '',
        { message: `${e.message}${tail ? `; console:\n${tail}` : ''}`, hint: e.hint, details: { ...e.details, console: vm.paths.console } });
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
