// Background processes over the agent channel (docs/protocol.md, "Background
// processes"): the agent owns them, so they outlive this connection. The host
// bounds what it keeps of every reply: guest strings are cut short, output
// beyond what was asked for is a protocol violation.
import { CancelledError, GuestProtocolViolationError, GuestTimeoutError, IsletError } from '../core/errors.js';
import type { AgentClient } from './client.js';
import { guestErrorFrom } from './errors.js';
import { Frame, FrameType, STREAM_MASK, Stream, decodeJson, encodeJson } from './frame.js';

export const PROC_CAP = 'proc';
export const PTY_CAP = 'proc.pty';
/** Agent limits the host mirrors (protocol.md). */
export const MAX_READ_BYTES = 4 << 20;
export const DEFAULT_READ_BYTES = 256 << 10;
export const MAX_WAIT_MS = 600_000;
export const MAX_WRITE_BYTES = 512 << 10;
export const MAX_RING_BYTES = 16 << 20;
/** How long past its own wait the guest gets to answer. */
const GRACE_MS = 10_000;

export interface ProcStartRequest {
  argv?: string[];
  shell?: string;
  env?: Record<string, string>;
  cwd?: string;
  stdin?: boolean;
  /** 0 = none: the agent kills the process group after this. */
  timeoutMs?: number;
  ringBytes?: number;
  pty?: { cols: number; rows: number };
}

export interface ProcInfo {
  id: number;
  pid: number;
  command: string;
  running: boolean;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  startedUnixMs: number;
  durationMs: number;
  outputBytes: number;
  droppedBytes: number;
  stdin: boolean;
  pty: boolean;
}

export interface OutputPart { stream: 'stdout' | 'stderr'; data: Buffer }

export interface OutputRequest { id: number; offset: number; maxBytes?: number; waitMs?: number }

export interface ProcOutput {
  /** Offset of the first byte returned (later than asked by `dropped` if those left the ring). */
  start: number;
  next: number;
  dropped: number;
  parts: OutputPart[];
  proc: ProcInfo;
}

export class ProcessesNotSupportedError extends IsletError {
  constructor(what: string) {
    super('NOT_SUPPORTED', `this workspace's guest agent has no ${what} support`,
      'the image was built with an older agent: rebuild it (islet setup --rebuild) and recreate or restart the workspace', { cap: what });
  }
}

export function requireCap(client: AgentClient, cap: string): void {
  if (!client.hasCap(cap)) throw new ProcessesNotSupportedError(cap === PTY_CAP ? 'terminal (proc.pty)' : 'background process (proc)');
}

const num = (v: unknown, d = 0) => (typeof v === 'number' && Number.isFinite(v) ? v : d);
const str = (v: unknown, max: number) => (typeof v === 'string' ? v.slice(0, max) : '');

export function parseProcInfo(v: unknown): ProcInfo {
  const o = (v && typeof v === 'object' ? v : {}) as Record<string, unknown>;
  return {
    id: num(o.id),
    pid: num(o.pid),
    command: str(o.command, 256),
    running: o.running === true,
    exitCode: typeof o.exitCode === 'number' ? o.exitCode : null,
    signal: typeof o.signal === 'string' ? o.signal.slice(0, 16) : null,
    timedOut: o.timedOut === true,
    startedUnixMs: num(o.startedUnixMs),
    durationMs: num(o.durationMs),
    outputBytes: num(o.outputBytes),
    droppedBytes: num(o.droppedBytes),
    stdin: o.stdin === true,
    pty: o.pty === true,
  };
}

export async function startProcess(client: AgentClient, req: ProcStartRequest, signal?: AbortSignal): Promise<{ id: number; pid: number }> {
  requireCap(client, PROC_CAP);
  if (req.pty) requireCap(client, PTY_CAP);
  const body = {
    argv: req.argv ?? null, shell: req.shell ?? null, env: req.env ?? {}, cwd: req.cwd ?? '', stdin: req.stdin === true,
    timeoutMs: req.timeoutMs ?? 0, ringBytes: Math.min(req.ringBytes ?? 0, MAX_RING_BYTES), ...(req.pty ? { pty: req.pty } : {}),
  };
  const r = await client.request(FrameType.PROC_START, body, { signal });
  return { id: num(r.id), pid: num(r.pid) };
}

export async function listProcesses(client: AgentClient, signal?: AbortSignal): Promise<ProcInfo[]> {
  requireCap(client, PROC_CAP);
  const r = await client.request(FrameType.PROC_LIST, {}, { signal });
  return (Array.isArray(r.procs) ? r.procs : []).slice(0, 1024).map(parseProcInfo);
}

