// Host side of the agent protocol: one connection per VM, multiplexed by
// request id. Everything the guest sends is bounded here before it is kept.
import { randomInt } from 'node:crypto';
import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import {
  CancelledError, GuestDisconnectedError, GuestProtocolMismatchError, GuestTimeoutError, IsletError,
} from '../core/errors.js';
import { guestErrorFrom } from './errors.js';
import {
  DATA_CHUNK, FLAG_EOF, Frame, FrameDecoder, FrameType, PROTOCOL_VERSION, STREAM_MASK, Stream, decodeJson, encodeFrame, encodeHeader, encodeJson,
} from './frame.js';

export const HOST_CLIENT = 'islet/0.1.0';

export interface HelloInfo {
  protocol: number;
  agent: string;
  caps: string[];
  initMode?: string;
  pid?: number;
  bootMs?: number;
}

/** Routes the frames of one request; `fail` ends it from the host side. */
interface Handler {
  onFrame(f: Frame): void;
  fail(e: IsletError): void;
}

export interface ConnectOptions {
  signal?: AbortSignal;
  /** Socket connect + handshake deadline (covers the guest's boot). */
  timeoutMs: number;
  timeoutSetting?: string;
  /** After the handshake, the deadline of each single-reply request (health, time sync); none if unset. */
  requestTimeoutMs?: number;
}

export class AgentClient {
  private readonly handlers = new Map<number, Handler>();
  /**
   * Random start: the guest keeps one session across host reconnects (virtio-serial), so requests of an earlier host
   * process that died (kill -9) may still be in flight there; ids from 1 again would collide with them.
   */
  private nextId = 1 + randomInt(0x7fff_0000);
  private dead: IsletError | undefined;
  private readonly decoder = new FrameDecoder();
  readonly closed: Promise<IsletError>;
  private markClosed!: (e: IsletError) => void;
  hello: HelloInfo | undefined;
  private requestTimeoutMs: number | undefined;

  private constructor(private readonly sock: net.Socket) {
    this.closed = new Promise((r) => { this.markClosed = r; });
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('error', (e) => this.shutdown(new GuestDisconnectedError(`agent socket error: ${e.message}`, undefined, e)));
    sock.on('close', () => this.shutdown(new GuestDisconnectedError('agent connection closed')));
  }

  /**
   * Connects to the VM's agent socket and performs the handshake. The reply
   * to HELLO is the readiness signal, so this also waits for the boot.
   */
  static async connect(socketPath: string, o: ConnectOptions): Promise<AgentClient> {
    const timeout = AbortSignal.timeout(o.timeoutMs);
    const signal = o.signal ? AbortSignal.any([o.signal, timeout]) : timeout;
    const rethrow = (e: unknown): never => {
      if (timeout.aborted && !o.signal?.aborted) throw new GuestTimeoutError('agent handshake', o.timeoutMs, o.timeoutSetting ?? '[vm] boot_timeout_ms');
      if (o.signal?.aborted) throw new CancelledError('agent handshake', o.signal.reason);
      throw e;
    };
    let sock: net.Socket | undefined;
    while (!sock) {
      try {
        sock = await openSocket(socketPath, signal);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        // QEMU creates the socket just after it starts; until then, retry.
        if (signal.aborted || (code !== 'ENOENT' && code !== 'ECONNREFUSED')) return rethrow(e);
        await delay(20, undefined, { signal }).catch(() => undefined);
      }
    }
    const client = new AgentClient(sock);
    try {
      const reply = await client.request(FrameType.HELLO, { protocol: PROTOCOL_VERSION, client: HOST_CLIENT }, { signal });
      const hello = parseHello(reply);
      if (hello.protocol !== PROTOCOL_VERSION) throw new GuestProtocolMismatchError(PROTOCOL_VERSION, hello.protocol);
      client.hello = hello;
      client.requestTimeoutMs = o.requestTimeoutMs;
      return client;
    } catch (e) {
      client.close();
      return rethrow(e);
    }
  }

  get isClosed(): boolean {
    return this.dead !== undefined;
  }

  /** The HELLO of the agent now serving this connection (stage 1 turned PID 1 agent after ROOT). */
  adoptHello(v: Record<string, unknown>): void {
    const hello = parseHello(v);
    if (hello.protocol !== PROTOCOL_VERSION) throw new GuestProtocolMismatchError(PROTOCOL_VERSION, hello.protocol);
    this.hello = hello;
  }

  hasCap(cap: string): boolean {
    return this.hello?.caps.includes(cap) ?? false;
  }

  close(): void {
    this.sock.destroy();
    this.shutdown(new GuestDisconnectedError('agent connection closed by the host'));
  }

