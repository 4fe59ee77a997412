// ws.pty: a terminal in a workspace. create() starts a PTY process (POST
// /processes with pty {cols, rows}) and attaches to it over the daemon's
// WebSocket (GET /v1/workspaces/{id}/processes/{pid}/pty; message format in
// docs/daemon.md, "Terminals").
import { WebSocket } from 'ws';
import type { ApiClient, ProcessInfo } from './api.js';
import { errorFromBody, IsletApiError } from './errors.js';

export interface PtyOptions {
  cols: number;
  rows: number;
  /** Terminal output, as it arrives. */
  onData?: (data: Buffer) => void;
  /** What to run: a string runs with /bin/sh -c, an array is an argv (default: a login shell). */
  command?: string | string[];
  env?: Record<string, string>;
  cwd?: string;
}

export interface PtyHandle {
  readonly processId: number;
  readonly pid: number;
  /** Sends keystrokes (a string is UTF-8). */
  write(data: string | Buffer): void;
  resize(cols: number, rows: number): void;
  /** Signals the process group (default TERM). */
  kill(signal?: 'INT' | 'TERM' | 'KILL' | 'HUP' | 'QUIT'): void;
  /** Resolves with the exit status (code, or 128 + signal number) once it exits and all output was delivered. */
  wait(): Promise<number>;
  /** Detaches (the process keeps running; attach again with attach()). */
  disconnect(): void;
}

/** The same login shell as `islet ws shell`. */
const LOGIN_SHELL = 'if [ -x /bin/bash ]; then exec /bin/bash -l; else exec /bin/sh -l; fi';

export async function createPty(api: ApiClient, id: string, o: PtyOptions): Promise<PtyHandle> {
  const p = await api.processStart(id, {
    command: o.command ?? LOGIN_SHELL, env: { TERM: 'xterm-256color', ...o.env }, cwd: o.cwd, pty: { cols: o.cols, rows: o.rows },
  });
  return attachPty(api, id, p, o);
}

/** Attaches to a PTY process (from createPty, or started elsewhere with pty) from an output offset (default 0). */
export function attachPty(api: ApiClient, id: string, p: ProcessInfo, o: { onData?: (d: Buffer) => void; offset?: number } = {}): Promise<PtyHandle> {
  const e = api.http.endpoint;
  const path = `/v1/workspaces/${encodeURIComponent(id)}/processes/${p.process_id}/pty?offset=${o.offset ?? 0}`;
  const headers: Record<string, string> = { ...e.headers };
  if (e.token) headers.authorization = `Bearer ${e.token}`;
  const url = e.socketPath ? `ws+unix:${e.socketPath}:${path}` : new URL(path, e.url!.replace(/^http/, 'ws')).toString();
  const ws = new WebSocket(url, { headers, perMessageDeflate: false });
  let settle!: { ok: (n: number) => void; err: (e: Error) => void };
  const exited = new Promise<number>((ok, err) => { settle = { ok, err }; });
  exited.catch(() => undefined); // surfaced through wait()
  let status: number | undefined;
  let failure: Error | undefined;
  ws.on('message', (data, isBinary) => {
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    if (isBinary) { o.onData?.(buf); return; }
    let m: { type?: string; exit_status?: number; error?: unknown };
    try { m = JSON.parse(buf.toString('utf8')) as typeof m; } catch { return; } // not ours to crash on; the protocol sends JSON
    if (m.type === 'exit') status = m.exit_status ?? 1;
    else if (m.type === 'error') failure = errorFromBody(m.error, 200);
  });
  ws.on('close', () => {
    if (status !== undefined) settle.ok(status);
    else settle.err(failure ?? IsletApiError.unavailable(new Error('the terminal connection closed before the process exited')));
  });
  return new Promise<PtyHandle>((resolve, reject) => {
    ws.once('error', (err) => reject(IsletApiError.unavailable(err)));
    ws.once('unexpected-response', (_req, res) => reject(new IsletApiError('NOT_FOUND', `terminal attach refused: HTTP ${res.statusCode}`, undefined, res.statusCode ?? 0)));
    ws.once('open', () => {
      ws.on('error', () => undefined); // reported through wait()
      const send = (d: string | Buffer, binary: boolean) => { if (ws.readyState === WebSocket.OPEN) ws.send(d, { binary }); };
      resolve({
        processId: p.process_id,
        pid: p.pid,
        write: (d) => send(typeof d === 'string' ? Buffer.from(d) : d, true),
        resize: (cols, rows) => send(JSON.stringify({ type: 'resize', cols, rows }), false),
        kill: (signal = 'TERM') => send(JSON.stringify({ type: 'signal', signal }), false),
        wait: () => exited,
        disconnect: () => ws.close(1000, 'detached'),
      });
    });
  });
}
