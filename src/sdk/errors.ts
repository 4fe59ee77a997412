// The SDK's errors: one class per islet error code, all extending
// IsletApiError, so a caller catches exactly what failed
// (`catch (e) { if (e instanceof WorkspaceNotFoundError) ... }`).

export class IsletApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly hint: string | undefined,
    /** HTTP status; 0 when the daemon was not reached. */
    readonly status: number,
    readonly details?: Record<string, unknown>,
    readonly retryable = false,
  ) {
    super(hint ? `${message} (hint: ${hint})` : message);
    this.name = new.target.name;
  }

  /** The daemon did not answer: not started, killed mid-call, or a dropped connection. */
  static unavailable(cause: Error): IsletApiError {
    const e = new DaemonUnavailableError('DAEMON_UNAVAILABLE', `the islet daemon is unreachable: ${cause.message}`,
      'it may have been stopped or killed; the next call starts a new one (VMs keep running and are re-attached)', 0, undefined, true);
    (e as { cause?: unknown }).cause = cause;
    return e;
  }
}

export class DaemonUnavailableError extends IsletApiError {}
export class InvalidArgumentError extends IsletApiError {}
export class UnauthorizedError extends IsletApiError {}
export class NotFoundError extends IsletApiError {}
export class WorkspaceNotFoundError extends NotFoundError {}
export class SnapshotNotFoundError extends NotFoundError {}
export class ImageNotFoundError extends NotFoundError {}
export class FileNotFoundError extends NotFoundError {}
export class StateConflictError extends IsletApiError {}
export class QuotaExceededError extends IsletApiError {}
export class PortInUseError extends IsletApiError {}
export class SnapshotInUseError extends IsletApiError {}
export class FileTooLargeError extends IsletApiError {}
export class PathOutsideAllowedError extends IsletApiError {}
export class NotSupportedError extends IsletApiError {}
export class GuestTimeoutError extends IsletApiError {}
export class GuestError extends IsletApiError {}
export class VmError extends IsletApiError {}
export class InternalError extends IsletApiError {}
export class SessionNotFoundError extends IsletApiError {}
export class RepoCloneError extends IsletApiError {}

const BY_CODE: Record<string, typeof IsletApiError> = {
  INVALID_ARGUMENT: InvalidArgumentError,
  CONFIG_INVALID: InvalidArgumentError,
  UNAUTHORIZED: UnauthorizedError,
  NOT_FOUND: NotFoundError,
  WORKSPACE_NOT_FOUND: WorkspaceNotFoundError,
  NOT_OWNER: WorkspaceNotFoundError,
  SNAPSHOT_NOT_FOUND: SnapshotNotFoundError,
  SESSION_NOT_FOUND: SessionNotFoundError,
  REPO_CLONE_FAILED: RepoCloneError,
  IMAGE_NOT_FOUND: ImageNotFoundError,
  FILE_NOT_FOUND: FileNotFoundError,
  COMMAND_NOT_FOUND: NotFoundError,
  STATE_CONFLICT: StateConflictError,
  QUOTA_EXCEEDED: QuotaExceededError,
  PORT_IN_USE: PortInUseError,
  SNAPSHOT_IN_USE: SnapshotInUseError,
  FILE_TOO_LARGE: FileTooLargeError,
  PATH_OUTSIDE_ALLOWED: PathOutsideAllowedError,
  NOT_SUPPORTED: NotSupportedError,
  GUEST_TIMEOUT: GuestTimeoutError,
  GUEST_DISCONNECTED: GuestError,
  GUEST_PROTOCOL_MISMATCH: GuestError,
  GUEST_PROTOCOL_VIOLATION: GuestError,
  GUEST_ERROR: GuestError,
  VM_START_FAILED: VmError,
  VM_EXITED: VmError,
  DAEMON_UNAVAILABLE: DaemonUnavailableError,
};

/** Builds the error class for a daemon error body {code, message, hint, details, retryable}. */
export function errorFromBody(body: unknown, status: number): IsletApiError {
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const code = typeof b.code === 'string' ? b.code : 'INTERNAL';
  const Cls = BY_CODE[code] ?? InternalError;
  return new Cls(code, typeof b.message === 'string' ? b.message : `HTTP ${status}`, typeof b.hint === 'string' ? b.hint : undefined,
    status, typeof b.details === 'object' && b.details !== null ? b.details as Record<string, unknown> : undefined, b.retryable === true);
}
