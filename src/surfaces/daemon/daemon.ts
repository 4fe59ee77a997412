// `islet daemon`: the one process that opens the WorkspaceService for a data
// dir. It serves REST (/v1), MCP Streamable HTTP (/mcp) and the stdio bridge
// on a unix socket in the run dir (the file mode is the authentication) and,
// with [server] daemon_tcp, on http_host:http_port (bearer tokens).
import { chmodSync, chownSync, mkdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import os from 'node:os';
import { getRequestListener } from '@hono/node-server';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { Config } from '../../core/config.js';
import { FileTooLargeError, InvalidArgumentError } from '../../core/errors.js';
import type { Progress } from '../../core/progress.js';
import type { Caller } from '../../service/types.js';
import { WorkspaceService } from '../../service/workspaces.js';
import { assertSafeBind, createMcpHttpHandler, MAX_BODY_BYTES, MCP_PATH } from '../mcp/http.js';
import { createMcpServer, SERVER_INFO } from '../mcp/server.js';
import { createRestApp, callerOf } from '../rest/app.js';
import { statusFor } from '../rest/status.js';
import { bearerAuth } from './auth.js';
import { daemonPaths } from './paths.js';
import { isPtyUpgrade, PtySockets } from './pty-socket.js';

export const STDIO_BRIDGE_PATH = '/v1/mcp/stdio';
export const STDIO_UPGRADE = 'islet-mcp-stdio';
const OWNER_RE = /^[A-Za-z0-9_.@-]{1,64}$/;
export const NODE_HEADER = 'x-islet-node';

export interface DaemonHandle {
  socket: string;
  tcpUrl: string | undefined;
  /** Settles when the daemon has stopped (signal, idle exit or stop()). */
  stopped: Promise<string>;
  stop(why: string): Promise<void>;
}

export async function runDaemon(config: Config, o: { progress?: Progress; tcp?: { host: string; port: number } } = {}): Promise<DaemonHandle> {
  if (o.tcp) assertSafeBind(config, o.tcp.host);
  // Takes the data dir's lock: a second daemon fails here with STATE_CONFLICT, before touching the socket.
  const svc = await WorkspaceService.open(config, { progress: o.progress, pool: config.pool.enabled });
  const paths = daemonPaths(config);
  const node = os.hostname();
  const started = new Date().toISOString();
  // Asked for when a client wants node facts: choosing it may need a canary boot, which needs built images.
  let accel: string | null | undefined;
  const accelNow = async () => (accel ??= await svc.rt.accel().then((a) => a.accel, () => null));

  const nodeInfo = async () => {
    const accelerator = await accelNow();
    const all = svc.shapes();
    const running = all.filter((w) => w.state === 'running');
    let disk: { total_bytes: number; free_bytes: number } | null = null;
    try {
      const s = statfsSync(config.paths.dataDir);
      disk = { total_bytes: s.blocks * s.bsize, free_bytes: s.bavail * s.bsize };
    } catch { /* statfs missing: report none */ }
    return {
      node,
      version: SERVER_INFO.version,
      api_version: '1',
      started_at: started,
      accelerator,
      cores: os.cpus().length,
      memory: {
        total_bytes: os.totalmem(),
        free_bytes: os.freemem(),
        committed_mb: running.reduce((n, w) => n + w.memory_mb, 0),
      },
      disk,
      workspaces: { total: all.length, running: running.length },
      pool: svc.pool?.size ?? 0,
      versions: { node: process.versions.node, islet: SERVER_INFO.version },
    };
  };
  const rest = createRestApp(svc, { nodeInfo, maxBodyBytes: config.server.max_transfer_bytes });
  const restListener = getRequestListener(rest.fetch);

  const socketCaller = (req: IncomingMessage): Caller => {
    const claimed = req.headers['x-islet-owner'];
    const owner = typeof claimed === 'string' && OWNER_RE.test(claimed) ? claimed : config.server.stdio_owner;
    return { owner, admin: req.headers['x-islet-admin'] === '1' || (owner === config.server.stdio_owner && config.server.stdio_admin) };
  };
  const mcpUnix = createMcpHttpHandler(svc, config, { host: 'localhost', port: () => 0, socketCaller });

  let active = 0;
  let lastActive = Date.now();
  const track = (server: Server) => bounded(server, BODY_IDLE_MS, config.server.max_transfer_bytes).on('connection', (s: Socket) => {
    active++;
    s.once('close', () => { active--; lastActive = Date.now(); });
  });

  /** Upgraded stdio-bridge connections: the HTTP server no longer manages them, so stop() ends them itself. */
  const bridges = new Set<Socket>();
  const unix = createServer((req, res) => {
    res.setHeader(NODE_HEADER, node);
    callerOf.set(req, socketCaller(req));
    const p = (req.url ?? '/').split('?')[0];
    const run = p === MCP_PATH ? mcpUnix.handle(req, res) : Promise.resolve(restListener(req, res));
    run.catch((e: unknown) => {
      process.stderr.write(`islet daemon: request failed: ${e instanceof Error ? e.stack : String(e)}\n`);
      if (!res.headersSent) res.writeHead(500).end();
      else res.end();
    });
  });
  // The stdio bridge: `islet serve` relays its stdin/stdout here, one MCP session per connection.
  const ptys = new PtySockets(svc);
  unix.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    if (isPtyUpgrade(req)) { ptys.handle(req, socket, head, socketCaller(req)); return; }
    if ((req.url ?? '').split('?')[0] !== STDIO_BRIDGE_PATH || String(req.headers.upgrade).toLowerCase() !== STDIO_UPGRADE) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${STDIO_UPGRADE}\r\nConnection: Upgrade\r\n${NODE_HEADER}: ${node}\r\n\r\n`);
    if (head.length > 0) socket.unshift(head);
    const caller = socketCaller(req);
    bridges.add(socket);
    socket.once('close', () => bridges.delete(socket));
    const server = createMcpServer(svc, () => caller);
    // Requests as big as HTTP takes (file_write content); a transport the SDK closed (an oversized message) ends the connection.
    server.server.onclose = () => socket.destroy();
    server.connect(new StdioServerTransport(socket, socket, { maxBufferSize: MAX_BODY_BYTES })).catch(() => socket.destroy());
    socket.once('close', () => { server.close().catch(() => undefined); });
    socket.on('error', () => socket.destroy());
    // The front went away (its MCP client closed it, or it died). HTTP servers keep sockets half-open,
    // and after the upgrade nothing else would end this one: it would count as a client for ever and
    // keep the daemon from its idle exit.
    socket.once('end', () => socket.destroy());
  });
  track(unix);

  mkdirSync(config.paths.runDir, { recursive: true, mode: 0o700 });
  rmSync(paths.socket, { force: true }); // we hold the data dir's lock, so a socket here is a dead daemon's
  await listen(unix, paths.socket);
  if (config.server.socket_group) {
    const gid = groupId(config.server.socket_group);
    chownSync(paths.socket, process.getuid?.() ?? 0, gid);
    chmodSync(paths.socket, 0o660);
  } else {
    chmodSync(paths.socket, 0o600);
  }

  let tcp: Server | undefined;
  let tcpUrl: string | undefined;
  if (o.tcp) {
    let port = o.tcp.port;
    const mcpTcp = createMcpHttpHandler(svc, config, { host: o.tcp.host, port: () => port });
    const auth = bearerAuth(config);
    tcp = createServer((req, res) => {
      res.setHeader(NODE_HEADER, node);
      const p = (req.url ?? '/').split('?')[0];
      if (p === MCP_PATH) {
        mcpTcp.handle(req, res).catch(() => { if (!res.headersSent) res.writeHead(500); res.end(); });
        return;
      }
      const who = auth(req.headers.authorization);
      if (!who.ok && p !== '/healthz') {
        res.writeHead(401, { 'Content-Type': 'application/json', 'WWW-Authenticate': 'Bearer realm="islet"' });
        res.end(JSON.stringify({ code: 'UNAUTHORIZED', message: who.message, hint: who.hint, retryable: false }));
        return;
      }
      callerOf.set(req, who.ok ? who.caller : { owner: '-' });
      Promise.resolve(restListener(req, res)).catch(() => { if (!res.headersSent) res.writeHead(500); res.end(); });
    });
    // Terminals over TCP: the bearer token as for REST; a browser's Origin must be one of [server] allowed_origins.
    tcp.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      const who = auth(req.headers.authorization);
      const origin = req.headers.origin;
      if (!isPtyUpgrade(req) || !who.ok || (origin !== undefined && !config.server.allowed_origins.includes(origin))) {
        socket.end(`HTTP/1.1 ${!isPtyUpgrade(req) ? '404 Not Found' : !who.ok ? '401 Unauthorized' : '403 Forbidden'}\r\nConnection: close\r\n\r\n`);
        return;
      }
      ptys.handle(req, socket, head, who.caller);
    });
    track(tcp);
    await listen(tcp, o.tcp.port, o.tcp.host);
    port = (tcp.address() as { port: number }).port;
    tcpUrl = `http://${o.tcp.host.includes(':') ? `[${o.tcp.host}]` : o.tcp.host}:${port}`;
  }
  writeFileSync(paths.pidFile, String(process.pid), { mode: 0o600 });

  let stopping: Promise<void> | undefined;
  let resolveStopped!: (why: string) => void;
  const stopped = new Promise<string>((r) => { resolveStopped = r; });
  const stop = (why: string): Promise<void> => (stopping ??= (async () => {
    clearInterval(idleTimer);
    for (const b of bridges) b.destroy();
    ptys.close();
    const closing = [unix, tcp].filter((s): s is Server => s !== undefined).map((s) => new Promise<void>((r) => {
      s.close(() => r());
      s.closeAllConnections();
    }));
    await mcpUnix.close();
    await Promise.all(closing);
    await svc.close();
    rmSync(paths.socket, { force: true });
    rmSync(paths.pidFile, { force: true });
    resolveStopped(why);
  })());

  // Leaves when nothing needs it: no workspace, no client connected, for daemon_idle_exit_s.
  const idleMs = config.server.daemon_idle_exit_s * 1000;
  const idleTimer = setInterval(() => {
    if (idleMs === 0 || active > 0 || Date.now() - lastActive < idleMs) return;
    if (svc.shapes().some((w) => w.state !== 'destroyed')) { lastActive = Date.now(); return; }
    void stop('idle');
  }, Math.min(5_000, Math.max(200, idleMs / 4)));
  idleTimer.unref();

  return { socket: paths.socket, tcpUrl, stopped, stop };
}

