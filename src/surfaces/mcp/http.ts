// MCP over Streamable HTTP on node:http: one transport and McpServer per
// session (stateful). In front of the SDK transport: path routing, DNS
// rebinding checks (Host, Origin), bearer tokens, a request body limit, and
// a bounded number of sessions that expire when idle.
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { Config } from '../../core/config.js';
import { ConfigError, InvalidArgumentError } from '../../core/errors.js';
import type { WorkspaceService } from '../../service/workspaces.js';
import type { Caller } from '../../service/types.js';
import { createMcpServer } from './server.js';

export const MCP_PATH = '/mcp';
/** file_write carries up to 24 MiB of content; base64 and JSON framing need headroom above that. */
export const MAX_BODY_BYTES = 32 << 20;

export interface HttpServerHandle {
  url: string;
  close(): Promise<void>;
}

interface Session {
  transport: StreamableHTTPServerTransport;
  server: McpServer;
  /** Index into [server] tokens, or -1 without tokens: a session never changes hands. */
  tokenIndex: number;
  /** performance.now() of the last request's end (or start, while requests are open). */
  lastSeen: number;
  /** Requests in progress, including an open GET event stream: a session in use is never idle. */
  open: number;
}

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

/** Throws unless binding host is safe: loopback, or tokens configured. Cheap: call it before opening the service. */
export function assertSafeBind(config: Config, host: string): void {
  if (isLoopbackHost(host) || config.server.tokens.length > 0) return;
  throw new ConfigError(
    `refusing to serve MCP over HTTP on ${host} without bearer tokens: anyone who can reach it could run commands in your VMs`,
    'add [[server.tokens]] entries (token, owner) to the config, or bind a loopback address (--host 127.0.0.1)',
    { host },
  );
}

/** Tokens are compared as SHA-256 digests so timingSafeEqual always sees equal lengths. */
const digest = (s: string) => createHash('sha256').update(s).digest();

export interface McpHttpHandler {
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** Closes every session. */
  close(): Promise<void>;
}

/**
 * The /mcp endpoint for one listener. On TCP: Host/Origin checks and bearer
 * tokens. On the daemon's unix socket (socketCaller set) the file mode is the
 * authentication and browsers cannot connect, so the caller is the peer's claim.
 */
