// File transfer over the agent channel, binary-safe, bounded on the host.
import { CancelledError, FileTooLargeError, IsletError } from '../core/errors.js';
import type { AgentClient } from './client.js';
import { guestErrorFrom } from './errors.js';
import { DATA_CHUNK, FrameType, Stream, decodeJson, encodeJson } from './frame.js';

export interface WriteFileOptions {
  mode?: number;
  createParents?: boolean;
  append?: boolean;
  signal?: AbortSignal;
}

/** Writes a whole buffer: the streamed write with one piece (so a cancelled one is discarded in the guest too). */
export function writeGuestFile(client: AgentClient, path: string, data: Buffer, o: WriteFileOptions = {}): Promise<{ bytes: number }> {
  return writeGuestFileStream(client, path, [data], { ...o, maxBytes: data.length });
}

export interface ReadFileOptions {
  maxBytes: number;
  signal?: AbortSignal;
  /** A window (caps file.range): at most `length` (≤ maxBytes) bytes from `offset`, whatever the file's size. */
  window?: { offset: number; length: number };
  /** Receives the content chunk by chunk instead of it being collected: the result's data is then empty. */
  onChunk?: (chunk: Buffer) => void;
}

export function readGuestFile(client: AgentClient, path: string, o: ReadFileOptions): Promise<{ data: Buffer; mode: number | undefined; fileSize?: number }> {
  return withSignal(new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const id = client.register({
      onFrame(f) {
        if (f.type === FrameType.DATA) {
          size += f.payload.length;
          if (size > o.maxBytes) {
            return done(() => reject(new FileTooLargeError(`read ${path}: guest sent more than ${o.maxBytes} bytes`, 'ask for more (MCP max_bytes, CLI --max-bytes) up to the limit, or use file_download', { path, maxBytes: o.maxBytes })));
          }
          if (o.onChunk) o.onChunk(f.payload);
          else chunks.push(f.payload);
          return;
        }
        if (f.type === FrameType.OK) {
          const v = decodeJson(f);
          return done(() => resolve({
            data: o.onChunk ? Buffer.alloc(0) : Buffer.concat(chunks, size),
            mode: typeof v.mode === 'number' ? v.mode : undefined,
            fileSize: typeof v.fileSize === 'number' ? v.fileSize : undefined,
          }));
        }
        if (f.type === FrameType.ERROR) return done(() => reject(guestErrorFrom(decodeJson(f), `read ${path}`)));
      },
      fail: (e) => done(() => reject(e)),
    }, reject);
    const done = (settle: () => void) => { if (id !== undefined) client.unregister(id); settle(); };
    if (id === undefined) return;
    const req = o.window ? { path, maxBytes: o.window.length, offset: o.window.offset, length: o.window.length } : { path, maxBytes: o.maxBytes };
    client.write(encodeJson(FrameType.FILE_READ, id, req)).catch((e) => done(() => reject(e)));
  }), o.signal, 'file read');
}

/** How much a streamed write gathers before it writes to the channel (whole frames; the rest waits for more). */
const BATCH_BYTES = 4 * DATA_CHUNK;

export interface StreamWriteOptions extends WriteFileOptions {
  /** The most bytes the source may yield; past it the write is discarded with FILE_TOO_LARGE. */
  maxBytes: number;
}

/**
 * Writes a guest file from a source of any length as it arrives: chunks go
 * out as DATA frames (the channel's backpressure paces the source), and the
 * file appears only at EOF. If the source fails, passes maxBytes or the
 * signal fires, the guest is told to discard the write (caps file.abort).
 */
export async function writeGuestFileStream(client: AgentClient, path: string, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, o: StreamWriteOptions): Promise<{ bytes: number }> {
  let id: number | undefined;
  let settled = false;
  const reply = new Promise<Record<string, unknown>>((resolve, reject) => {
    id = client.register({
      onFrame(f) {
        if (f.type === FrameType.OK) return done(() => resolve(decodeJson(f)));
        if (f.type === FrameType.ERROR) return done(() => reject(guestErrorFrom(decodeJson(f), `write ${path}`)));
      },
      fail: (e) => done(() => reject(e)),
    }, reject);
    const done = (settle: () => void) => { settled = true; if (id !== undefined) client.unregister(id); settle(); };
  });
  if (id === undefined) return reply.then(() => ({ bytes: 0 }));
  const rid = id;
  reply.catch(() => undefined); // observed below; an early guest ERROR must not be an unhandled rejection meanwhile
  let sent = 0;
  const held: Buffer[] = [];
  let heldBytes = 0;
  /** The whole frames held (and with `last`, the rest too, the final frame marked EOF), in one channel write. */
  const sendWhole = async (last: boolean) => {
    if (o.signal?.aborted) throw new CancelledError('file write', o.signal.reason);
    const frames: Buffer[][] = [];
    while (heldBytes >= DATA_CHUNK || (last && (heldBytes > 0 || frames.length === 0))) {
      const frame: Buffer[] = [];
      let need = Math.min(DATA_CHUNK, heldBytes);
      heldBytes -= need;
      while (need > 0) {
        const h = held[0]!;
        if (h.length <= need) {
          frame.push(h);
          held.shift();
          need -= h.length;
        } else {
          frame.push(h.subarray(0, need));
          held[0] = h.subarray(need);
          need = 0;
        }
      }
      frames.push(frame);
    }
    if (frames.length) await client.writeDataFrames(rid, Stream.STDIN, frames, last);
  };
  try {
    await client.write(encodeJson(FrameType.FILE_WRITE, rid, {
      path, mode: o.mode ?? 0o644, createParents: o.createParents ?? false, append: o.append ?? false,
    }));
    for await (const piece of source) {
      // The guest refused (bad path, full disk): its ERROR is the answer, not the rest of the source.
      if (settled) break;
      sent += piece.length;
      if (sent > o.maxBytes) {
        throw new FileTooLargeError(`write ${path}: more than the ${o.maxBytes}-byte transfer limit`, 'raise [server] max_transfer_bytes', { path, maxBytes: o.maxBytes });
      }
      const b = Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
      // Sources yield what they happened to read (an HTTP body: 64 KiB reads at any offset, as they arrive):
      // pieces go out gathered into whole DATA frames, written from the pieces themselves (writev, no copy),
      // and a few frames at a time: each frame costs the emulated guest a channel hop and a write(), and each
      // write to the channel a wake-up of QEMU and an interrupt in the guest.
      held.push(b);
      heldBytes += b.length;
      if (heldBytes >= BATCH_BYTES) await sendWhole(false);
    }
    if (!settled) await sendWhole(true);  } catch (e) {
    if (!settled) {
      client.unregister(rid);
      if (client.hasCap('file.abort')) client.write(encodeJson(FrameType.SIGNAL, rid, { signal: 'KILL' })).catch(() => undefined);
    }
    throw e;
  }
  const v = await withSignal(reply, o.signal, 'file write');
  return { bytes: typeof v.bytes === 'number' ? v.bytes : sent };
}

