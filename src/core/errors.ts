// The one error tree. Every failure islet reports is an IsletError with a
// stable code; surfaces render it (CLI exit code, MCP isError result) and
// never match on message text. Codes are never renamed once released.

export const ERROR_CODES = [
  'INVALID_ARGUMENT',
  'CONFIG_INVALID',
  'WORKSPACE_NOT_FOUND',
  'NOT_OWNER',
  'STATE_CONFLICT',
  'QUOTA_EXCEEDED',
  'PORT_IN_USE',
  'SNAPSHOT_NOT_FOUND',
  'SNAPSHOT_IN_USE',
  'NOT_SUPPORTED',
  'HOST_PREREQUISITE',
  'HOST_COMMAND_FAILED',
  'IMAGE_NOT_FOUND',
  'IMAGE_BUILD_FAILED',
  'VM_START_FAILED',
  'VM_EXITED',
  'QMP_ERROR',
  'GUEST_TIMEOUT',
  'GUEST_DISCONNECTED',
  'GUEST_PROTOCOL_MISMATCH',
  'GUEST_PROTOCOL_VIOLATION',
  'GUEST_ERROR',
  'COMMAND_NOT_FOUND',
  'FILE_NOT_FOUND',
  'FILE_TOO_LARGE',
  'PATH_OUTSIDE_ALLOWED',
  'SESSION_NOT_FOUND',
  'REPO_CLONE_FAILED',
  'CANCELLED',
  'INTERNAL',
] as const;

export type ErrorCode = typeof ERROR_CODES[number];

export interface ErrorJson {
  code: ErrorCode;
  message: string;
  hint?: string;
  retryable: boolean;
  details?: Record<string, unknown>;
}

export class IsletError extends Error {
  readonly retryable: boolean;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly hint?: string,
    readonly details?: Record<string, unknown>,
    options: { cause?: unknown; retryable?: boolean } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.retryable = options.retryable ?? false;
  }

  toJSON(): ErrorJson {
    const out: ErrorJson = { code: this.code, message: this.message, retryable: this.retryable };
    if (this.hint !== undefined) out.hint = this.hint;
    if (this.details !== undefined) out.details = this.details;
    return out;
  }
}

export class InvalidArgumentError extends IsletError {
  constructor(message: string, hint?: string, details?: Record<string, unknown>) {
    super('INVALID_ARGUMENT', message, hint, details);
  }
}

/** One workspace, unknown or another owner's: the two look the same so existence is not leaked. */
export class WorkspaceNotFoundError extends IsletError {
  constructor(ref: string) {
    super('WORKSPACE_NOT_FOUND', `no workspace "${ref}"`, 'list yours with workspace_list (or `islet ws list`)', { workspace: ref });
  }
}

/** An operation asked of something in a state that does not allow it; details name the current and allowed states when there are any. */
export class StateConflictError extends IsletError {
  constructor(message: string, hint: string, details?: Record<string, unknown> & { state?: string; allowed?: readonly string[] }) {
    super('STATE_CONFLICT', message, hint, details);
  }

  /** "cannot <op> workspace <name>: it is <state> (allowed: ...)". */
  static of(w: { id: string; name: string; state: string }, op: string, allowed: readonly string[], hint: string): StateConflictError {
    return new StateConflictError(`cannot ${op} workspace "${w.name}": it is ${w.state} (allowed: ${allowed.join(', ')})`, hint,
      { workspace: w.id, state: w.state, allowed: [...allowed] });
  }
}

export class QuotaExceededError extends IsletError {
  constructor(message: string, hint: string, details?: Record<string, unknown>) {
    super('QUOTA_EXCEEDED', message, hint, details);
  }
}

/** A feature this host, mode or QEMU cannot provide; the hint names the setting that would. */
export class NotSupportedError extends IsletError {
  constructor(message: string, hint?: string, details?: Record<string, unknown>) {
    super('NOT_SUPPORTED', message, hint, details);
  }
}

export class SnapshotNotFoundError extends IsletError {
  constructor(workspace: { id: string; name: string }, ref: string) {
    super('SNAPSHOT_NOT_FOUND', `workspace "${workspace.name}" has no snapshot "${ref}"`, 'list them with snapshot_list',
      { workspace: workspace.id, snapshot: ref });
  }
}

export class FileNotFoundError extends IsletError {
  constructor(message: string, hint?: string, details?: Record<string, unknown>) {
    super('FILE_NOT_FOUND', message, hint, details);
  }
}