export function createMcpHttpHandler(
  svc: WorkspaceService,
  config: Config,
  o: { host: string; port: () => number; socketCaller?: (req: IncomingMessage) => Caller },
): McpHttpHandler {
  const tokens = o.socketCaller ? [] : config.server.tokens;
  const loopback = isLoopbackHost(o.host);
  const tokenDigests = tokens.map((t) => digest(t.token));
  const sessions = new Map<string, Session>();
  /** Sessions made by initialize but not yet given an id: they count against max_sessions too. */
  let pending = 0;
  const { max_sessions: maxSessions, session_idle_ms: idleMs } = config.server;
  const closeSession = (id: string, s: Session) => {
    sessions.delete(id);
    s.server.close().catch(() => { /* already closed */ });
  };
  const sweepIdle = () => {
    const now = performance.now();
    for (const [id, s] of sessions) if (s.open === 0 && now - s.lastSeen > idleMs) closeSession(id, s);
  };
  const sweeper = setInterval(sweepIdle, Math.min(60_000, Math.max(250, idleMs / 4)));
  sweeper.unref();
  const track = (s: Session, res: ServerResponse) => {
    s.open++;
    s.lastSeen = performance.now();
    res.once('close', () => { s.open--; s.lastSeen = performance.now(); });
  };
  const bracketed = o.host.includes(':') && !o.host.startsWith('[') ? `[${o.host}]` : o.host;
  const hostNames = [...new Set([...LOOPBACK_NAMES, bracketed])];

  // Without a token the caller has nothing to prove, so a browser page on another
  // origin must not be able to reach us: that is the DNS rebinding attack.
  const hostAllowed = (h: string | undefined): boolean => {
    if (o.socketCaller) return true;
    const port = o.port();
    if (!loopback) return true; // bound publicly: reachable under any name, tokens guard it
    if (!h) return false;
    return hostNames.some((n) => h === `${n}:${port}` || (port === 80 && h === n));
  };
  const originAllowed = (origin: string | undefined): boolean => {
    const port = o.port();
    if (origin === undefined) return true; // not a browser
    if (config.server.allowed_origins.includes(origin)) return true;
    return hostNames.some((n) => origin === `http://${n}:${port}` || origin === `https://${n}:${port}`);
  };
  /** The index of the presented token, -1 with no tokens configured, undefined when refused. */
  const authenticate = (header: string | undefined): number | undefined => {
    if (tokens.length === 0) return -1;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
    if (!m?.[1]) return undefined;
    const d = digest(m[1]);
    let found: number | undefined;
    // No early exit: the time taken must not depend on which token matched.
    tokenDigests.forEach((t, i) => { if (timingSafeEqual(t, d) && found === undefined) found = i; });
    return found;
  };
  const callerFor = (tokenIndex: number, transport: StreamableHTTPServerTransport, req: IncomingMessage) => {
    const fromSocket = o.socketCaller?.(req);
    return (): Caller => fromSocket ?? sessionCaller(tokenIndex, transport);
  };
  const sessionCaller = (tokenIndex: number, transport: StreamableHTTPServerTransport): Caller => {
    const t = tokens[tokenIndex];
    if (t) return { owner: t.owner, admin: t.admin };
    return { owner: `session:${transport.sessionId ?? 'uninitialized'}` };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== MCP_PATH) return reply(res, 404, -32000, `Not found: the MCP endpoint is ${MCP_PATH}`);
    if (!hostAllowed(req.headers.host)) return reply(res, 403, -32000, `Forbidden: Host ${JSON.stringify(req.headers.host ?? '')} is not allowed`);
    if (!originAllowed(req.headers.origin)) {
      return reply(res, 403, -32000, `Forbidden: Origin ${req.headers.origin} is not allowed; add it to [server] allowed_origins`);
    }
    const tokenIndex = authenticate(req.headers.authorization);
    if (tokenIndex === undefined) {
      const presented = req.headers.authorization !== undefined;
      res.setHeader('WWW-Authenticate', presented ? 'Bearer realm="islet", error="invalid_token"' : 'Bearer realm="islet"');
      return reply(res, 401, -32000, 'Unauthorized: send Authorization: Bearer <token> with a token from [server] tokens');
    }
    if (req.method !== 'POST' && req.method !== 'GET' && req.method !== 'DELETE') {
      res.setHeader('Allow', 'POST, GET, DELETE');
      return reply(res, 405, -32000, 'Method not allowed');
    }

    const sid = req.headers['mcp-session-id'];
    if (typeof sid === 'string') {
      const s = sessions.get(sid);
      // Another token's session looks like no session at all: nothing to probe for.
      if (!s || s.tokenIndex !== tokenIndex) return reply(res, 404, -32001, 'Session not found');
      track(s, res);
      const body = req.method === 'POST' ? await readJson(req, res) : undefined;
      if (body === NO_BODY) return;
      return s.transport.handleRequest(req, res, body);
    }
    if (req.method !== 'POST') return reply(res, 400, -32000, 'Bad Request: Mcp-Session-Id header is required');
    const body = await readJson(req, res);
    if (body === NO_BODY) return;
    if (!isInitializeRequest(body)) return reply(res, 400, -32000, 'Bad Request: no valid session id; start with initialize');
    if (sessions.size + pending >= maxSessions) sweepIdle();
    if (sessions.size + pending >= maxSessions) {
      res.setHeader('Retry-After', '60');
      return reply(res, 503, -32000, `QUOTA_EXCEEDED: ${maxSessions} MCP sessions are open on this server; close one (HTTP DELETE) `
        + `or wait for an idle one to expire ([server] session_idle_ms), or raise [server] max_sessions`, { code: 'QUOTA_EXCEEDED' });
    }

    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: randomUUID,
      onsessioninitialized: (id) => { sessions.set(id, session); },
    });
    const session: Session = {
      transport, server: createMcpServer(svc, callerFor(tokenIndex, transport, req)), tokenIndex, lastSeen: performance.now(), open: 0,
    };
    // Set before connect(): the SDK chains its own handler after ours.
    transport.onclose = () => { if (transport.sessionId) sessions.delete(transport.sessionId); };
    await session.server.connect(transport);
    track(session, res);
    pending++;
    try {
      await transport.handleRequest(req, res, body);
    } finally {
      pending--;
    }
    // An initialize that failed leaves a server with no session to reach it: close it now.
    if (!transport.sessionId || !sessions.has(transport.sessionId)) session.server.close().catch(() => {});
  };

  return {
    handle,
    async close() {
      clearInterval(sweeper);
      await Promise.allSettled([...sessions.values()].map((s) => s.server.close()));
      sessions.clear();
    },
  };
}

