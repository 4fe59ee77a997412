// File transfer over the agent channel, binary-safe, bounded on the host.
import { CancelledError, FileTooLargeError, IsletError } from '../core/errors.js';
import type { AgentClient } from './client.js';
import { guestErrorFrom } from './errors.js';
import { FrameType, Stream, decodeJson, encodeJson } from './frame.js';

export interface WriteFileOptions {
  mode?: number;
  createParents?: boolean;
  append?: boolean;
  signal?: AbortSignal;
}

export async function writeGuestFile(client: AgentClient, path: string, data: Buffer, o: WriteFileOptions = {}): Promise<{ bytes: number }> {
  let id: number | undefined;
  const reply = new Promise<Record<string, unknown>>((resolve, reject) => {
    id = client.register({
      onFrame(f) {
        if (f.type === FrameType.OK) return done(() => resolve(decodeJson(f)));
        if (f.type === FrameType.ERROR) return done(() => reject(guestErrorFrom(decodeJson(f), `write ${path}`)));
      },
      fail: (e) => done(() => reject(e)),
    }, reject);
    const done = (settle: () => void) => { if (id !== undefined) client.unregister(id); settle(); };
  });
  if (id === undefined) return reply.then(() => ({ bytes: 0 }));
  try {
    await client.write(encodeJson(FrameType.FILE_WRITE, id, {
      path, mode: o.mode ?? 0o644, createParents: o.createParents ?? false, append: o.append ?? false,
    }));
    await client.writeData(id, Stream.STDIN, data, o.signal);
  } catch (e) {
    client.unregister(id);
    // The guest discards a write that never saw EOF when the link resets;
    // a cancelled write is ended by closing the request on our side only.
    throw e;
  }
  const v = await withSignal(reply, o.signal, 'file write');
  return { bytes: typeof v.bytes === 'number' ? v.bytes : data.length };
}

export interface ReadFileOptions {
  maxBytes: number;
  signal?: AbortSignal;
  /** Receives the content chunk by chunk instead of it being collected: the result's data is then empty. */
  onChunk?: (chunk: Buffer) => void;
}

export function readGuestFile(client: AgentClient, path: string, o: ReadFileOptions): Promise<{ data: Buffer; mode: number | undefined }> {
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
          return done(() => resolve({ data: o.onChunk ? Buffer.alloc(0) : Buffer.concat(chunks, size), mode: typeof v.mode === 'number' ? v.mode : undefined }));
        }
        if (f.type === FrameType.ERROR) return done(() => reject(guestErrorFrom(decodeJson(f), `read ${path}`)));
      },
      fail: (e) => done(() => reject(e)),
    }, reject);
    const done = (settle: () => void) => { if (id !== undefined) client.unregister(id); settle(); };
    if (id === undefined) return;
    client.write(encodeJson(FrameType.FILE_READ, id, { path, maxBytes: o.maxBytes })).catch((e) => done(() => reject(e)));
  }), o.signal, 'file read');
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

