// What the workspace service returns. Surfaces render these; they never
// reach into the service's internals.
import type { WorkspaceState } from '../core/schemas.js';
import type { LifetimeInfo } from './lifetimes.js';
import type { BootInfo } from './preroot.js';

/** Who is calling. Surfaces derive it (MCP session, token, CLI user); the service enforces it. */
export interface Caller {
  /** Stable owner identity; workspaces are visible only to their owner. */
  owner: string;
  /** Sees and may act on every workspace. */
  admin?: boolean;
}

export interface WorkspaceInfo {
  workspace_id: string;
  name: string;
  state: WorkspaceState;
  image: string;
  vcpus: number;
  memory_mb: number;
  disk_gb: number;
  allow_internet: boolean;
  owner: string;
  created_at: string;
  updated_at: string;
  /** QEMU pid while running. */
  pid: number | null;
  network: NetworkInfo;
  snapshot_count: number;
  /** The snapshot tree, oldest first (parents link it). */
  snapshots: SnapshotInfo[];
  /** The snapshot the current disk builds on (null: the base image); for a fork, its source snapshot. */
  current_snapshot_id: string | null;
  /** Why the workspace is in state "failed", if it is. */
  error: string | null;
  /** Host bytes used by the workspace's own disk (its overlay). */
  disk_used_bytes: number | null;
  /** How to log in over SSH, when the image runs sshd (recipe "ssh"); null otherwise. */
  ssh: SshInfo | null;
  /** TTL, idle stop and retention: the values in force and when each will act (lifetimes.ts). */
  lifetime: LifetimeInfo;
  /** How the VM last came up in this islet process (restore or cold boot, and why cold); absent before that. */
  boot?: BootInfo;
  /** "run": the throwaway workspace of an `islet run` in progress, destroyed when it ends; absent for others. */
  kind?: 'run';
}

/** The workspace's own SSH key pair: made at create (or fork), its public half installed in the guest at every boot. */
export interface SshInfo {
  user: string;
  /** On the host, 0600; deleted with the workspace. */
  private_key_path: string;
  public_key: string;
  guest_port: number;
  /** A host port forwarded to guest_port, if there is one. */
  host_port: number | null;
  /** A ready ssh command line when a forward exists. */
  command: string | null;
  hint: string;
}

export interface ExecOutput {
  exit_code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** "base64" when the bytes are not JSON-friendly UTF-8 (see core/encoding.ts). */
  stdout_encoding: 'utf8' | 'base64';
  stderr_encoding: 'utf8' | 'base64';
  timed_out: boolean;
  truncated: boolean;
  duration_ms: number;
  /** Long exec (timeout_ms above [server] exec_detach_ms): true when the command was still running at the detach wait. */
  running?: boolean;
  /** Long exec: the background process running the command, for process_output / process_wait / process_kill. */
  process_id?: number;
  /** Long exec: the output offset to pass to process_output for what follows. */
  next_offset?: number;
}

export interface ExecHooks {
  signal?: AbortSignal;
  /** Output as it arrives (already capped). */
  onData?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
  /**
   * Long exec: a command whose timeout_ms is above [server] exec_detach_ms runs as a background process, and the call
   * returns after exec_detach_ms with its process_id if it is still running. For callers with a request timeout (MCP).
   */
  detach?: boolean;
}

export interface OpOptions {
  signal?: AbortSignal;
}

export interface ForwardInfo {
  host_address: string;
  host_port: number;
  guest_port: number;
  created_at: string;
}

export interface NetworkInfo {
  /** "user": QEMU user-mode network; "bridge": a TAP on the host bridge; "none": no network device. */
  mode: 'none' | 'user' | 'bridge';
  /** The guest's address (user mode: on its private network; bridge: its own on the bridge subnet, null until first booted). */
  ip: string | null;
  forwards: ForwardInfo[];
}

/** A workspace's network policy. allow_inter_vm, allowed_ports and allowed_domains take effect in bridge mode only. */
export interface NetworkPolicy {
  allow_internet: boolean;
  allow_inter_vm: boolean;
  allowed_ports: number[];
  allowed_domains: string[];
}

export interface WorkspaceIpOutput extends NetworkInfo, NetworkPolicy {
  workspace_id: string;
  gateway: string | null;
  dns: string | null;
}

export interface NetworkPolicyOutput extends NetworkPolicy {
  workspace_id: string;
  /**
   * "unchanged": nothing to do; "recorded": takes effect at the next start;
   * "restarted": applied by a VM restart (user mode); "live": applied to the running VM's rules (bridge mode).
   */
  applied: 'unchanged' | 'recorded' | 'restarted' | 'live';
  restart_ms: number | null;
  /** bridge mode, "live": how long rewriting the rules took. */
  apply_ms: number | null;
}

export interface SnapshotInfo {
  snapshot_id: string;
  workspace_id: string;
  name: string;
  description: string | null;
  /** The snapshot this one builds on (null: the base image); the list forms a tree. May belong to another workspace (a fork's source). */
  parent_id: string | null;
  created_at: string;
  /** Host bytes used by this snapshot's own file (its changes over the parent). */
  size_bytes: number | null;
  has_memory: boolean;
}

export interface SnapshotCreateOutput extends SnapshotInfo {
  /** true: taken while the VM ran (guest filesystem synced first); false: the workspace was stopped. */
  live: boolean;
  duration_ms: number;
}

export interface SnapshotListOutput {
  workspace_id: string;
  /** The snapshot the workspace's current disk builds on (null: the base image). */
  current_snapshot_id: string | null;
  snapshots: SnapshotInfo[];
}

export interface SnapshotRestoreOutput {
  workspace_id: string;
  snapshot_id: string;
  /** true: the workspace was running, so its VM was stopped, its disk rolled back, and booted again. */
  restarted: boolean;
  /** true: a memory snapshot: processes resumed where they were at the snapshot (no reboot); the guest clock was resynced. */
  memory_restored: boolean;
  state: WorkspaceState;
  duration_ms: number;
  /** When restarted: how the VM came up (a pre-root restore, or a cold boot and why). */
  boot?: BootInfo;
}

export interface SnapshotDeleteOutput {
  workspace_id: string;
  snapshot_id: string;
  deleted: true;
}
