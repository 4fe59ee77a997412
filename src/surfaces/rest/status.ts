// The one table from an islet error code to an HTTP status (REST API and SDK
// share it: the SDK maps a status-less transport failure on its own).
import type { ErrorCode } from '../../core/errors.js';

export const HTTP_STATUS: Record<ErrorCode, number> = {
  INVALID_ARGUMENT: 400,
  CONFIG_INVALID: 400,
  PATH_OUTSIDE_ALLOWED: 400,
  WORKSPACE_NOT_FOUND: 404,
  SESSION_NOT_FOUND: 404,
  REPO_CLONE_FAILED: 422, // the repository or branch cannot be fetched as given
  NOT_OWNER: 403, // an admin-only route; another owner's workspace is WORKSPACE_NOT_FOUND (404)
  SNAPSHOT_NOT_FOUND: 404,
  IMAGE_NOT_FOUND: 404,
  FILE_NOT_FOUND: 404,
  COMMAND_NOT_FOUND: 404,
  STATE_CONFLICT: 409,
  SNAPSHOT_IN_USE: 409,
  PORT_IN_USE: 409,
  QUOTA_EXCEEDED: 429,
  FILE_TOO_LARGE: 413,
  NOT_SUPPORTED: 501,
  HOST_PREREQUISITE: 503,
  GUEST_TIMEOUT: 504,
  GUEST_DISCONNECTED: 502,
  GUEST_PROTOCOL_MISMATCH: 502,
  GUEST_PROTOCOL_VIOLATION: 502,
  GUEST_ERROR: 502,
  VM_START_FAILED: 500,
  VM_EXITED: 502,
  QMP_ERROR: 500,
  HOST_COMMAND_FAILED: 500,
  IMAGE_BUILD_FAILED: 500,
  CANCELLED: 499,
  INTERNAL: 500,
};

export const statusFor = (code: string): number => HTTP_STATUS[code as ErrorCode] ?? 500;
