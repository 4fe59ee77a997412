// What the workspace service returns. Surfaces render these; they never
// reach into the service's internals.
import type { WorkspaceState } from '../core/schemas.js';

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
}

export interface ExecOutput {
  exit_code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timed_out: boolean;
  truncated: boolean;
  duration_ms: number;
}

export interface ExecHooks {
  signal?: AbortSignal;
  /** Output as it arrives (already capped). */
  onData?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
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
  /** "user": QEMU user-mode network; "none": no network device. */
  mode: 'none' | 'user';
  /** The guest's address on its private network (null without a network). */
  ip: string | null;
  forwards: ForwardInfo[];
}

export interface WorkspaceIpOutput extends NetworkInfo {
  workspace_id: string;
  gateway: string | null;
  dns: string | null;
  allow_internet: boolean;
}

export interface NetworkPolicyOutput {
  workspace_id: string;
  allow_internet: boolean;
  /** "unchanged": nothing to do; "recorded": takes effect at the next start; "restarted": applied by a VM restart. */
  applied: 'unchanged' | 'recorded' | 'restarted';
  restart_ms: number | null;
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
}

export interface SnapshotDeleteOutput {
  workspace_id: string;
  snapshot_id: string;
  deleted: true;
}
