// A guest terminal over a WebSocket (RFC 6455), so a terminal client (the
// SDK's ws.pty, later a browser) can attach to a PTY process of a workspace:
//
//   GET /v1/workspaces/{id}/processes/{pid}/pty?offset=N   (Upgrade: websocket)
//
// The process is started with POST /v1/workspaces/{id}/processes and a pty
// {cols, rows}. Messages (docs/daemon.md, "Terminals"):
//   client → server  binary: keystrokes, written to the terminal as they are
//                    text:   {"type":"resize","cols":C,"rows":R} | {"type":"signal","signal":"INT"}
//   server → client  binary: terminal output, in order, from `offset` (default 0: the ring buffer's start)
//                    text:   {"type":"ready","process":{...}} first;
//                            {"type":"exit","exit_code","signal","exit_status"} last, then close 1000;
//                            {"type":"error","error":{code,message,hint}}, then close 1011.
// Each call goes to the service like any other request, so the caller's
// ownership applies and keystrokes count as activity (lifetimes).
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { type RawData, WebSocket, WebSocketServer } from 'ws';
import { InvalidArgumentError, IsletError, toIsletError } from '../../core/errors.js';
import type { Caller } from '../../service/types.js';
import type { WorkspaceService } from '../../service/workspaces.js';

export const PTY_PATH = /^\/v1\/workspaces\/([^/]+)\/processes\/(\d{1,10})\/pty$/;
/** Keystrokes and control messages: far above any paste a terminal sends at once. */
const MAX_MESSAGE = 256 << 10;
/** One read of terminal output. */
const READ_BYTES = 256 << 10;
/** A long poll for output; short enough that a closed socket ends the loop soon. */
const FOLLOW_WAIT_MS = 15_000;
/** Output waiting in the socket above this pauses reading from the guest (a slow client cannot make us buffer). */
const HIGH_WATER = 1 << 20;

/** The WebSocket upgrade for a terminal; false when the request is not one (the caller answers it). */
export function isPtyUpgrade(req: IncomingMessage): boolean {
  return String(req.headers.upgrade).toLowerCase() === 'websocket' && PTY_PATH.test((req.url ?? '').split('?')[0]!);
}

export class PtySockets {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE });

  constructor(private readonly svc: WorkspaceService) {}

  /** Completes the upgrade and attaches the socket to the terminal process. */
  handle(req: IncomingMessage, socket: Duplex, head: Buffer, caller: Caller): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const m = PTY_PATH.exec(url.pathname)!;
    const offset = Number(url.searchParams.get('offset') ?? '0');
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      if (!Number.isSafeInteger(offset) || offset < 0) {
        fail(ws, new InvalidArgumentError('offset must be a whole number of bytes', 'omit it to start at the buffer\'s start'));
        return;
      }
      void this.attach(ws, caller, { workspace_id: decodeURIComponent(m[1]!), process_id: Number(m[2]) }, offset);
    });
  }

  /** Ends every terminal connection (daemon stop). */
  close(): void {
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
  }

  private async attach(ws: WebSocket, caller: Caller, ref: { workspace_id: string; process_id: number }, offset0: number): Promise<void> {
    const ac = new AbortController();
    ws.once('close', () => ac.abort(new Error('terminal client went away')));
    ws.on('error', () => ws.terminate());
    // Keystrokes in order: each write waits for the one before.
    let writes: Promise<unknown> = Promise.resolve();
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      writes = writes.then(async () => {
        if (isBinary) {
          await this.svc.processWriteRaw(caller, ref, buf, { signal: ac.signal });
          return;
        }
        const msg = parseControl(buf);
        if (msg.type === 'resize') await this.svc.processResize(caller, { ...ref, cols: msg.cols, rows: msg.rows }, { signal: ac.signal });
        else await this.svc.processKill(caller, { ...ref, signal: msg.signal }, { signal: ac.signal });
      }).catch((e: unknown) => { if (!ac.signal.aborted) fail(ws, e); });
    });
    try {
      let offset = offset0;
      let first = true;
      for (;;) {
        while (ws.bufferedAmount > HIGH_WATER && ws.readyState === WebSocket.OPEN) await delay(20);
        if (ws.readyState !== WebSocket.OPEN) return;
        const r = await this.svc.processOutputRaw(caller, { ...ref, offset, max_bytes: READ_BYTES, wait_ms: first ? 0 : FOLLOW_WAIT_MS }, { signal: ac.signal });
        if (first) {
          if (!r.proc.pty) throw new InvalidArgumentError(`process ${ref.process_id} has no terminal`, 'start it with pty {cols, rows}, or read it with /output');
          ws.send(JSON.stringify({ type: 'ready', process: r.proc }));
          first = false;
        }
        for (const p of r.parts) ws.send(p.data, { binary: true });
        offset = r.next;
        if (!r.proc.running && offset >= r.proc.output_bytes) {
          ws.send(JSON.stringify({ type: 'exit', exit_code: r.proc.exit_code, signal: r.proc.signal, exit_status: r.proc.exit_status }));
          ws.close(1000, 'exited');
          return;
        }
      }
    } catch (e) {
      if (!ac.signal.aborted) fail(ws, e);
    }
  }
}

type Control = { type: 'resize'; cols: number; rows: number } | { type: 'signal'; signal: 'INT' | 'TERM' | 'KILL' | 'HUP' | 'QUIT' };

function parseControl(buf: Buffer): Control {
  let v: unknown;
  try { v = JSON.parse(buf.toString('utf8')); } catch { v = undefined; }
  const o = (v ?? {}) as Record<string, unknown>;
  const dim = (x: unknown) => typeof x === 'number' && Number.isInteger(x) && x >= 1 && x <= 1000;
  if (o.type === 'resize' && dim(o.cols) && dim(o.rows)) return { type: 'resize', cols: o.cols as number, rows: o.rows as number };
  if (o.type === 'signal' && ['INT', 'TERM', 'KILL', 'HUP', 'QUIT'].includes(String(o.signal))) return { type: 'signal', signal: o.signal as 'INT' };
  throw new InvalidArgumentError('a text message must be {"type":"resize","cols":1-1000,"rows":1-1000} or {"type":"signal","signal":"INT|TERM|KILL|HUP|QUIT"}',
    'send keystrokes as binary messages');
}

function fail(ws: WebSocket, e: unknown): void {
  const err = e instanceof IsletError ? e : toIsletError(e);
  if (ws.readyState !== WebSocket.OPEN) return;
  ws.send(JSON.stringify({ type: 'error', error: err.toJSON() }));
  ws.close(1011, err.code);
}
