// The agent driver's surface, as the service sees it: one connected guest
// agent and the operations islet asks of it. The wire protocol (frames,
// request ids, streams) stays behind it in client.ts, exec.ts and files.ts;
// guest/fake.ts is the in-memory twin the service's unit tests run on.
import { AgentClient, ConnectOptions } from './client.js';
import { ExecOptions, ExecRequest, ExecResult, execInGuest } from './exec.js';
import {
  FileStream, ReadFileOptions, StreamReadOptions, StreamWriteOptions, WriteFileOptions, readGuestFile, readGuestFileStream, writeGuestFile, writeGuestFileStream,
} from './files.js';
import { FrameType } from './frame.js';

export type { ConnectOptions, ExecOptions, ExecRequest, ExecResult, FileStream, ReadFileOptions, StreamReadOptions, StreamWriteOptions, WriteFileOptions };

export interface GuestAgent {
  /** true once the connection is gone (the guest powered off, crashed, or close() was called). */
  readonly isClosed: boolean;
  exec(req: ExecRequest, o?: ExecOptions): Promise<ExecResult>;
  writeFile(path: string, data: Buffer, o?: WriteFileOptions): Promise<{ bytes: number }>;
  readFile(path: string, o: ReadFileOptions): Promise<{ data: Buffer; mode: number | undefined }>;
  /** Writes a file of any length from a source as it arrives; nothing appears unless the whole source was written. */
  writeFileStream(path: string, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, o: StreamWriteOptions): Promise<{ bytes: number }>;
  /** Reads a file of any size with bounded memory; errors about the file itself come before any chunk. */
  readFileStream(path: string, o: StreamReadOptions): Promise<FileStream>;
  health(signal?: AbortSignal): Promise<Record<string, unknown>>;
  /** Sets the guest clock to the host's (microvm has no RTC; a restored guest's clock is stale). */
  syncClock(signal?: AbortSignal): Promise<void>;
  /** Asks the guest to sync and power off; resolves when it acknowledged. */
  powerOff(signal?: AbortSignal): Promise<void>;
  close(): void;
  /** The raw connection, for protocol features not (yet) in this interface; undefined on a fake. */
  readonly client?: AgentClient;
}

/** Connects to the agent on a VM's virtio-serial socket and completes the HELLO handshake. */
export type GuestConnector = (socketPath: string, o: ConnectOptions) => Promise<GuestAgent>;

export class AgentConnection implements GuestAgent {
  constructor(readonly client: AgentClient) {}

  get isClosed(): boolean { return this.client.isClosed; }
  exec(req: ExecRequest, o?: ExecOptions): Promise<ExecResult> { return execInGuest(this.client, req, o); }
  writeFile(p: string, data: Buffer, o?: WriteFileOptions): Promise<{ bytes: number }> { return writeGuestFile(this.client, p, data, o); }
  readFile(p: string, o: ReadFileOptions): Promise<{ data: Buffer; mode: number | undefined }> { return readGuestFile(this.client, p, o); }
  writeFileStream(p: string, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, o: StreamWriteOptions): Promise<{ bytes: number }> { return writeGuestFileStream(this.client, p, source, o); }
  readFileStream(p: string, o: StreamReadOptions): Promise<FileStream> { return readGuestFileStream(this.client, p, o); }
  health(signal?: AbortSignal): Promise<Record<string, unknown>> { return this.client.request(FrameType.HEALTH, {}, { signal }); }
  async syncClock(signal?: AbortSignal): Promise<void> { await this.client.request(FrameType.TIME_SYNC, { unixMs: Date.now() }, { signal }); }
  async powerOff(signal?: AbortSignal): Promise<void> { await this.client.request(FrameType.POWEROFF, {}, { signal }); }
  close(): void { this.client.close(); }
}

export const connectAgent: GuestConnector = async (socketPath, o) => new AgentConnection(await AgentClient.connect(socketPath, o));