export class FileTooLargeError extends IsletError {
  constructor(message: string, hint?: string, details?: Record<string, unknown>) {
    super('FILE_TOO_LARGE', message, hint, details);
  }
}

export class PathOutsideAllowedError extends IsletError {
  constructor(message: string, hint?: string, details?: Record<string, unknown>) {
    super('PATH_OUTSIDE_ALLOWED', message, hint, details);
  }
}

export class ConfigError extends IsletError {
  constructor(message: string, hint?: string, details?: Record<string, unknown>) {
    super('CONFIG_INVALID', message, hint ?? 'fix the config file; every key is documented in docs/config.md', details);
  }
}

export class PortInUseError extends IsletError {
  constructor(port: number, detail?: string) {
    super('PORT_IN_USE', `host port ${port} (127.0.0.1) is already in use${detail ? `: ${detail}` : ''}`,
      'pick another host_port, or omit it to get a free one assigned', { host_port: port }, { retryable: true });
  }
}

export class HostPrerequisiteError extends IsletError {
  constructor(message: string, hint: string, details?: Record<string, unknown>) {
    super('HOST_PREREQUISITE', message, hint, details);
  }
}

export class HostCommandError extends IsletError {
  constructor(argv: readonly string[], reason: string, stderr: string, details: Record<string, unknown> = {}, cause?: unknown) {
    const tail = stderr.trim().split('\n').slice(-6).join('\n');
    super(
      'HOST_COMMAND_FAILED',
      `${argv[0]} ${reason}${tail ? `: ${tail}` : ''}`,
      'run the command by hand to see the full output',
      { argv: [...argv], ...details },
      { cause },
    );
  }
}

export class ImageNotFoundError extends IsletError {
  constructor(name: string, what: string, hint = 'run `islet setup` (or `npm run setup`) to build the kernel and base image') {
    super('IMAGE_NOT_FOUND', `image "${name}"${what.startsWith('has ') ? ' ' : ': '}${what}`, hint, { image: name });
  }
}

export class ImageBuildError extends IsletError {
  constructor(message: string, hint: string, details?: Record<string, unknown>, cause?: unknown) {
    super('IMAGE_BUILD_FAILED', message, hint, details, { cause });
  }
}

export class VmStartError extends IsletError {
  constructor(message: string, details?: Record<string, unknown>, cause?: unknown) {
    super('VM_START_FAILED', message, 'read the VM console log named in details, or run `islet check`', details, { cause });
  }
}

export class VmExitedError extends IsletError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('VM_EXITED', message, 'the VM is gone; read its console log named in details', details);
  }
}

export class QmpError extends IsletError {
  constructor(command: string, cls: string, desc: string, hint?: string, details?: Record<string, unknown>) {
    super('QMP_ERROR', `QMP ${command} failed: ${cls}: ${desc}`, hint, { command, class: cls, ...details });
  }
}

/** A human-monitor command answered with an error text (HMP reports failure inside a successful QMP reply). */
export class HmpError extends IsletError {
  constructor(command: string, output: string, hint?: string) {
    super('QMP_ERROR', `QEMU ${command} failed: ${firstLine(output)}`, hint, { command, output });
  }
}

/** A memory save or restore (a QEMU migration to or from a file) ended without completing. */
export class MigrationError extends IsletError {
  constructor(status: string, desc?: string) {
    super('QMP_ERROR', `memory migration ${status}${desc ? `: ${desc}` : ''}`, 'retry; the workspace keeps running', { status });
  }
}

export class GuestTimeoutError extends IsletError {
  constructor(op: string, ms: number, setting: string, o: { message?: string; details?: Record<string, unknown>; hint?: string } = {}) {
    super('GUEST_TIMEOUT', o.message ?? `${op}: no reply from the guest agent within ${ms} ms`,
      o.hint ?? `raise ${setting}, or read the VM console log`, { op, ms, ...o.details }, { retryable: true });
  }
}

export class GuestDisconnectedError extends IsletError {
  constructor(message: string, details?: Record<string, unknown>, cause?: unknown) {
    super('GUEST_DISCONNECTED', message, 'the guest agent went away: the VM may have crashed or powered off; check its state and console log', details, { cause });
  }
}

export class GuestProtocolMismatchError extends IsletError {
  constructor(host: number, guest: number) {
    super('GUEST_PROTOCOL_MISMATCH', `guest agent speaks protocol ${guest}, host speaks ${host}`,
      'rebuild the image so its agent matches this islet: islet setup --rebuild', { host, guest });
  }
}

