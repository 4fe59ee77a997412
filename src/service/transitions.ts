// The workspace state machine in one table: which states each operation
// accepts, and what to tell a caller who asked at the wrong moment. Every
// operation checks here (assertState) inside the workspace's queue, so the
// rule and its message are written once.
//
//   creating ──boot ok──▶ running ◀──start── stopped / failed
//       │                  │  ▲ │                 ▲
//   boot fails:          stop │ └─pause─▶ paused ─┤ (stop discards the memory)
//   row removed            ▼  └──resume/start──┘  │
//                       stopped ──────────────────┘
import { StateConflictError } from '../core/errors.js';
import type { WorkspaceState } from '../core/schemas.js';

export type WorkspaceOp = 'start' | 'stop' | 'pause' | 'resume' | 'use' | 'snapshot' | 'restore' | 'policy';

interface Rule {
  /** The verb in "cannot <verb> workspace ...". */
  verb: string;
  allowed: readonly WorkspaceState[];
  /** The hint, by the state the workspace is in (default: `other`). */
  hint: Partial<Record<WorkspaceState, string>> & { other: string };
}

const WAIT = 'wait for it to finish';

export const TRANSITIONS: Record<WorkspaceOp, Rule> = {
  start: { verb: 'start', allowed: ['stopped', 'failed', 'paused'], hint: { running: 'it is already running', other: WAIT } },
  stop: { verb: 'stop', allowed: ['running', 'paused'], hint: { other: 'start it first with workspace_start' } },
  pause: { verb: 'pause', allowed: ['running'], hint: { other: 'only a running workspace can be paused' } },
  resume: { verb: 'resume', allowed: ['paused'], hint: { other: 'workspace_start boots a stopped workspace' } },
  use: { verb: 'use', allowed: ['running'], hint: { other: 'start it with workspace_start' } },
  snapshot: { verb: 'snapshot', allowed: ['running', 'stopped', 'failed', 'paused'], hint: { other: WAIT } },
  restore: { verb: 'restore', allowed: ['running', 'stopped', 'failed', 'paused'], hint: { other: WAIT } },
  policy: { verb: 'change the network policy of', allowed: ['running', 'stopped', 'failed', 'paused'], hint: { other: WAIT } },
};

/** Throws STATE_CONFLICT (with the current and allowed states) unless `op` is allowed in the workspace's state. */
export function assertState(w: { id: string; name: string; state: WorkspaceState }, op: WorkspaceOp): void {
  const r = TRANSITIONS[op];
  if (r.allowed.includes(w.state)) return;
  throw StateConflictError.of(w, r.verb, r.allowed, r.hint[w.state] ?? r.hint.other);
}