/** A request body that sends nothing for this long is cut (an upload's guest file is then discarded). */
export const BODY_IDLE_MS = 60_000;

/**
 * Headers must arrive within 30 s. A body has no total time limit, since file uploads
 * stream and may be large; instead one that stalls for BODY_IDLE_MS is cut. Once the body
 * is in, the reply (a long exec's stream) may take as long as the operation does.
 */
export function bounded(server: Server, bodyIdleMs = BODY_IDLE_MS, maxBodyBytes = Number.MAX_SAFE_INTEGER): Server {
  server.headersTimeout = 30_000;
  server.requestTimeout = 0;
  // `Expect: 100-continue` (the SDK sends it with large bodies): a declared size over the bound is refused
  // before the client sends a byte. Refused after the body began, the client may still be writing when the
  // connection closes and see a reset instead of the 413.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (Number(req.headers['content-length'] ?? 0) > maxBodyBytes) {
      const err = new FileTooLargeError(`request body over ${maxBodyBytes} bytes`, 'raise [server] max_transfer_bytes', { max: maxBodyBytes });
      res.writeHead(statusFor(err.code), { 'Content-Type': 'application/json', Connection: 'close' }).end(JSON.stringify(err.toJSON()));
      return;
    }
    res.writeContinue();
    server.emit('request', req, res);
  });
  server.on('request', (req: IncomingMessage) => {
    if (req.complete) return;
    req.setTimeout(bodyIdleMs, () => req.destroy(new Error('request body stalled')));
    req.once('end', () => req.setTimeout(0));
  });
  return server;
}

function listen(server: Server, portOrPath: number | string, host?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const failed = (e: NodeJS.ErrnoException) => reject(new InvalidArgumentError(
      `cannot listen on ${host ? `${host}:` : ''}${portOrPath}: ${e.code ?? e.message}`,
      e.code === 'EADDRINUSE' ? 'another process uses it: pick another [server] http_port' : 'check [server] http_host and [storage] run_dir',
      { listen: String(portOrPath) }));
    server.once('error', failed);
    const done = () => { server.off('error', failed); resolve(); };
    if (typeof portOrPath === 'string') server.listen(portOrPath, done);
    else server.listen(portOrPath, host, done);
  });
}

function groupId(name: string): number {
  if (/^\d+$/.test(name)) return Number(name);
  for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
    const [g, , gid] = line.split(':');
    if (g === name && gid) return Number(gid);
  }
  throw new InvalidArgumentError(`[server] socket_group: no group "${name}" in /etc/group`, 'name an existing group, or remove the key');
}
