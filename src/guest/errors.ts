// The one table from agent ERROR codes (docs/protocol.md) to islet errors.
import { ErrorCode, GuestError, IsletError } from '../core/errors.js';

const CODE_MAP: Record<string, ErrorCode> = {
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  NOT_FOUND: 'FILE_NOT_FOUND',
  FILE_TOO_LARGE: 'FILE_TOO_LARGE',
  IS_DIRECTORY: 'INVALID_ARGUMENT',
  PERMISSION_DENIED: 'GUEST_ERROR',
  PROTOCOL_MISMATCH: 'GUEST_PROTOCOL_MISMATCH',
  UNKNOWN_TYPE: 'NOT_SUPPORTED',
  BUSY: 'GUEST_ERROR',
  IO_ERROR: 'GUEST_ERROR',
  INTERNAL: 'GUEST_ERROR',
};

/** Builds an error from an agent ERROR payload; its text is guest data, so it is cut short. */
export function guestErrorFrom(body: Record<string, unknown>, op?: string): IsletError {
  const guestCode = typeof body.code === 'string' ? body.code.slice(0, 64) : 'INTERNAL';
  const msg = typeof body.message === 'string' ? body.message.slice(0, 2048) : 'guest agent error';
  let code = CODE_MAP[guestCode] ?? 'GUEST_ERROR';
  if (op === 'exec' && guestCode === 'NOT_FOUND') code = 'COMMAND_NOT_FOUND';
  return new GuestError(guestCode, op ? `${op}: ${msg}` : msg, code);
}