export async function startHttpServer(
  svc: WorkspaceService,
  config: Config,
  o: { host: string; port: number },
): Promise<HttpServerHandle> {
  assertSafeBind(config, o.host);
  let port = o.port;
  const bracketed = o.host.includes(':') && !o.host.startsWith('[') ? `[${o.host}]` : o.host;
  const mcp = createMcpHttpHandler(svc, config, { host: o.host, port: () => port });
  const http = createServer((req, res) => {
    mcp.handle(req, res).catch((e: unknown) => {
      process.stderr.write(`islet: MCP HTTP request failed: ${e instanceof Error ? e.stack : String(e)}\n`);
      if (!res.headersSent) reply(res, 500, -32603, 'Internal error');
      else res.end();
    });
  });

  await new Promise<void>((resolve, reject) => {
    const failed = (e: NodeJS.ErrnoException) => reject(new InvalidArgumentError(
      `cannot listen on ${o.host}:${o.port}: ${e.code ?? e.message}`,
      e.code === 'EADDRINUSE' ? 'another process uses that port: pick another with --port or [server] http_port'
        : 'check --host / [server] http_host: it must be an address of this machine',
      { host: o.host, port: o.port }));
    http.once('error', failed);
    http.listen(o.port, o.host, () => { http.off('error', failed); resolve(); });
  });
  port = (http.address() as AddressInfo).port;

  return {
    url: `http://${bracketed}:${port}${MCP_PATH}`,
    async close() {
      await mcp.close();
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        // Open SSE streams would otherwise hold close() forever.
        http.closeAllConnections();
      });
    },
  };
}

function reply(res: ServerResponse, status: number, code: number, message: string, data?: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: data === undefined ? { code, message } : { code, message, data }, id: null }));
}

const NO_BODY = Symbol('no body');

/** Reads and parses a JSON body under MAX_BODY_BYTES; on failure the response is already sent. */
async function readJson(req: IncomingMessage, res: ServerResponse): Promise<unknown> {
  const tooLarge = () => {
    res.setHeader('Connection', 'close');
    reply(res, 413, -32000, `Payload too large: request bodies are limited to ${MAX_BODY_BYTES} bytes`);
    return NO_BODY;
  };
  if (Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES) return tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  // Past the limit keep draining without storing, so the 413 reaches a client
  // that is still sending; breaking the loop would destroy the socket first.
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size <= MAX_BODY_BYTES) chunks.push(c as Buffer);
  }
  if (size > MAX_BODY_BYTES) return tooLarge();
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (e) {
    reply(res, 400, -32700, `Parse error: ${(e as Error).message}`);
    return NO_BODY;
  }
}
