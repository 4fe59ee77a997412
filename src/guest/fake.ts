// An in-process GuestAgent for unit tests: the same contract as
// AgentConnection (test/contract/guest.ts runs against both). Files live in
// the VM's JSON guest image (vmm/fake.ts), so they survive a saved and
// loaded state as a real guest's page cache does. exec answers from a
// handler the test sets; by default every command exits 0 with no output.
import { CancelledError, FileNotFoundError, FileTooLargeError, GuestDisconnectedError, GuestTimeoutError } from '../core/errors.js';
import type {
  ExecOptions, ExecRequest, ExecResult, FileStream, GuestAgent, GuestConnector, ReadFileOptions, StreamReadOptions, StreamWriteOptions, WriteFileOptions,
} from './agent.js';
import { FakeProcesses, FakeProcTable } from './fake-processes.js';

/** What guest/fake needs of a fake VM; vmm/fake.ts's FakeVm has this shape (the two layers do not import each other). */
export interface FakeGuestHost {
  guest: Record<string, unknown>;
  readonly exited: Promise<unknown>;
  readonly gone: unknown;
  agentUp: boolean;
  exit(x?: { code: number | null; signal: string | null }): void;
}

export type ExecHandler = (req: ExecRequest) => Partial<ExecResult> | undefined;

export class FakeGuest {
  /** Every exec, in order, across all agents of this fake. */
  readonly execs: ExecRequest[] = [];
  clockSyncs = 0;
  /** NET_CONFIG requests, in order; set netConfigCap false to play an agent without the capability. */
  readonly netConfigs: Array<{ mac: string; net: string }> = [];
  netConfigCap = true;
  /** FS_FREEZE / FS_THAW requests, in order ("freeze /", "thaw /"). */
  readonly freezes: string[] = [];
  handler: ExecHandler = () => undefined;

  constructor(private readonly lookup: (socketPath: string) => FakeGuestHost | undefined) {}

  readonly connect: GuestConnector = async (socketPath, o) => {
    const host = this.lookup(socketPath);
    if (!host || host.gone) throw new GuestDisconnectedError(`agent connection closed: no VM on ${socketPath}`);
    if (!host.agentUp) {
      // A guest that never says hello: the handshake runs into its deadline, or the VM exits first.
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(resolve, Math.min(o.timeoutMs, 50));
        o.signal?.addEventListener('abort', () => { clearTimeout(t); reject(new CancelledError('agent handshake', o.signal?.reason)); }, { once: true });
        void host.exited.then(() => { clearTimeout(t); reject(new GuestDisconnectedError('agent connection closed')); });
      });
      throw new GuestTimeoutError('agent handshake', o.timeoutMs, o.timeoutSetting ?? '[vm] boot_timeout_ms');
    }
    return new FakeAgent(host, this);
  };
}

const procTables = new WeakMap<FakeGuestHost, FakeProcTable>();
const files = (h: FakeGuestHost) => ((h.guest.files ??= {}) as Record<string, { data: string; mode: number }>);

class FakeAgent implements GuestAgent {
  private closed = false;
  readonly processes: FakeProcesses;

  constructor(private readonly host: FakeGuestHost, private readonly g: FakeGuest) {
    void host.exited.then(() => { this.closed = true; });
    if (!procTables.has(host)) procTables.set(host, new FakeProcTable());
    this.processes = new FakeProcesses(procTables.get(host)!, (req) => this.result(req), (op) => this.live(op));
  }

  get isClosed(): boolean { return this.closed || this.host.gone !== undefined; }

  private live(op: string): void {
    if (this.isClosed) throw new GuestDisconnectedError(`${op}: agent connection closed`);
  }

  /** What the test's handler says a command does (every command exits 0 with no output unless told otherwise). */
  private result(req: ExecRequest): ExecResult {
    this.g.execs.push(req);
    return {
      pid: 100, exitCode: 0, signal: null, timedOut: false, truncated: false, durationMs: 1, stdout: Buffer.alloc(0), stderr: Buffer.alloc(0),
      ...this.g.handler(req),
    };
  }

  async exec(req: ExecRequest, o: ExecOptions = {}): Promise<ExecResult> {
    this.live('exec');
    if (o.signal?.aborted) throw new CancelledError('exec', o.signal.reason);
    const out = this.result(req);
    if (out.stdout.length) o.onData?.('stdout', out.stdout);
    if (out.stderr.length) o.onData?.('stderr', out.stderr);
    return out;
  }

  async writeFile(p: string, data: Buffer, o: WriteFileOptions = {}): Promise<{ bytes: number }> {
    this.live('write');
    const f = files(this.host);
    const prev = o.append && f[p] ? Buffer.from(f[p].data, 'base64') : Buffer.alloc(0);
    f[p] = { data: Buffer.concat([prev, data]).toString('base64'), mode: o.mode ?? 0o644 };
    return { bytes: data.length };
  }

  async readFile(p: string, o: ReadFileOptions): Promise<{ data: Buffer; mode: number | undefined }> {
    this.live('read');
    const f = files(this.host)[p];
    if (!f) throw new FileNotFoundError(`read ${p}: no such file or directory`);
    const data = Buffer.from(f.data, 'base64');
    if (data.length > o.maxBytes) throw new FileTooLargeError(`read ${p}: guest sent more than ${o.maxBytes} bytes`);
    if (o.onChunk) { // as the real agent: the content goes to the callback, the result carries none
      o.onChunk(data);
      return { data: Buffer.alloc(0), mode: f.mode };
    }
    return { data, mode: f.mode };
  }

  async writeFileStream(p: string, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, o: StreamWriteOptions): Promise<{ bytes: number }> {
    this.live('write');
    const parts: Buffer[] = [];
    let n = 0;
    for await (const b of source) {
      n += b.length;
      if (n > o.maxBytes) throw new FileTooLargeError(`write ${p}: more than the ${o.maxBytes}-byte transfer limit`);
      parts.push(Buffer.from(b));
    }
    return this.writeFile(p, Buffer.concat(parts, n), o);
  }

  async readFileStream(p: string, o: StreamReadOptions): Promise<FileStream> {
    const { data, mode } = await this.readFile(p, { maxBytes: o.maxBytes });
    const window = o.window ?? 8 << 20;
    return {
      size: data.length,
      mode,
      chunks: (async function* () { for (let i = 0; i === 0 || i < data.length; i += window) yield data.subarray(i, i + window); })(),
    };
  }

  async health(): Promise<Record<string, unknown>> {
    this.live('health');
    return { ok: true, fake: true };
  }

  async syncClock(): Promise<void> {
    this.live('time sync');
    this.g.clockSyncs++;
  }

  async netConfig(c: { mac: string; net: string }): Promise<boolean> {
    this.live('net config');
    if (!this.g.netConfigCap) return false;
    this.g.netConfigs.push({ ...c });
    return true;
  }

  async fsFreeze(path: string): Promise<boolean> {
    this.live('fs freeze');
    this.g.freezes.push(`freeze ${path}`);
    return true;
  }

  async fsThaw(path: string): Promise<void> {
    this.live('fs thaw');
    this.g.freezes.push(`thaw ${path}`);
  }

  async powerOff(): Promise<void> {
    this.live('poweroff');
    this.host.exit({ code: 0, signal: null });
  }

  close(): void { this.closed = true; }
}
