// File operations: guest files written and read as content (MCP), copied
// to and from the host's transfer_dir, and streamed as raw bytes (REST
// bodies). Every transfer streams through the agent a window at a time, so
// memory stays bounded whatever the size; [server] max_transfer_bytes bounds
// the total.
import { decodeContent, encodeBytes } from '../core/encoding.js';
import type { FileDownloadInput, FileReadInput, FileUploadInput, FileWriteInput } from '../core/schemas.js';
import type { FileStream } from '../guest/agent.js';
import { openConfinedReader, openConfinedWriter } from '../host/confine.js';
import type { Caller, OpOptions } from './types.js';
import type { WorkspaceContext } from './workspace-context.js';

const DEFAULT_READ_MAX = 1 << 20;

export class FileOps {
  constructor(private readonly s: WorkspaceContext) {}

  async write(c: Caller, input: FileWriteInput, o: OpOptions = {}): Promise<{ path: string; bytes: number }> {
    const m = this.s.running(c, input.workspace_id);
    const data = decodeContent(input.content, input.encoding ?? 'utf8');
    const r = await m.agent.writeFile(input.path, data, { mode: input.mode, createParents: input.create_parents ?? true, signal: o.signal });
    return { path: input.path, bytes: r.bytes };
  }

  async read(c: Caller, input: FileReadInput, o: OpOptions = {}): Promise<{ path: string; content: string; encoding: 'utf8' | 'base64'; bytes: number }> {
    const m = this.s.running(c, input.workspace_id);
    const r = await m.agent.readFile(input.path, { maxBytes: input.max_bytes ?? DEFAULT_READ_MAX, signal: o.signal });
    const { text, encoding } = encodeBytes(r.data, input.encoding ?? 'utf8'); // binary asked as utf8 comes back as base64
    return { path: input.path, content: text, encoding, bytes: r.data.length };
  }

  async upload(c: Caller, input: FileUploadInput, o: OpOptions = {}): Promise<{ host_path: string; guest_path: string; bytes: number }> {
    const m = this.s.running(c, input.workspace_id);
    const max = this.s.config.server.max_transfer_bytes;
    const r = await openConfinedReader(this.s.config.paths.transferDir, input.host_path, max);
    try {
      const w = await m.agent.writeFileStream(input.guest_path, r.chunks(), { mode: input.mode, createParents: true, signal: o.signal, maxBytes: max });
      return { host_path: r.abs, guest_path: input.guest_path, bytes: w.bytes };
    } finally {
      await r.fh.close();
    }
  }

  async download(c: Caller, input: FileDownloadInput, o: OpOptions = {}): Promise<{ host_path: string; guest_path: string; bytes: number }> {
    const m = this.s.running(c, input.workspace_id);
    const root = this.s.config.paths.transferDir;
    // A bad destination is refused before any byte leaves the guest; the bytes then stream to a temp
    // file that replaces the destination only when the whole read succeeded.
    const w = await openConfinedWriter(root, input.host_path, input.overwrite ?? false);
    try {
      const r = await m.agent.readFileStream(input.guest_path, { maxBytes: this.s.config.server.max_transfer_bytes, signal: o.signal });
      for await (const chunk of r.chunks) await w.write(chunk); // the disk paces the guest: a window in memory at most
    } catch (e) {
      await w.abort();
      throw e;
    }
    const { abs, bytes } = await w.commit();
    return { host_path: abs, guest_path: input.guest_path, bytes };
  }

  /**
   * A guest file from a source of any length (REST bodies), streamed: raw bytes, no text encoding, memory
   * bounded by the agent channel's backpressure, the total by [server] max_transfer_bytes. The file appears
   * only if the whole source arrived.
   */
  async writeStream(c: Caller, input: { workspace_id: string; path: string; mode?: number }, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, o: OpOptions = {}): Promise<{ path: string; bytes: number }> {
    const m = this.s.running(c, input.workspace_id);
    const r = await m.agent.writeFileStream(input.path, source, { mode: input.mode, createParents: true, signal: o.signal, maxBytes: this.s.config.server.max_transfer_bytes });
    return { path: input.path, bytes: r.bytes };
  }

  /** A guest file streamed out (REST bodies) a window at a time, up to [server] max_transfer_bytes; its size is known before the first chunk. */
  async readStream(c: Caller, input: { workspace_id: string; path: string }, o: OpOptions = {}): Promise<FileStream> {
    const m = this.s.running(c, input.workspace_id);
    return m.agent.readFileStream(input.path, { maxBytes: this.s.config.server.max_transfer_bytes, signal: o.signal });
  }
}
