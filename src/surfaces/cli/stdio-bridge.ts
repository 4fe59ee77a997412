// `islet serve` over stdio is a front for the daemon: it relays the MCP
// client's stdin and stdout, line by line, to one MCP session on the daemon's
// socket. The session's owner is this process's (--owner, else [server]
// stdio_owner). If the daemon dies, calls in flight end with a coded
// DAEMON_UNAVAILABLE error and the front starts a new daemon (which re-attaches
// the VMs), replays the client's initialize, and carries on: the MCP client
// keeps its session.
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { IsletError } from '../../core/errors.js';
import { STDIO_BRIDGE_PATH, STDIO_UPGRADE } from '../daemon/daemon.js';

/** Bounds one JSON-RPC line in either direction (the SDK's stdio transports refuse more than 10 MiB). */
const MAX_LINE = 32 << 20;
const REPLAY_ID = 'islet-bridge-replayed-initialize';

type Json = Record<string, unknown>;

function upgrade(socketPath: string, owner: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const req = request({
      socketPath, path: STDIO_BRIDGE_PATH, host: 'localhost',
      headers: { Connection: 'Upgrade', Upgrade: STDIO_UPGRADE, 'x-islet-owner': owner },
    });
    req.once('response', (res) => reject(new IsletError('HOST_PREREQUISITE', `the daemon refused the stdio bridge (HTTP ${res.statusCode})`,
      'restart it: islet daemon stop')));
    req.once('error', (e) => reject(new IsletError('HOST_PREREQUISITE', `cannot reach the islet daemon: ${e.message}`, 'islet daemon status', undefined, { cause: e })));
    req.once('upgrade', (_res, socket: Socket, head: Buffer) => {
      if (head.length > 0) socket.unshift(head);
      resolve(socket);
    });
    req.end();
  });
}

/** Splits a byte stream into lines, refusing (onTooLong) a line over MAX_LINE. */
function lines(onLine: (l: string) => void, onTooLong: () => void): (chunk: Buffer) => void {
  let buf = '';
  return (chunk) => {
    buf += chunk.toString('utf8');
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (l.trim()) onLine(l);
    }
    if (buf.length > MAX_LINE) { buf = ''; onTooLong(); }
  };
}

const parse = (l: string): Json | undefined => { try { const v: unknown = JSON.parse(l); return typeof v === 'object' && v !== null ? v as Json : undefined; } catch { return undefined; } };

/** The answer to a call the daemon took down with it: a tool error the model can read, or a JSON-RPC error. */
function lostReply(id: unknown, method: string): string {
  const err = { code: 'DAEMON_UNAVAILABLE', message: `the islet daemon stopped during ${method}; it was restarted and the call was not completed`,
    hint: 'retry the call; workspaces and their VMs survive a daemon restart', retryable: true };
  if (method === 'tools/call') return JSON.stringify({ jsonrpc: '2.0', id, result: { isError: true, content: [{ type: 'text', text: JSON.stringify(err) }] } });
  return JSON.stringify({ jsonrpc: '2.0', id, error: { code: -32000, message: `${err.code}: ${err.message}` } });
}

/**
 * Relays stdin/stdout until stdin ends; resolves with the reason. connect()
 * finds (or starts) the daemon and returns its socket path.
 */
export async function bridgeStdio(connect: () => Promise<string>, owner: string): Promise<string> {
  let sock = await upgrade(await connect(), owner);
  let connected = true;
  const queue: string[] = [];
  const pending = new Map<unknown, string>();
  let initLine: string | undefined;
  let initializedLine: string | undefined;
  let replaying = false;

  const toDaemon = (l: string) => {
    if (connected && !replaying) sock.write(`${l}\n`);
    else queue.push(l);
  };
  const toClient = (l: string) => { process.stdout.write(`${l}\n`); };

  return new Promise<string>((resolve) => {
    let ended = false;
    const finish = (why: string) => { if (!ended) { ended = true; sock.end(); resolve(why); } };

    process.stdin.on('data', lines((l) => {
      const m = parse(l);
      if (m && typeof m.method === 'string') {
        if (m.id !== undefined) pending.set(m.id, m.method);
        if (m.method === 'initialize') initLine = l;
        if (m.method === 'notifications/initialized') initializedLine = l;
      }
      toDaemon(l);
    }, () => toClient(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32600, message: `message over ${MAX_LINE} bytes` } }))));
    process.stdin.once('end', () => finish('stdin closed'));

    const attach = (s: Socket) => {
      s.on('data', lines((l) => {
        const m = parse(l);
        if (m && m.method === undefined && m.id !== undefined) {
          if (m.id === REPLAY_ID) { // the re-initialized session is ready: send what waited
            replaying = false;
            if (initializedLine) s.write(`${initializedLine}\n`);
            for (const q of queue.splice(0)) s.write(`${q}\n`);
            return;
          }
          pending.delete(m.id);
        }
        toClient(l);
      }, () => s.destroy()));
      s.once('close', () => {
        if (ended) return;
        connected = false;
        for (const [id, method] of pending) toClient(lostReply(id, method));
        pending.clear();
        void reconnect();
      });
      s.on('error', () => s.destroy());
    };

    const reconnect = async () => {
      process.stderr.write('islet: the daemon went away; starting a new one\n');
      try {
        sock = await upgrade(await connect(), owner);
      } catch (e) {
        process.stderr.write(`islet: cannot reconnect: ${e instanceof Error ? e.message : String(e)}\n`);
        finish('the daemon is gone');
        return;
      }
      connected = true;
      attach(sock);
      if (initLine) {
        const init = parse(initLine);
        replaying = true;
        sock.write(`${JSON.stringify({ ...init, id: REPLAY_ID })}\n`);
      } else {
        for (const q of queue.splice(0)) sock.write(`${q}\n`);
      }
    };

    attach(sock);
  });
}
