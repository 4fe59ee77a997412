// The agent driver's surface, as the service sees it: one connected guest
// agent and the operations islet asks of it. The wire protocol (frames,
// request ids, streams) stays behind it in client.ts, exec.ts, files.ts and
// process.ts; guest/fake.ts is the in-memory twin the service's unit tests
// run on.
import { NotSupportedError } from '../core/errors.js';
import { AgentClient, ConnectOptions } from './client.js';
import { ExecOptions, ExecRequest, ExecResult, execInGuest } from './exec.js';
import {
  FileStream, ReadFileOptions, StreamReadOptions, StreamWriteOptions, WriteFileOptions, readGuestFile, readGuestFileStream, writeGuestFile, writeGuestFileStream,
} from './files.js';
import { FrameType } from './frame.js';
import {
  listProcesses, OutputRequest, ProcInfo, ProcOutput, ProcStartRequest, readOutput, resizeProcess, signalProcess, startProcess,
  waitProcess, writeProcess,
} from './process.js';

export type {
  ConnectOptions, ExecOptions, ExecRequest, ExecResult, FileStream, OutputRequest, ProcInfo, ProcOutput, ProcStartRequest, ReadFileOptions, StreamReadOptions,
  StreamWriteOptions, WriteFileOptions,
};
export { MAX_READ_BYTES, MAX_RING_BYTES, PROC_CAP, PTY_CAP } from './process.js';
export const NET_CONFIG_CAP = 'net.config';
export const FS_FREEZE_CAP = 'fs.freeze';

/**
 * Background processes (docs/protocol.md, "Background processes"): the agent
 * owns them, so they outlive the connection that started them. Every call
 * but supports() fails with NOT_SUPPORTED when the agent lacks the capability.
 */
export interface GuestProcesses {
  /** Whether the agent has the capability: 'proc' (background processes) or 'proc.pty' (terminals). */
  supports(cap: 'proc' | 'proc.pty'): boolean;
  start(req: ProcStartRequest, signal?: AbortSignal): Promise<{ id: number; pid: number }>;
  list(signal?: AbortSignal): Promise<ProcInfo[]>;
  /** Output from an offset; with waitMs, waits that long for some (or the exit) when there is none yet. */
  output(req: OutputRequest, signal?: AbortSignal): Promise<ProcOutput>;
  /** Writes to stdin (a terminal's input); close ends it (^D on a terminal). Returns the bytes written. */
  write(id: number, data: Buffer, close: boolean, signal?: AbortSignal): Promise<number>;
  /** Sends a signal by name (TERM, KILL, ...); returns the process's info right after. */
  signal(id: number, sig: string, signal?: AbortSignal): Promise<ProcInfo>;
  /** Waits up to waitMs for the exit (0: not at all); returns the info either way. */
  wait(id: number, waitMs: number, signal?: AbortSignal): Promise<ProcInfo>;
  resize(id: number, cols: number, rows: number, signal?: AbortSignal): Promise<void>;
}

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
  /**
   * Moves eth0 to this MAC and islet.net-form address (ADDR/PREFIX,gw=IP,dns=IP),
   * with system calls in the agent; false when the agent lacks caps
   * "net.config" (an image built before it), and nothing was done.
   */
  netConfig(c: { mac: string; net: string }, signal?: AbortSignal): Promise<boolean>;
  /**
   * Freezes the guest filesystem mounted at path (FIFREEZE: its journal
   * written out, writers held) until fsThaw, or until thawAfterMs pass in the
   * guest, whichever is first; false when the agent lacks caps "fs.freeze",
   * and nothing was done.
   */
  fsFreeze(path: string, thawAfterMs: number, signal?: AbortSignal): Promise<boolean>;
  fsThaw(path: string, signal?: AbortSignal): Promise<void>;
  close(): void;
  readonly processes: GuestProcesses;
  /**
   * Stage 1 of a pre-root template only (caps "preroot"): probe the disk afresh and take this identity; absent in fakes.
   * switched: the guest mounted the disk, switched root and now serves this same connection as the PID 1 agent (its
   * HELLO adopted here); otherwise the agent says HELLO on a new connection.
   */
  enterRoot?(req: RootRequest, signal?: AbortSignal): Promise<RootResult>;
  /** true: this is stage 1 of a pre-root template, waiting for ROOT (caps "preroot"). */
  readonly awaitsRoot?: boolean;
}

/** A ROOT request (agent/internal/proto/root.go): the identity a restored pre-root guest takes. */
export interface RootRequest {
  hostname: string;
  /** The islet.net value; absent: no network device. */
  net?: string;
  /** Hex bytes mixed into the guest's RNG. */
  entropy: string;
  /** 32 hex digits: written to the disk's /etc/machine-id, with the hostname to /etc/hostname (a fork's new identity). */
  machineId?: string;
}

