// HTTP to the islet daemon over its unix socket or TCP, on node:http (which
// speaks to unix sockets natively). Error bodies {code, message, hint} become
// the SDK's error classes; a dropped connection becomes DaemonUnavailableError.
import { Agent, request, type ClientRequest, type IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errorFromBody, IsletApiError } from './errors.js';

export interface Endpoint {
  /** Unix socket path of a local daemon. */
  socketPath?: string;
  /** Base URL of a daemon over TCP, e.g. http://127.0.0.1:7420. */
  url?: string;
  token?: string;
  /** Extra headers on every request (the CLI's owner claim on the unix socket). */
  headers?: Record<string, string>;
}

export interface CallOptions {
  query?: Record<string, string | undefined>;
  json?: unknown;
  /** Raw bytes: a Buffer is sent with its length; a stream is sent chunked as it yields, never held whole. */
  body?: Buffer | AsyncIterable<Uint8Array>;
  signal?: AbortSignal;
}

/** Bodies larger than this ask first (Expect: 100-continue); smaller ones cost a round trip less. */
const EXPECT_CONTINUE_OVER = 1 << 20;
const CONTINUE_WAIT_MS = 2_000;

/** Bounds what the SDK buffers from one JSON reply. */
const MAX_JSON_REPLY = 64 << 20;

/** Idle kept-alive sockets close before the daemon's own keep-alive timeout (Node's default 5 s) would close them. */
const IDLE_SOCKET_MS = 4_000;
/** Bodies up to this size go whole into the socket's kernel buffer, so none is cut mid-way by an early answer. */
const KEEPALIVE_MAX_BODY = 64 << 10;

export class Transport {
  /** Idle sockets are unref'd by Node, so they never keep a client process alive. */
  private readonly agent = new Agent({ keepAlive: true, timeout: IDLE_SOCKET_MS });
  constructor(readonly endpoint: Endpoint) {}

  /** Sends a request and returns the raw response (status checked: an error status throws the mapped error). */
  async send(method: string, p: string, o: CallOptions = {}): Promise<IncomingMessage> {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(o.query ?? {})) if (v !== undefined) qs.set(k, v);
    const pathWithQuery = qs.size > 0 ? `${p}?${qs}` : p;
    const headers: Record<string, string> = { ...this.endpoint.headers };
    if (this.endpoint.token) headers.authorization = `Bearer ${this.endpoint.token}`;
    let payload: Buffer | undefined;
    let stream: AsyncIterable<Uint8Array> | undefined;
    if (o.json !== undefined) {
      payload = Buffer.from(JSON.stringify(o.json));
      headers['content-type'] = 'application/json';
    } else if (Buffer.isBuffer(o.body)) {
      payload = o.body;
      headers['content-type'] = 'application/octet-stream';
    } else if (o.body) {
      stream = o.body;
      headers['content-type'] = 'application/octet-stream';
    }
    if (payload) headers['content-length'] = String(payload.length);
    const target = this.endpoint.socketPath
      ? { socketPath: this.endpoint.socketPath, path: pathWithQuery, host: 'localhost' }
      : (() => { const u = new URL(pathWithQuery, this.endpoint.url); return { host: u.hostname, port: u.port, path: u.pathname + u.search }; })();
    // Kept-alive connections spare the daemon a connection setup per call (a fifth of a fast exec's round trip).
    // A socket the daemon closes while idle fails the next request on it with a reset that never reached the
    // daemon: such a request is sent once more on a fresh connection. A streamed or large body gets a connection
    // of its own: it cannot be replayed, or the daemon may answer it early (413) and cut the socket mid-body.
    // A large body waits for the daemon's 100 Continue, so a refusal (413, an unknown workspace) arrives
    // before any byte is sent: refused mid-body, the closing connection could reset the request before
    // its response was read, and the caller would see an unreachable daemon instead of the error.
    const waits = stream !== undefined || (payload !== undefined && payload.length > EXPECT_CONTINUE_OVER);
    if (waits) headers.expect = '100-continue';
    let unsent: ClientRequest | undefined;
    const attempt = (agent: Agent | false) => new Promise<IncomingMessage>((resolve, reject) => {
      let answered = false;
      let started = false;
      let fallback: NodeJS.Timeout | undefined;
      const req: ClientRequest = request({ ...target, method, headers, signal: o.signal, agent }, (res) => {
        answered = true;
        clearTimeout(fallback);
        if (!started) unsent = req;
        resolve(res);
      });
      req.on('error', (e: NodeJS.ErrnoException) => { // on, not once: a socket cut mid-body may report twice (reset, then EPIPE)
        // Only a request the daemon never answered is sent again (an early answer, e.g. 413 to a body still
        // being sent, may be followed by a reset of the same socket).
        if (!answered && req.reusedSocket && !stream && !o.signal?.aborted && (e.code === 'ECONNRESET' || e.code === 'EPIPE')) {
          attempt(false).then(resolve, reject);
          return;
        }
        reject(o.signal?.aborted ? e : IsletApiError.unavailable(e));
      });
      const start = () => {
        if (started || answered) return;
        started = true;
        clearTimeout(fallback);
        if (!stream) {
          req.end(payload);
          return;
        }
        // The daemon may answer early (an error status) while the body still flows: the response settles the call;
        // a source that fails ends the request, which the daemon sees as a cut body and discards.
        pipeline(Readable.from(stream, { objectMode: false }), req).catch((e: unknown) => {
          req.destroy(e as Error);
          reject(e);
        });
      };
      if (!waits) { start(); return; }
      // RFC 9110 §10.1.1: do not wait for ever on a server (or proxy) that ignores Expect.
      fallback = setTimeout(start, CONTINUE_WAIT_MS);
      req.once('continue', start);
      req.flushHeaders();
    });
    const res = await attempt(!stream && (payload?.length ?? 0) <= KEEPALIVE_MAX_BODY ? this.agent : false);
    if (unsent) {
      // Answered before the body was asked for: it will never be sent, and the connection cannot be reused.
      (stream as { destroy?: () => void } | undefined)?.destroy?.();
      const req = unsent;
      res.once('end', () => req.destroy());
    }
    if (res.statusCode !== undefined && res.statusCode >= 400) {
      const text = (await readAll(res, 1 << 20)).toString('utf8');
      let body: unknown;
      try { body = JSON.parse(text); } catch { body = { code: 'INTERNAL', message: `HTTP ${res.statusCode}: ${text.slice(0, 200)}` }; }
      throw errorFromBody(body, res.statusCode);
    }
    return res;
  }

  async json<T>(method: string, p: string, o: CallOptions = {}): Promise<T> {
    const res = await this.send(method, p, o);
    return JSON.parse((await readAll(res, MAX_JSON_REPLY)).toString('utf8')) as T;
  }
}

