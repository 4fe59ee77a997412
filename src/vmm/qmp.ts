// QMP client. Replies carry no reliable correlation to commands (ids are
// optional and events interleave), so commands go through one queue and at
// most one is in flight, as in Kata's govmm.
import net from 'node:net';
import { EventEmitter } from 'node:events';
import { CancelledError, IsletError, QmpError, VmExitedError } from '../core/errors.js';

const MAX_LINE = 16 << 20;

export interface QmpGreeting {
  version: { qemu: { major: number; minor: number; micro: number }; package: string };
  capabilities: string[];
}

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

interface Pending {
  command: string;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

export class QmpClient extends EventEmitter {
  private buf = '';
  private queue: Array<{ line: string; p: Pending }> = [];
  private inflight: Pending | undefined;
  private closedError: IsletError | undefined;
  readonly closed: Promise<void>;
  private markClosed!: () => void;

  private constructor(private readonly sock: net.Socket, readonly greeting: QmpGreeting) {
    super();
    this.closed = new Promise((r) => { this.markClosed = r; });
  }

  get qemuVersion(): string {
    const v = this.greeting.version.qemu;
    return `${v.major}.${v.minor}.${v.micro}`;
  }

  /** Connects, reads the greeting, and negotiates capabilities. */
  static connect(path: string, signal?: AbortSignal): Promise<QmpClient> {
    return new Promise((resolve, reject) => {
      const sock = net.createConnection(path);
      let buf = '';
      const fail = (e: unknown) => { cleanup(); sock.destroy(); reject(e); };
      const onAbort = () => fail(new CancelledError('QMP connect', signal?.reason));
      const onError = (e: Error) => fail(e);
      const onData = (chunk: Buffer) => {
        buf += chunk.toString('utf8');
        if (buf.length > MAX_LINE) return fail(new QmpError('greeting', 'ProtocolError', 'greeting too long'));
        const nl = buf.indexOf('\n');
        if (nl < 0) return;
        cleanup();
        let msg: { QMP?: QmpGreeting };
        try { msg = JSON.parse(buf.slice(0, nl)); } catch { return fail(new QmpError('greeting', 'ProtocolError', 'greeting is not JSON')); }
        if (!msg.QMP) return fail(new QmpError('greeting', 'ProtocolError', 'no QMP greeting'));
        const c = new QmpClient(sock, msg.QMP);
        c.attach(buf.slice(nl + 1));
        c.execute('qmp_capabilities').then(() => resolve(c), reject);
      };
      const cleanup = () => {
        sock.off('data', onData);
        sock.off('error', onError);
        signal?.removeEventListener('abort', onAbort);
      };
      sock.on('data', onData);
      sock.on('error', onError);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private attach(rest: string): void {
    this.sock.on('data', (c: Buffer) => this.onData(c.toString('utf8')));
    this.sock.on('error', () => { /* 'close' follows and fails what is pending */ });
    this.sock.on('close', () => this.onClose());
    if (rest) this.onData(rest);
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise<T>((resolve, reject) => {
      const line = JSON.stringify(args ? { execute: command, arguments: args } : { execute: command }) + '\n';
      this.queue.push({ line, p: { command, resolve: resolve as (v: unknown) => void, reject } });
      this.pump();
    });
  }

  /** Waits for the next event named `name` (optionally matching `pred`). */
  waitEvent(name: string, signal?: AbortSignal, pred?: (e: QmpEvent) => boolean): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      const on = (e: QmpEvent) => {
        if (e.event !== name || (pred && !pred(e))) return;
        done();
        resolve(e);
      };
      const onAbort = () => { done(); reject(new CancelledError(`waiting for QMP event ${name}`, signal?.reason)); };
      const onClose = () => { done(); reject(this.closedError); };
      const done = () => {
        this.off('event', on);
        this.off('close', onClose);
        signal?.removeEventListener('abort', onAbort);
      };
      this.on('event', on);
      this.once('close', onClose);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  close(): void {
    this.sock.destroy();
  }

  private pump(): void {
    if (this.inflight || this.closedError) return;
    const next = this.queue.shift();
    if (!next) return;
    this.inflight = next.p;
    this.sock.write(next.line);
  }

  private onData(s: string): void {
    this.buf += s;
    if (this.buf.length > MAX_LINE) {
      this.sock.destroy();
      return;
    }
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (line) this.onMessage(line);
    }
  }

  private onMessage(line: string): void {
    let msg: { return?: unknown; error?: { class: string; desc: string }; event?: string };
    try { msg = JSON.parse(line); } catch { return; }
    if (msg.event) {
      this.emit('event', msg as QmpEvent);
      return;
    }
    const p = this.inflight;
    if (!p) return;
    this.inflight = undefined;
    if (msg.error) p.reject(new QmpError(p.command, msg.error.class, msg.error.desc));
    else p.resolve(msg.return);
    this.pump();
  }

  private onClose(): void {
    this.closedError = new VmExitedError('QMP connection closed: QEMU has exited');
    const all = [...(this.inflight ? [this.inflight] : []), ...this.queue.map((q) => q.p)];
    this.inflight = undefined;
    this.queue = [];
    for (const p of all) {
      // quit's reply may race with the socket closing; closing is its success.
      if (p.command === 'quit') p.resolve(undefined);
      else p.reject(this.closedError);
    }
    this.emit('close');
    this.markClosed();
  }
}
