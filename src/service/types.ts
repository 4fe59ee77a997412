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
  network: { mode: 'none'; ip: null };
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