  /** Sends one JSON request and resolves with the OK payload. */
  request(type: number, body: unknown, o: { signal?: AbortSignal } = {}): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const id = this.register({
        onFrame: (f) => {
          if (f.type === FrameType.OK || f.type === FrameType.HELLO) return finish(() => resolve(decodeJson(f)));
          if (f.type === FrameType.ERROR) return finish(() => reject(guestErrorFrom(decodeJson(f))));
        },
        fail: (e) => finish(() => reject(e)),
      }, reject);
      if (id === undefined) return;
      const onAbort = () => finish(() => reject(new CancelledError(`agent request type ${type}`, o.signal?.reason)));
      o.signal?.addEventListener('abort', onAbort, { once: true });
      // A guest that stops answering must not hang its caller: the reply, if it ever comes, finds no handler.
      const ms = this.requestTimeoutMs;
      const timer = ms ? setTimeout(() => finish(() => reject(new GuestTimeoutError(`agent request type ${type}`, ms, '[vm] request_timeout_ms'))), ms) : undefined;
      const finish = (settle: () => void) => {
        clearTimeout(timer);
        o.signal?.removeEventListener('abort', onAbort);
        this.handlers.delete(id);
        settle();
      };
      if (o.signal?.aborted) return onAbort();
      this.write(encodeJson(type, id, body));
    });
  }

  /** Registers a handler under a fresh request id; rejects if the link is dead. */
  register(h: Handler, reject: (e: unknown) => void): number | undefined {
    if (this.dead) {
      reject(this.dead);
      return undefined;
    }
    let id = this.nextId;
    while (id === 0 || this.handlers.has(id)) id = (id + 1) >>> 0;
    this.nextId = (id + 1) >>> 0;
    this.handlers.set(id, h);
    return id;
  }

  unregister(id: number): void {
    this.handlers.delete(id);
  }

  /** Writes a frame, resolving once the socket can take more (backpressure). */
  write(frame: Buffer): Promise<void> {
    if (this.dead) return Promise.reject(this.dead);
    return this.sock.write(frame) ? Promise.resolve() : this.drained();
  }

  /** A frame in parts (header, payload) in one writev, the payload not copied. */
  private writeParts(head: Buffer, payload: Buffer): Promise<void> {
    if (this.dead) return Promise.reject(this.dead);
    this.sock.cork();
    this.sock.write(head);
    const ok = this.sock.write(payload);
    this.sock.uncork();
    return ok ? Promise.resolve() : this.drained();
  }

  private drained(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onDrain = () => { this.sock.off('close', onClose); resolve(); };
      const onClose = () => { this.sock.off('drain', onDrain); reject(this.dead); };
      this.sock.once('drain', onDrain);
      this.sock.once('close', onClose);
    });
  }

  /** Streams bytes as DATA frames on `stream`, the last one marked EOF unless more follows (eof false). */
  async writeData(id: number, stream: number, data: Buffer, signal?: AbortSignal, eof = true): Promise<void> {
    let off = 0;
    do {
      if (signal?.aborted) throw new CancelledError('data transfer', signal.reason);
      const chunk = data.subarray(off, off + DATA_CHUNK);
      off += chunk.length;
      if (!eof && chunk.length === 0) return;
      const flags = stream | (eof && off >= data.length ? FLAG_EOF : 0);
      await this.writeParts(encodeHeader(FrameType.DATA, flags, id, chunk.length), chunk);
    } while (off < data.length);
  }

  /**
   * DATA frames, each a list of pieces (at most DATA_CHUNK bytes in all) sent without joining them, in one
   * write to the channel; only the last may carry EOF.
   */
  writeDataFrames(id: number, stream: number, frames: readonly (readonly Buffer[])[], eof: boolean): Promise<void> {
    if (this.dead) return Promise.reject(this.dead);
    this.sock.cork();
    let ok = true;
    frames.forEach((parts, i) => {
      const n = parts.reduce((a, p) => a + p.length, 0);
      if (n > DATA_CHUNK) throw new RangeError(`a DATA frame holds at most ${DATA_CHUNK} bytes, not ${n}`);
      ok = this.sock.write(encodeHeader(FrameType.DATA, stream | (eof && i === frames.length - 1 ? FLAG_EOF : 0), id, n));
      for (const p of parts) ok = this.sock.write(p);
    });
    this.sock.uncork();
    return ok ? Promise.resolve() : this.drained();
  }

  private onData(chunk: Buffer): void {
    if (this.dead) return;
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (e) {
      this.sock.destroy();
      this.shutdown(e as IsletError);
      return;
    }
    for (const f of frames) {
      // Frames for finished or cancelled requests are late output: drop them.
      const h = this.handlers.get(f.requestId);
      if (!h) continue;
      try {
        h.onFrame(f);
      } catch (e) {
        // A malformed payload is the guest's fault: reset the channel.
        this.sock.destroy();
        this.shutdown(e instanceof IsletError ? e : new GuestDisconnectedError('bad frame from guest', undefined, e));
        return;
      }
    }
  }

  private shutdown(e: IsletError): void {
    if (this.dead) return;
    this.dead = e;
    const hs = [...this.handlers.values()];
    this.handlers.clear();
    for (const h of hs) h.fail(e);
    this.markClosed(e);
  }
}

/** The signal only bounds the connect: the socket must outlive it. */
function openSocket(p: string, signal: AbortSignal): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection({ path: p });
    const onAbort = () => { s.destroy(); reject(signal.reason); };
    signal.addEventListener('abort', onAbort, { once: true });
    s.once('connect', () => { signal.removeEventListener('abort', onAbort); s.removeAllListeners('error'); resolve(s); });
    s.once('error', (e) => { signal.removeEventListener('abort', onAbort); reject(e); });
  });
}

function parseHello(v: Record<string, unknown>): HelloInfo {
  const caps = Array.isArray(v.caps) ? v.caps.filter((c): c is string => typeof c === 'string').slice(0, 256) : [];
  const hello: HelloInfo = {
    protocol: typeof v.protocol === 'number' ? v.protocol : -1,
    agent: typeof v.agent === 'string' ? v.agent.slice(0, 64) : 'unknown',
    caps,
  };
  if (typeof v.initMode === 'string') hello.initMode = v.initMode.slice(0, 16);
  if (typeof v.pid === 'number') hello.pid = v.pid;
  if (typeof v.bootMs === 'number') hello.bootMs = v.bootMs;
  return hello;
}

export { Stream, STREAM_MASK, FLAG_EOF };
