// HTTP to the islet daemon over its unix socket or TCP, on node:http (which
// speaks to unix sockets natively). Error bodies {code, message, hint} become
// the SDK's error classes; a dropped connection becomes DaemonUnavailableError.
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
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

export class Transport {
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
    // A large body waits for the daemon's 100 Continue, so a refusal (413, an unknown workspace) arrives
    // before any byte is sent: refused mid-body, the closing connection could reset the request before
    // its response was read, and the caller would see an unreachable daemon instead of the error.
    const waits = stream !== undefined || (payload !== undefined && payload.length > EXPECT_CONTINUE_OVER);
    if (waits) headers.expect = '100-continue';
    const target = this.endpoint.socketPath
      ? { socketPath: this.endpoint.socketPath, path: pathWithQuery, host: 'localhost' }
      : (() => { const u = new URL(pathWithQuery, this.endpoint.url); return { host: u.hostname, port: u.port, path: u.pathname + u.search }; })();
    let req: ClientRequest | undefined;
    let started = false;
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      // A fresh connection per request: a kept-alive socket the daemon is closing (idle timeout, restart)
      // would fail a request with ECONNRESET that never reached it; local connections cost little.
      const r = request({ ...target, method, headers, signal: o.signal, agent: false }, resolve);
      req = r;
      r.once('error', (e) => reject(o.signal?.aborted ? e : IsletApiError.unavailable(e)));
      const start = () => {
        if (started) return;
        started = true;
        clearTimeout(fallback);
        if (!stream) {
          r.end(payload);
          return;
        }
        // The daemon may answer early (an error status) while the body still flows: the response settles the call;
        // a source that fails ends the request, which the daemon sees as a cut body and discards.
        pipeline(Readable.from(stream, { objectMode: false }), r).catch((e: unknown) => {
          r.destroy(e as Error);
          reject(e);
        });
      };
      let fallback: NodeJS.Timeout | undefined;
      if (!waits) { start(); return; }
      // RFC 9110 §10.1.1: do not wait for ever on a server (or proxy) that ignores Expect.
      fallback = setTimeout(start, CONTINUE_WAIT_MS);
      r.once('continue', start);
      r.once('response', () => clearTimeout(fallback));
      r.flushHeaders();
    });
    if (!started) {
      // Answered before the body was asked for: it will never be sent.
      (stream as { destroy?: () => void } | undefined)?.destroy?.();
      res.once('end', () => req?.destroy());
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

export async function readAll(res: IncomingMessage, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of res) {
    size += (c as Buffer).length;
    if (size > max) {
      res.destroy();
      throw new IsletApiError('FILE_TOO_LARGE', `reply over ${max} bytes`, undefined, 0);
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks, size);
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