export class GuestProtocolViolationError extends IsletError {
  constructor(message: string) {
    super('GUEST_PROTOCOL_VIOLATION', `guest protocol violation: ${message}`, 'the guest sent a malformed frame; the channel was reset');
  }
}

export class GuestError extends IsletError {
  constructor(readonly guestCode: string, message: string, code: ErrorCode = 'GUEST_ERROR') {
    super(code, message, undefined, { guestCode });
  }
}

/** A step islet itself runs in the guest (sync, SSH key install, identity reset) failed. */
export class GuestStepError extends IsletError {
  constructor(message: string, hint?: string, details?: Record<string, unknown>) {
    super('GUEST_ERROR', message, hint, details);
  }
}

export class CancelledError extends IsletError {
  constructor(op: string, cause?: unknown) {
    super('CANCELLED', `${op} was cancelled`, undefined, { op }, { cause });
  }
}

/** A snapshot's file still backs another snapshot, a workspace's disk, or a fork. */
export class SnapshotInUseError extends IsletError {
  constructor(what: string, users: { snapshots: string[]; workspaces: string[] }, hint?: string) {
    const by = [...users.snapshots.map((s) => `snapshot ${s}`), ...users.workspaces.map((w) => `workspace ${w}`)].join(', ');
    super('SNAPSHOT_IN_USE', `${what}: still depended on by ${by}`,
      hint ?? 'delete the later snapshots first (newest first), or destroy the forks that use it; snapshot_list shows the tree',
      { snapshots: users.snapshots, workspaces: users.workspaces });
  }
}

/** One agent session, unknown or another owner's (as for workspaces, the two look the same). */
export class SessionNotFoundError extends IsletError {
  constructor(ref: string) {
    super('SESSION_NOT_FOUND', `no session "${ref}"`, 'list yours with session_list (or `islet session list`)', { session: ref });
  }
}

/** The host could not fetch a session's repository (bad URL, unknown branch, unreachable remote, too large). */
export class RepoCloneError extends IsletError {
  constructor(message: string, hint: string, details?: Record<string, unknown>, cause?: unknown) {
    super('REPO_CLONE_FAILED', message, hint, details, { cause });
  }
}

/** A broken invariant (a bug). Given a string, that is the message; given anything else, it is the cause. */
export class InternalError extends IsletError {
  constructor(cause: unknown, o: { hint?: string; details?: Record<string, unknown>; cause?: unknown } = {}) {
    super('INTERNAL', cause instanceof Error ? cause.message : typeof cause === 'string' ? cause : 'internal error',
      o.hint ?? 'this is a bug in islet; please report it with the log', o.details, { cause: typeof cause === 'string' ? o.cause : cause });
  }
}

/** The first line of an error's message: what a state row or a progress line records (guest text may follow on later lines). */
export function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n')[0] ?? '';
}

export function toIsletError(e: unknown): IsletError {
  return e instanceof IsletError ? e : new InternalError(e);
}

/** Exit codes for the CLI, one per code family (documented in docs/cli.md). */
export function exitCodeFor(code: ErrorCode): number {
  switch (code) {
    case 'INVALID_ARGUMENT':
    case 'CONFIG_INVALID':
    case 'PATH_OUTSIDE_ALLOWED':
    case 'REPO_CLONE_FAILED':
      return 64; // EX_USAGE
    case 'WORKSPACE_NOT_FOUND':
    case 'SESSION_NOT_FOUND':
    case 'SNAPSHOT_NOT_FOUND':
    case 'IMAGE_NOT_FOUND':
    case 'FILE_NOT_FOUND':
    case 'COMMAND_NOT_FOUND':
      return 66; // EX_NOINPUT
    case 'HOST_PREREQUISITE':
    case 'NOT_SUPPORTED':
      return 69; // EX_UNAVAILABLE
    case 'GUEST_TIMEOUT':
    case 'STATE_CONFLICT':
    case 'SNAPSHOT_IN_USE':
    case 'PORT_IN_USE':
      return 75; // EX_TEMPFAIL: not a bug; retry once the state, the user or the port changed
    case 'QUOTA_EXCEEDED':
    case 'NOT_OWNER':
      return 77; // EX_NOPERM: a limit or an ownership rule refused it
    case 'CANCELLED':
      return 130;
    default:
      return 70; // EX_SOFTWARE
  }
}
