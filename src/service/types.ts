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