export async function signalProcess(client: AgentClient, id: number, sig: string, signal?: AbortSignal): Promise<ProcInfo> {
  requireCap(client, PROC_CAP);
  return parseProcInfo(await client.request(FrameType.PROC_SIGNAL, { id, signal: sig }, { signal }));
}

export async function resizeProcess(client: AgentClient, id: number, cols: number, rows: number, signal?: AbortSignal): Promise<void> {
  requireCap(client, PTY_CAP);
  await client.request(FrameType.PROC_RESIZE, { id, cols, rows }, { signal });
}

/** Writes to the process's stdin (the terminal's input for a pty); close ends it (^D on a terminal). */
export async function writeProcess(client: AgentClient, id: number, data: Buffer, close: boolean, signal?: AbortSignal): Promise<number> {
  requireCap(client, PROC_CAP);
  let written = 0;
  let off = 0;
  do {
    const chunk = data.subarray(off, off + MAX_WRITE_BYTES);
    off += chunk.length;
    const last = off >= data.length;
    const r = await longRequest(client, FrameType.PROC_WRITE, { id, data: chunk.toString('base64'), close: close && last }, 5_000, signal);
    written += num(r.ok.bytes);
  } while (off < data.length);
  return written;
}

/** Waits up to waitMs for the exit; returns the process's info either way. */
export async function waitProcess(client: AgentClient, id: number, waitMs: number, signal?: AbortSignal): Promise<ProcInfo> {
  requireCap(client, PROC_CAP);
  const timeoutMs = Math.min(Math.max(0, Math.round(waitMs)), MAX_WAIT_MS);
  const r = await longRequest(client, FrameType.PROC_WAIT, { id, timeoutMs }, timeoutMs, signal);
  return parseProcInfo(r.ok);
}

/**
 * Output from `offset`; with waitMs, waits that long for some to come (or
 * the exit) when there is none yet, which is how callers follow a process.
 */
export async function readOutput(client: AgentClient, req: OutputRequest, signal?: AbortSignal): Promise<ProcOutput> {
  requireCap(client, PROC_CAP);
  const maxBytes = Math.min(req.maxBytes || DEFAULT_READ_BYTES, MAX_READ_BYTES);
  const waitMs = Math.min(Math.max(0, Math.round(req.waitMs ?? 0)), MAX_WAIT_MS);
  const r = await longRequest(client, FrameType.PROC_OUTPUT, { id: req.id, offset: req.offset, maxBytes, waitMs }, waitMs, signal, maxBytes);
  return { start: num(r.ok.start), next: num(r.ok.next), dropped: num(r.ok.dropped), parts: r.parts, proc: parseProcInfo(r.ok.proc) };
}

/**
 * A request whose reply may take up to waitMs (so not bound by [vm]
 * request_timeout_ms), with its DATA frames collected up to maxData bytes.
 */
function longRequest(client: AgentClient, type: number, body: unknown, waitMs: number, signal: AbortSignal | undefined, maxData = 0):
  Promise<{ ok: Record<string, unknown>; parts: OutputPart[] }> {
  return new Promise((resolve, reject) => {
    const parts: OutputPart[] = [];
    let got = 0;
    const id = client.register({
      onFrame(f: Frame) {
        if (f.type === FrameType.DATA) {
          got += f.payload.length;
          if (got > maxData) {
            throw new GuestProtocolViolationError(`process output of ${got} bytes, more than the ${maxData} asked for`);
          }
          const s = f.flags & STREAM_MASK;
          const stream = s === Stream.STDERR ? 'stderr' : 'stdout';
          const last = parts[parts.length - 1];
          if (last && last.stream === stream) last.data = Buffer.concat([last.data, f.payload]);
          else parts.push({ stream, data: f.payload });
          return;
        }
        if (f.type === FrameType.OK) return finish(() => resolve({ ok: decodeJson(f), parts }));
        if (f.type === FrameType.ERROR) return finish(() => reject(guestErrorFrom(decodeJson(f))));
      },
      fail: (e) => finish(() => reject(e)),
    }, reject);
    if (id === undefined) return;
    const ms = waitMs + GRACE_MS;
    const timer = setTimeout(() => finish(() => reject(new GuestTimeoutError(`agent request type ${type}`, ms, 'the wait'))), ms);
    const onAbort = () => finish(() => reject(new CancelledError(`agent request type ${type}`, signal?.reason)));
    signal?.addEventListener('abort', onAbort, { once: true });
    function finish(settle: () => void) {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      client.unregister(id!);
      settle();
    }
    if (signal?.aborted) return onAbort();
    client.write(encodeJson(type, id, body)).catch((e) => finish(() => reject(e)));
  });
}