/** What ROOT did (RootOK in agent/internal/proto/root.go). */
export interface RootResult {
  switched: boolean;
  /** The disk holds SSH host keys: a new identity must still remake them. */
  sshHostKeys: boolean;
  /** The guest's time per step (bench). */
  ms: Record<string, number>;
}

/** Connects to the agent on a VM's virtio-serial socket and completes the HELLO handshake. */
export type GuestConnector = (socketPath: string, o: ConnectOptions) => Promise<GuestAgent>;

class AgentProcesses implements GuestProcesses {
  constructor(private readonly client: AgentClient) {}

  supports(cap: 'proc' | 'proc.pty'): boolean { return this.client.hasCap(cap); }
  start(req: ProcStartRequest, signal?: AbortSignal) { return startProcess(this.client, req, signal); }
  list(signal?: AbortSignal) { return listProcesses(this.client, signal); }
  output(req: OutputRequest, signal?: AbortSignal) { return readOutput(this.client, req, signal); }
  write(id: number, data: Buffer, close: boolean, signal?: AbortSignal) { return writeProcess(this.client, id, data, close, signal); }
  signal(id: number, sig: string, signal?: AbortSignal) { return signalProcess(this.client, id, sig, signal); }
  wait(id: number, waitMs: number, signal?: AbortSignal) { return waitProcess(this.client, id, waitMs, signal); }
  resize(id: number, cols: number, rows: number, signal?: AbortSignal) { return resizeProcess(this.client, id, cols, rows, signal); }
}

export class AgentConnection implements GuestAgent {
  readonly processes: GuestProcesses;
  constructor(readonly client: AgentClient) { this.processes = new AgentProcesses(client); }

  get isClosed(): boolean { return this.client.isClosed; }
  exec(req: ExecRequest, o?: ExecOptions): Promise<ExecResult> { return execInGuest(this.client, req, o); }
  writeFile(p: string, data: Buffer, o?: WriteFileOptions): Promise<{ bytes: number }> { return writeGuestFile(this.client, p, data, o); }
  readFile(p: string, o: ReadFileOptions): Promise<{ data: Buffer; mode: number | undefined }> { return readGuestFile(this.client, p, o); }
  writeFileStream(p: string, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, o: StreamWriteOptions): Promise<{ bytes: number }> { return writeGuestFileStream(this.client, p, source, o); }
  readFileStream(p: string, o: StreamReadOptions): Promise<FileStream> { return readGuestFileStream(this.client, p, o); }
  health(signal?: AbortSignal): Promise<Record<string, unknown>> { return this.client.request(FrameType.HEALTH, {}, { signal }); }
  async syncClock(signal?: AbortSignal): Promise<void> { await this.client.request(FrameType.TIME_SYNC, { unixMs: Date.now() }, { signal }); }
  async powerOff(signal?: AbortSignal): Promise<void> { await this.client.request(FrameType.POWEROFF, {}, { signal }); }
  async netConfig(c: { mac: string; net: string }, signal?: AbortSignal): Promise<boolean> {
    if (!this.client.hasCap(NET_CONFIG_CAP)) return false;
    await this.client.request(FrameType.NET_CONFIG, c, { signal });
    return true;
  }
  async fsFreeze(path: string, thawAfterMs: number, signal?: AbortSignal): Promise<boolean> {
    if (!this.client.hasCap(FS_FREEZE_CAP)) return false;
    await this.client.request(FrameType.FS_FREEZE, { path, thawAfterMs }, { signal });
    return true;
  }
  async fsThaw(path: string, signal?: AbortSignal): Promise<void> { await this.client.request(FrameType.FS_THAW, { path }, { signal }); }
  close(): void { this.client.close(); }
  get awaitsRoot(): boolean { return this.client.hasCap('preroot'); }
  async enterRoot(req: RootRequest, signal?: AbortSignal): Promise<RootResult> {
    if (!this.awaitsRoot) throw new NotSupportedError('the guest is not a pre-root template waiting for its disk');
    const r = await this.client.request(FrameType.ROOT, req, { signal });
    const switched = typeof r.hello === 'object' && r.hello !== null;
    if (switched) this.client.adoptHello(r.hello as Record<string, unknown>);
    const ms: Record<string, number> = {};
    if (typeof r.ms === 'object' && r.ms !== null) {
      for (const [k, v] of Object.entries(r.ms).slice(0, 16)) if (typeof v === 'number') ms[k.slice(0, 32)] = v;
    }
    return { switched, sshHostKeys: r.sshHostKeys === true, ms };
  }
}

export const connectAgent: GuestConnector = async (socketPath, o) => new AgentConnection(await AgentClient.connect(socketPath, o));
