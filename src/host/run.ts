// The one way islet runs a host program: an argv array (never a shell
// string), a timeout, bounded captured output, stderr kept for the error.
import { spawn } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import path from 'node:path';
import { CancelledError, HostCommandError } from '../core/errors.js';

export interface RunOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string | Buffer;
  /** Cap on captured stdout and stderr each; the rest is dropped. */
  maxOutputBytes?: number;
  /** Resolve with the result instead of throwing on a non-zero exit. */
  allowFailure?: boolean;
  /** Called with each complete stdout/stderr line, for progress display. */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const DEFAULT_TIMEOUT_MS = 10 * 60_000;
const DEFAULT_MAX_OUTPUT = 4 << 20;

export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [cmd, ...args] = argv;
  if (!cmd) throw new TypeError('run: empty argv');
  const max = opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(new CancelledError(cmd, opts.signal.reason));
      return;
    }
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const out = { stdout: new Collector(max), stderr: new Collector(max) };
    let timedOut = false;
    const timer = timeoutMs > 0 ? setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs) : undefined;
    const onAbort = () => child.kill('SIGKILL');
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    for (const stream of ['stdout', 'stderr'] as const) {
      let partial = '';
      child[stream]?.on('data', (chunk: Buffer) => {
        out[stream].push(chunk);
        if (opts.onLine) {
          const lines = (partial + chunk.toString('utf8')).split(/\r?\n|\r/);
          partial = lines.pop() ?? '';
          for (const l of lines) if (l) opts.onLine(l, stream);
        }
      });
    }
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on('error', () => { /* the child may exit without reading */ });
      child.stdin.end(opts.input);
    }
    child.on('error', (err: NodeJS.ErrnoException) => {
      cleanup();
      const reason = err.code === 'ENOENT' ? 'is not installed (not found in PATH)' : `could not start: ${err.message}`;
      reject(new HostCommandError(argv, reason, '', { errno: err.code }, err));
    });
    child.on('close', (code, sig) => {
      cleanup();
      const res: RunResult = { code, signal: sig, stdout: out.stdout.text(), stderr: out.stderr.text() };
      if (opts.signal?.aborted) return reject(new CancelledError(cmd, opts.signal.reason));
      if (timedOut) return reject(new HostCommandError(argv, `timed out after ${timeoutMs} ms`, res.stderr, { timeoutMs }));
      if (code !== 0 && !opts.allowFailure) {
        return reject(new HostCommandError(argv, sig ? `was killed by ${sig}` : `exited with code ${code}`, res.stderr || res.stdout, { code, signal: sig }));
      }
      resolve(res);
    });
    function cleanup() {
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    }
  });
}

class Collector {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly max: number) {}
  push(b: Buffer): void {
    if (this.size >= this.max) return;
    const take = b.subarray(0, this.max - this.size);
    this.chunks.push(take);
    this.size += take.length;
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/** Finds a program in PATH (plus the sbin dirs a non-root PATH may lack). */
export async function which(name: string): Promise<string | undefined> {
  const dirs = (process.env.PATH ?? '').split(':').concat(['/usr/local/sbin', '/usr/sbin', '/sbin']);
  for (const d of dirs) {
    if (!d) continue;
    const p = path.join(d, name);
    try {
      await access(p, constants.X_OK);
      return p;
    } catch { /* keep looking */ }
  }
  return undefined;
}