export function readAll(res: IncomingMessage, max: number): Promise<Buffer> {
  const declared = Number(res.headers['content-length'] ?? NaN);
  // A declared size gets its buffer up front: each chunk is copied in as it arrives (while the daemon still
  // fetches the next from the guest) instead of all of them at the end, after the last byte. 'data' events,
  // not for-await: a 32 MiB body is ~500 chunks, and a promise per chunk is CPU taken from the guest's QEMU.
  let whole = Number.isSafeInteger(declared) && declared >= 0 && declared <= max ? Buffer.allocUnsafe(declared) : undefined;
  let chunks: Buffer[] = [];
  let size = 0;
  return new Promise((resolve, reject) => {
    res.on('data', (b: Buffer) => {
      if (size + b.length > max) {
        res.destroy();
        reject(new IsletApiError('FILE_TOO_LARGE', `reply over ${max} bytes`, undefined, 0));
        return;
      }
      if (whole && size + b.length > whole.length) { // more than declared (the parser does not allow it): collect instead
        chunks = [whole.subarray(0, size)];
        whole = undefined;
      }
      if (whole) b.copy(whole, size);
      else chunks.push(b);
      size += b.length;
    });
    res.once('error', reject);
    res.once('aborted', () => reject(new Error('the reply was cut short')));
    res.once('end', () => {
      if (whole) resolve(size === whole.length ? whole : whole.subarray(0, size));
      else resolve(Buffer.concat(chunks, size));
    });
  });
}

/** Splits a response into NDJSON events, each line bounded. */
export async function* ndjson(res: IncomingMessage, maxLine = 8 << 20): AsyncGenerator<Record<string, unknown>> {
  let buf = '';
  for await (const c of res) {
    buf += (c as Buffer).toString('utf8');
    if (buf.length > maxLine && !buf.includes('\n')) throw new IsletApiError('GUEST_PROTOCOL_VIOLATION', `event line over ${maxLine} bytes`, undefined, 0);
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim()) yield JSON.parse(line) as Record<string, unknown>;
    }
  }
  if (buf.trim()) yield JSON.parse(buf) as Record<string, unknown>;
}
