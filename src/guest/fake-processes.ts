// Background processes for the fake agent (guest/fake.ts), with the real
// agent's contract (test/contract/drivers.ts). A fake process runs the fake's
// exec handler when its input ends: at its start without stdin, when stdin is
// closed with it. Until then it is running and can be signalled or waited
// for. Its output (the handler's stdout, then its stderr) sits in a ring of
// ringBytes, as in the agent, so offsets and dropped bytes mean the same.
import { CancelledError } from '../core/errors.js';
import type { ExecRequest, ExecResult, GuestProcesses, OutputRequest, ProcInfo, ProcOutput, ProcStartRequest } from './agent.js';
import { guestErrorFrom } from './errors.js';
import { DEFAULT_READ_BYTES, MAX_READ_BYTES, MAX_RING_BYTES, OutputPart } from './process.js';

const DEFAULT_RING_BYTES = 1 << 20; // the agent's default (agent/internal/proto/proc.go)

interface FakeProc {
  info: ProcInfo;
  req: ProcStartRequest;
  ring: number;
  /** Every output part with the offset of its first byte; parts wholly before base() are gone. */
  out: Array<{ at: number; part: OutputPart }>;
  stdin: Buffer[];
  changed: Array<() => void>;
  timer?: NodeJS.Timeout;
}

/** A guest's processes: they belong to the guest, not to one connection, so a reconnect finds them (as in the agent). */
export class FakeProcTable {
  readonly procs = new Map<number, FakeProc>();
  next = 1;
}

export class FakeProcesses implements GuestProcesses {
  private readonly procs: Map<number, FakeProc>;

  /** run: the fake's exec handler; live: throws once this connection is closed. */
  constructor(private readonly table: FakeProcTable, private readonly run: (req: ExecRequest) => ExecResult,
    private readonly live: (op: string) => void) {
    this.procs = table.procs;
  }

  supports(): boolean { return true; }

  async start(req: ProcStartRequest, signal?: AbortSignal): Promise<{ id: number; pid: number }> {
    this.enter('process start', signal);
    const id = this.table.next++;
    const info: ProcInfo = {
      id, pid: 1000 + id, command: (req.shell ?? req.argv?.join(' ') ?? '').slice(0, 256), running: true, exitCode: null, signal: null,
      timedOut: false, startedUnixMs: Date.now(), durationMs: 0, outputBytes: 0, droppedBytes: 0, stdin: req.stdin === true, pty: req.pty !== undefined,
    };
    const p: FakeProc = { info, req, ring: Math.min(req.ringBytes || DEFAULT_RING_BYTES, MAX_RING_BYTES), out: [], stdin: [], changed: [] };
    this.procs.set(id, p);
    if (req.timeoutMs) {
      p.timer = setTimeout(() => this.end(p, { signal: 'KILL', timedOut: true }), req.timeoutMs);
      p.timer.unref();
    }
    if (!info.stdin) this.finish(p);
    return { id, pid: info.pid };
  }

  async list(signal?: AbortSignal): Promise<ProcInfo[]> {
    this.enter('process list', signal);
    return [...this.procs.values()].map((p) => this.infoOf(p));
  }

  async output(req: OutputRequest, signal?: AbortSignal): Promise<ProcOutput> {
    this.enter('process output', signal);
    const p = this.get(req.id);
    if (req.offset > p.info.outputBytes) {
      throw guestErrorFrom({ code: 'INVALID_ARGUMENT', message: `offset ${req.offset} is past the end of the output (${p.info.outputBytes} bytes)` });
    }
    if (req.offset === p.info.outputBytes && p.info.running && req.waitMs) await this.changeOf(p, req.waitMs, signal);
    const max = Math.min(req.maxBytes || DEFAULT_READ_BYTES, MAX_READ_BYTES);
    const start = Math.max(req.offset, this.base(p));
    const parts: OutputPart[] = [];
    let at = start;
    for (const { at: from, part } of p.out) {
      const end = from + part.data.length;
      if (end <= at || at - start >= max) continue;
      const data = part.data.subarray(at - from, Math.min(part.data.length, at - from + max - (at - start)));
      const last = parts[parts.length - 1];
      if (last?.stream === part.stream) last.data = Buffer.concat([last.data, data]);
      else parts.push({ stream: part.stream, data });
      at += data.length;
    }
    return { start, next: at, dropped: start - req.offset, parts, proc: this.infoOf(p) };
  }

