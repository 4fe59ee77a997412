// exec over the agent channel: start, stream, cancel, wait. The agent
// enforces timeout and output cap; the host enforces them again, because the
// guest is untrusted and may be too slow or dead to do it.
import { CancelledError, GuestTimeoutError, InvalidArgumentError, IsletError } from '../core/errors.js';
import type { AgentClient } from './client.js';
import { guestErrorFrom } from './errors.js';
import { FrameType, STREAM_MASK, Stream, decodeJson, encodeJson } from './frame.js';

export const DEFAULT_MAX_OUTPUT = 1 << 20;
export const MAX_OUTPUT_LIMIT = 64 << 20;
/** How long past its own timeout the guest gets to report the kill. */
const GRACE_MS = 5_000;

export interface ExecRequest {
  argv?: string[];
  shell?: string;
  env?: Record<string, string>;
  cwd?: string;
  stdin?: Buffer | string;
  /** 0 = no limit. */
  timeoutMs?: number;
  maxOutputBytes?: number;
  /**
   * Output goes only to onData; the result's stdout and stderr are empty. For a caller that forwards every chunk
   * (`islet run` in the daemon), so the daemon does not also hold up to the cap of each stream.
   */
  streamOnly?: boolean;
}

export interface ExecOptions {
  signal?: AbortSignal;
  onStarted?: (pid: number) => void;
  onData?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
}

export interface ExecResult {
  pid: number | undefined;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  truncated: boolean;
  durationMs: number;
  stdout: Buffer;
  stderr: Buffer;
}

class Capped {
  private chunks: Buffer[] = [];
  size = 0;
  truncated = false;
  constructor(private readonly max: number, private readonly keep = true) {}
  push(b: Buffer): Buffer {
    const room = this.max - this.size;
    if (b.length > room) this.truncated = true;
    const take = b.length > room ? b.subarray(0, Math.max(0, room)) : b;
    if (take.length) {
      if (this.keep) this.chunks.push(take);
      this.size += take.length;
    }
    return take;
  }
  get buffer(): Buffer {
    return this.keep ? Buffer.concat(this.chunks, this.size) : Buffer.alloc(0);
  }
}

export function execInGuest(client: AgentClient, req: ExecRequest, o: ExecOptions = {}): Promise<ExecResult> {
  if ((req.argv !== undefined) === (req.shell !== undefined)) {
    return Promise.reject(new InvalidArgumentError('exec: give exactly one of argv or shell'));
  }
  const maxOut = Math.min(req.maxOutputBytes || DEFAULT_MAX_OUTPUT, MAX_OUTPUT_LIMIT);
  const timeoutMs = req.timeoutMs ?? 0;
  const started = Date.now();
  return new Promise<ExecResult>((resolve, reject) => {
    const keep = req.streamOnly !== true;
    const out = { stdout: new Capped(maxOut, keep), stderr: new Capped(maxOut, keep) };
    let pid: number | undefined;
    let hostTimer: NodeJS.Timeout | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    let cancelled: IsletError | undefined;

    const id = client.register({
      onFrame(f) {
        switch (f.type) {
          case FrameType.EXEC_STARTED: {
            const v = decodeJson(f);
            pid = typeof v.pid === 'number' ? v.pid : undefined;
            if (pid !== undefined) o.onStarted?.(pid);
            return;
          }
          case FrameType.DATA: {
            const s = f.flags & STREAM_MASK;
            const name = s === Stream.STDOUT ? 'stdout' : s === Stream.STDERR ? 'stderr' : undefined;
            if (!name) return;
            const kept = out[name].push(f.payload);
            if (kept.length) o.onData?.(name, kept);
            return;
          }
          case FrameType.EXEC_EXITED: {
            const v = decodeJson(f);
            if (cancelled) return finish(() => reject(cancelled));
            return finish(() => resolve({
              pid,
              exitCode: typeof v.exitCode === 'number' ? v.exitCode : null,
              signal: typeof v.signal === 'string' ? v.signal.slice(0, 16) : null,
              timedOut: v.timedOut === true,
              truncated: v.truncated === true || out.stdout.truncated || out.stderr.truncated,
              durationMs: typeof v.durationMs === 'number' ? v.durationMs : Date.now() - started,
              stdout: out.stdout.buffer,
              stderr: out.stderr.buffer,
            }));
          }
          case FrameType.ERROR:
            return finish(() => reject(guestErrorFrom(decodeJson(f), 'exec')));
          default:
            return; // unknown frames under our id are ignored (forward compatible)
        }
      },
      fail: (e) => finish(() => reject(e)),
    }, reject);
    if (id === undefined) return;

    // Cancel = SIGKILL the process group, then wait briefly for its exit so
    // the guest really is clean before we report.
    const kill = (why: IsletError) => {
      if (cancelled) return;
      cancelled = why;
      client.write(encodeJson(FrameType.SIGNAL, id, { signal: 'KILL' })).catch(() => undefined);
      killTimer = setTimeout(() => finish(() => reject(why)), GRACE_MS);
    };
    const onAbort = () => kill(new CancelledError('exec', o.signal?.reason));
    o.signal?.addEventListener('abort', onAbort, { once: true });
    if (timeoutMs > 0) {
      hostTimer = setTimeout(() => kill(new GuestTimeoutError('exec', timeoutMs + GRACE_MS, 'the exec timeout (MCP timeout_ms, CLI --timeout)')), timeoutMs + GRACE_MS);
    }
    function finish(settle: () => void) {
      clearTimeout(hostTimer);
      clearTimeout(killTimer);
      o.signal?.removeEventListener('abort', onAbort);
      client.unregister(id!);
      settle();
    }

    const body = {
      argv: req.argv ?? null,
      shell: req.shell ?? null,
      env: req.env ?? {},
      cwd: req.cwd ?? '',
      stdin: req.stdin !== undefined,
      timeoutMs,
      maxOutputBytes: maxOut,
    };
    client.write(encodeJson(FrameType.EXEC, id, body))
      .then(() => (req.stdin !== undefined ? client.writeData(id, Stream.STDIN, Buffer.from(req.stdin)) : undefined))
      .catch((e) => finish(() => reject(e)));
    if (o.signal?.aborted) onAbort();
  });
}