export interface StreamReadOptions {
  /** The largest file accepted; a larger one fails with FILE_TOO_LARGE before any byte is returned. */
  maxBytes: number;
  /** Bytes per FILE_READ window (default 8 MiB); at most two are held, one of them still arriving. */
  window?: number;
  signal?: AbortSignal;
}

export interface FileStream {
  /** The file's size when the read began: the chunks add up to exactly this, or end in an error. */
  size: number;
  mode: number | undefined;
  chunks: AsyncIterable<Buffer>;
}

/** The first window is small: its reply carries the file's size, which a caller needs before the first byte. */
const FIRST_WINDOW = 1 << 20;

/**
 * Reads a guest file of any size with bounded memory: window by window
 * (caps file.range), each window's frames handed on as they arrive (no
 * window is gathered whole, so a relay such as the REST API never waits for
 * one), the next window asked for as soon as the last is in while no more
 * than a window waits for the caller. The first (small) window is read
 * before returning, so a missing or too-large file fails here rather than in
 * the middle of a stream. A file that changes size while read ends the
 * stream with an IO_ERROR. Agents without file.range are read whole, bounded
 * by maxBytes.
 */
export async function readGuestFileStream(client: AgentClient, path: string, o: StreamReadOptions): Promise<FileStream> {
  if (!client.hasCap('file.range')) {
    const r = await readGuestFile(client, path, { maxBytes: o.maxBytes, signal: o.signal });
    return { size: r.data.length, mode: r.mode, chunks: (async function* () { yield r.data; })() };
  }
  const window = o.window ?? 8 << 20;
  const first = await readGuestFile(client, path, { maxBytes: Math.min(window, FIRST_WINDOW), window: { offset: 0, length: Math.min(window, FIRST_WINDOW) }, signal: o.signal });
  const size = first.fileSize ?? first.data.length;
  if (size > o.maxBytes) {
    throw new FileTooLargeError(`read ${path}: ${size} bytes is over the ${o.maxBytes}-byte transfer limit`, 'raise [server] max_transfer_bytes', { path, size, maxBytes: o.maxBytes });
  }
  const changed = () => new IsletError('GUEST_ERROR', `read ${path}: the file changed size while it was read`, 'read it again once nothing writes it', { path });
  async function* chunks(): AsyncGenerator<Buffer> {
    const head = Math.min(first.data.length, size);
    if (first.data.length > size) throw changed();
    const queue: Buffer[] = [];
    let queued = 0;
    let next = head; // where the next window starts
    let inFlight = false;
    let failure: unknown;
    let closed = false;
    let wake: (() => void) | undefined;
    const poke = () => { const w = wake; wake = undefined; w?.(); };
    const stop = new AbortController();
    const signal = o.signal ? AbortSignal.any([o.signal, stop.signal]) : stop.signal;
    const ask = () => {
      const at = next;
      const want = Math.min(window, size - at);
      next += want;
      inFlight = true;
      let got = 0;
      readGuestFile(client, path, {
        maxBytes: want, window: { offset: at, length: want }, signal,
        onChunk: (c) => { if (closed) return; got += c.length; queue.push(c); queued += c.length; poke(); },
      }).then(() => {
        inFlight = false;
        if (got !== want) failure = changed();
        else if (next < size && queued <= window) ask();
        poke();
      }, (e: unknown) => { inFlight = false; failure = e; poke(); });
    };
    try {
      if (next < size) ask(); // before the first window is handed on: the guest works while the caller does
      if (head > 0) yield first.data.subarray(0, head);
      for (;;) {
        const c = queue.shift();
        if (c) {
          queued -= c.length;
          if (!inFlight && failure === undefined && next < size && queued <= window) ask();
          yield c;
          continue;
        }
        if (failure !== undefined) throw failure;
        if (!inFlight && next >= size) return;
        await new Promise<void>((resolve) => { wake = resolve; });
      }
    } finally {
      closed = true;
      stop.abort();
    }
  }
  return { size, mode: first.mode, chunks: chunks() };
}

function withSignal<T>(p: Promise<T>, signal: AbortSignal | undefined, op: string): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(new CancelledError(op, signal.reason));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new CancelledError(op, signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