  async write(id: number, data: Buffer, close: boolean, signal?: AbortSignal): Promise<number> {
    this.enter('process write', signal);
    const p = this.get(id);
    if (!p.info.stdin) throw guestErrorFrom({ code: 'INVALID_ARGUMENT', message: `process ${id} was started without stdin` });
    if (p.info.running) {
      p.stdin.push(Buffer.from(data));
      if (close) this.finish(p);
    }
    return data.length;
  }

  async signal(id: number, sig: string, signal?: AbortSignal): Promise<ProcInfo> {
    this.enter('process signal', signal);
    const p = this.get(id);
    this.end(p, { signal: sig });
    return this.infoOf(p);
  }

  async wait(id: number, waitMs: number, signal?: AbortSignal): Promise<ProcInfo> {
    this.enter('process wait', signal);
    const p = this.get(id);
    if (p.info.running && waitMs > 0) await this.changeOf(p, waitMs, signal);
    return this.infoOf(p);
  }

  async resize(id: number, _cols: number, _rows: number, signal?: AbortSignal): Promise<void> {
    this.enter('process resize', signal);
    const p = this.get(id);
    if (!p.info.pty) throw guestErrorFrom({ code: 'INVALID_ARGUMENT', message: `process ${id} has no terminal` });
  }

  private enter(op: string, signal?: AbortSignal): void {
    this.live(op);
    if (signal?.aborted) throw new CancelledError(op, signal.reason);
  }

  private get(id: number): FakeProc {
    const p = this.procs.get(id);
    if (!p) throw guestErrorFrom({ code: 'NOT_FOUND', message: `no process ${id} (it never existed, or exited and was forgotten to make room)` });
    return p;
  }

  private base(p: FakeProc): number { return Math.max(0, p.info.outputBytes - p.ring); }

  private infoOf(p: FakeProc): ProcInfo {
    const durationMs = p.info.running ? Date.now() - p.info.startedUnixMs : p.info.durationMs;
    return { ...p.info, durationMs, droppedBytes: this.base(p) };
  }

  /** The input ended: the handler's result is the process's output and exit. */
  private finish(p: FakeProc): void {
    const r = this.run({ ...p.req, stdin: p.req.stdin ? Buffer.concat(p.stdin) : undefined, timeoutMs: p.req.timeoutMs });
    for (const [stream, data] of [['stdout', r.stdout], ['stderr', r.stderr]] as const) {
      if (!data.length) continue;
      p.out.push({ at: p.info.outputBytes, part: { stream, data } });
      p.info.outputBytes += data.length;
    }
    this.end(p, { exitCode: r.exitCode, signal: r.signal ?? undefined });
  }

  private end(p: FakeProc, x: { exitCode?: number | null; signal?: string; timedOut?: boolean }): void {
    if (!p.info.running) return;
    clearTimeout(p.timer);
    Object.assign(p.info, {
      running: false, exitCode: x.signal ? null : x.exitCode ?? 0, signal: x.signal ?? null, timedOut: x.timedOut === true,
      durationMs: Date.now() - p.info.startedUnixMs,
    });
    for (const f of p.changed.splice(0)) f();
  }

  /** Resolves at the process's next change (its exit), after ms, or rejects when signal aborts. */
  private changeOf(p: FakeProc, ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = () => { clearTimeout(t); signal?.removeEventListener('abort', abort); resolve(); };
      const abort = () => { clearTimeout(t); reject(new CancelledError('process wait', signal?.reason)); };
      const t = setTimeout(done, ms);
      p.changed.push(done);
      signal?.addEventListener('abort', abort, { once: true });
    });
  }
}
