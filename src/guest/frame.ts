// Frame codec for the host <-> agent protocol (docs/protocol.md). The guest
// is untrusted: every length is bounded before any buffer is allocated.
import { GuestProtocolViolationError } from '../core/errors.js';

export const MAGIC = 0x49534c54; // "ISLT"
export const PROTOCOL_VERSION = 1;
export const HEADER_BYTES = 16;
export const MAX_PAYLOAD = 1 << 20;
/** DATA frames the host sends are cut to this size; the agent does the same. */
export const DATA_CHUNK = 64 << 10;

export const FrameType = {
  HELLO: 1,
  ERROR: 2,
  OK: 3,
  EXEC: 4,
  EXEC_STARTED: 5,
  DATA: 6,
  EXEC_EXITED: 7,
  SIGNAL: 8,
  FILE_WRITE: 9,
  FILE_READ: 10,
  HEALTH: 11,
  TIME_SYNC: 12,
  POWEROFF: 13,
  // Background processes (caps "proc").
  PROC_START: 14,
  PROC_LIST: 15,
  PROC_OUTPUT: 16,
  PROC_WRITE: 17,
  PROC_SIGNAL: 18,
  PROC_WAIT: 19,
  PROC_RESIZE: 20,
  /** Stage 1 of a pre-root template only (caps "preroot"): mount this workspace's disk next. */
  ROOT: 21,
  // Re-addressing eth0 of a restored guest (caps "net.config"); numbered apart so additions above never collide.
  NET_CONFIG: 30,
  FS_FREEZE: 31,
  FS_THAW: 32,
} as const;
export type FrameTypeCode = (typeof FrameType)[keyof typeof FrameType];

export const Stream = { STDIN: 0, STDOUT: 1, STDERR: 2 } as const;
export const STREAM_MASK = 0x0003;
export const FLAG_EOF = 0x8000;

export interface FrameHeader {
  version: number;
  type: number;
  flags: number;
  requestId: number;
  length: number;
}

export interface Frame {
  type: number;
  flags: number;
  requestId: number;
  payload: Buffer;
}

export function decodeHeader(b: Buffer): FrameHeader {
  if (b.length < HEADER_BYTES) throw new GuestProtocolViolationError(`short header: ${b.length} bytes`);
  const magic = b.readUInt32BE(0);
  if (magic !== MAGIC) throw new GuestProtocolViolationError(`bad magic 0x${magic.toString(16)}`);
  const h: FrameHeader = {
    version: b.readUInt8(4),
    type: b.readUInt8(5),
    flags: b.readUInt16BE(6),
    requestId: b.readUInt32BE(8),
    length: b.readUInt32BE(12),
  };
  if (h.version !== PROTOCOL_VERSION) throw new GuestProtocolViolationError(`frame version ${h.version}, expected ${PROTOCOL_VERSION}`);
  if (h.length > MAX_PAYLOAD) throw new GuestProtocolViolationError(`payload ${h.length} > ${MAX_PAYLOAD}`);
  return h;
}

/** A frame's 16-byte header alone: DATA payloads then go out beside it (writev) instead of copied behind it. */
export function encodeHeader(type: number, flags: number, requestId: number, length: number): Buffer {
  if (length > MAX_PAYLOAD) throw new RangeError(`payload ${length} > ${MAX_PAYLOAD}`);
  const b = Buffer.allocUnsafe(HEADER_BYTES);
  b.writeUInt32BE(MAGIC, 0);
  b.writeUInt8(PROTOCOL_VERSION, 4);
  b.writeUInt8(type, 5);
  b.writeUInt16BE(flags, 6);
  b.writeUInt32BE(requestId >>> 0, 8);
  b.writeUInt32BE(length, 12);
  return b;
}

export function encodeFrame(f: { type: number; flags?: number; requestId: number; payload?: Buffer }): Buffer {
  const payload = f.payload ?? Buffer.alloc(0);
  return Buffer.concat([encodeHeader(f.type, f.flags ?? 0, f.requestId, payload.length), payload]);
}

export function encodeJson(type: number, requestId: number, value: unknown): Buffer {
  return encodeFrame({ type, requestId, payload: Buffer.from(JSON.stringify(value), 'utf8') });
}

/** Parses a JSON payload that must be an object; anything else is a violation. */
export function decodeJson(f: Frame): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(f.payload.toString('utf8'));
  } catch {
    throw new GuestProtocolViolationError(`frame type ${f.type}: payload is not JSON`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new GuestProtocolViolationError(`frame type ${f.type}: payload is not a JSON object`);
  }
  return v as Record<string, unknown>;
}

/**
 * Incremental decoder: feed it socket chunks, get whole frames. Buffers at
 * most one header plus one bounded payload, so a guest cannot make the host
 * hold more than MAX_PAYLOAD + HEADER_BYTES per connection.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private header: FrameHeader | undefined;

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: Frame[] = [];
    for (;;) {
      if (!this.header) {
        if (this.buffered < HEADER_BYTES) break;
        this.header = decodeHeader(this.take(HEADER_BYTES));
      }
      if (this.buffered < this.header.length) break;
      const payload = this.take(this.header.length);
      out.push({ type: this.header.type, flags: this.header.flags, requestId: this.header.requestId, payload });
      this.header = undefined;
    }
    return out;
  }

  /** Bytes held for an incomplete frame (0 at a frame boundary). */
  get pending(): number {
    return this.buffered + (this.header ? HEADER_BYTES : 0);
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    this.buffered -= n;
    const c0 = this.chunks[0]!;
    if (c0.length >= n) {
      if (c0.length === n) this.chunks.shift();
      else this.chunks[0] = c0.subarray(n);
      // A view when it is most of its socket chunk (a DATA payload: no copy); a copy when small (a header,
      // a JSON reply), so that a few bytes kept long after never pin a whole chunk.
      return n * 2 >= c0.length ? c0.subarray(0, n) : Buffer.from(c0.subarray(0, n));
    }
    const head = Buffer.allocUnsafe(n);
    for (let off = 0; off < n;) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(head, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return head;
  }
}
