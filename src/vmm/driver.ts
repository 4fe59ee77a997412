// The VMM driver's whole surface, as the service sees it: launch or
// re-attach a VM, then control it through Vm. QMP, HMP and QEMU's process
// handling stay behind it (qemu-driver.ts); vmm/fake.ts is the in-memory
// twin the service's unit tests run on, and test/contract/vmm.ts holds both
// to the same behaviour.
import type { PortForward, VmPaths, VmSpec } from './argv.js';

export interface ExitInfo {
  code: number | null;
  signal: string | null;
}

/** What this driver can do; callers check before the optional calls. */
export interface VmCapabilities {
  /** saveState / launch with loadState: pause, resume, memory snapshots, templates. */
  memoryState: boolean;
  /** snapshotDisk on a running VM. */
  liveDiskSnapshot: boolean;
  /** addForward / removeForward on a user-mode network. */
  userForwards: boolean;
}

export interface LaunchOptions {
  signal?: AbortSignal;
  /** Let the VM outlive this process (the daemon's workspaces). */
  detached?: boolean;
  /** Memory state to load before the guest runs (spec.incoming must be set); the VM runs once it is loaded. */
  loadState?: { file: string; timeoutMs: number; ignoreShared?: boolean };
}

/** One running VM. Every method fails with VM_EXITED once the VM is gone. */
export interface Vm {
  readonly spec: VmSpec;
  readonly paths: VmPaths;
  readonly pid: number;
  /** The hypervisor's version: a saved memory state loads only into the same one. */
  readonly version: string;
  /** Settles once when the VM is gone, whatever the cause. */
  readonly exited: Promise<ExitInfo>;
  /** Stops the vCPUs (the guest sees no time pass). */
  pause(): Promise<void>;
  resume(): Promise<void>;
  /**
   * Writes memory and device state to `file`; the vCPUs must be paused.
   * ignoreShared: RAM in a shared file is left out (the file holds it: templates).
   */
  saveState(file: string, o: { timeoutMs: number; ignoreShared?: boolean }): Promise<void>;
  /** Switches the root disk's writes to a new overlay at `file`, backed by the current one, atomically. */
  snapshotDisk(file: string): Promise<void>;
  /** Forwards 127.0.0.1:hostPort to the guest (user-mode network); PORT_IN_USE when the host port cannot be bound. */
  addForward(f: PortForward): Promise<void>;
  /** false when there was no forward on hostPort. */
  removeForward(hostPort: number): Promise<boolean>;
  /** Waits up to graceMs for the VM to exit on its own, then quits it, then kills it. */
  stop(o: { graceMs: number }): Promise<ExitInfo>;
  kill(): void;
  /** Closes this process's control connection; the VM keeps running. */
  detach(): void;
}

export interface VmDriver {
  readonly capabilities: VmCapabilities;
  /** The hypervisor's version, without starting a VM. */
  version(): Promise<string>;
  launch(spec: VmSpec, o?: LaunchOptions): Promise<Vm>;
  /** A detached VM left running by an earlier islet process; undefined if it is gone. */
  reattach(spec: VmSpec): Promise<Vm | undefined>;
}
