// The Streamable HTTP front: auth, DNS rebinding checks, routing, limits and
// per-session ownership, against a fake service that only lists.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { resolveConfig } from '../../src/core/config.js';
import { IsletError } from '../../src/core/errors.js';
import type { Caller } from '../../src/service/types.js';
import type { WorkspaceService } from '../../src/service/workspaces.js';
import { startHttpServer, type HttpServerHandle } from '../../src/surfaces/mcp/http.js';

const TOKEN_A = 'token-for-alice-0123456789';
const TOKEN_B = 'token-for-bob-0123456789ab';

function fakeService(server: Record<string, unknown> = {}) {
  const callers: Caller[] = [];
  const svc = {
    config: resolveConfig({ server }),
    list: async (c: Caller) => { callers.push(c); return []; },
    info: async () => { throw new IsletError('WORKSPACE_NOT_FOUND', 'no such workspace'); },
  };
  return { svc: svc as unknown as WorkspaceService, config: svc.config, callers };
}

const initialize = JSON.stringify({
  jsonrpc: '2.0', id: 1, method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'curl', version: '0' } },
});
const post = (url: string, headers: Record<string, string> = {}, body = initialize) => fetch(url, {
  method: 'POST',
  headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', ...headers },
  body,
});

async function connect(url: string, token?: string): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(url),
    token ? { requestInit: { headers: { Authorization: `Bearer ${token}` } } } : {});
  const client = new Client({ name: 'test', version: '0' });
  await client.connect(transport);
  return { client, transport };
}

describe('MCP over HTTP with tokens', () => {
  const f = fakeService({ tokens: [{ token: TOKEN_A, owner: 'alice' }, { token: TOKEN_B, owner: 'bob', admin: true }] });
  let h: HttpServerHandle;
  before(async () => { h = await startHttpServer(f.svc, f.config, { host: '127.0.0.1', port: 0 }); });
  after(() => h.close());

  test('the url reports the real port', () => {
    assert.match(h.url, /^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
    assert.doesNotMatch(h.url, /:0\//);
  });

  test('401 with WWW-Authenticate without a token or with a wrong one', async () => {
    for (const headers of [{}, { Authorization: 'Bearer not-the-token-at-all-xyz' }, { Authorization: `Basic ${TOKEN_A}` }] as Array<Record<string, string>>) {
      const r = await post(h.url, headers);
      assert.equal(r.status, 401, JSON.stringify(headers));
      assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer realm="islet"/);
      const body = await r.json() as { jsonrpc: string; error: { code: number; message: string } };
      assert.equal(body.jsonrpc, '2.0');
      assert.match(body.error.message, /Unauthorized/);
    }
  });

  test('tools/list over a real client lists all 33 tools with schemas and annotations', async () => {
    const { client } = await connect(h.url, TOKEN_A);
    try {
      const { tools } = await client.listTools();
      assert.equal(tools.length, 33);
      for (const t of tools) {
        assert.ok(t.inputSchema && t.outputSchema, t.name);
        assert.equal(Object.keys(t.annotations ?? {}).length, 4, t.name);
      }
    } finally {
      await client.close();
    }
  });

  test('the caller is the token\'s owner, the same across sessions', async () => {
    f.callers.length = 0;
    for (const token of [TOKEN_A, TOKEN_A, TOKEN_B]) {
      const { client } = await connect(h.url, token);
      await client.callTool({ name: 'workspace_list', arguments: {} });
      await client.close();
    }
    assert.deepEqual(f.callers, [{ owner: 'alice', admin: false }, { owner: 'alice', admin: false }, { owner: 'bob', admin: true }]);
  });

  test('a session cannot be used with another token', async () => {
    const { client, transport } = await connect(h.url, TOKEN_A);
    try {
      const r = await post(h.url, { Authorization: `Bearer ${TOKEN_B}`, 'Mcp-Session-Id': transport.sessionId ?? '' },
        JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }));
      assert.equal(r.status, 404);
    } finally {
      await client.close();
    }
  });
});

describe('MCP over HTTP without tokens', () => {
  const f = fakeService({ allowed_origins: ['https://app.example'] });
  let h: HttpServerHandle;
  let port = 0;
  before(async () => {
    h = await startHttpServer(f.svc, f.config, { host: '127.0.0.1', port: 0 });
    port = Number(new URL(h.url).port);
  });
  after(() => h.close());

  test('403 for a foreign Origin or Host; loopback and configured origins pass', async () => {
    const evil = await post(h.url, { Origin: 'http://evil.example' });
    assert.equal(evil.status, 403);
    assert.match(((await evil.json()) as { error: { message: string } }).error.message, /Origin/);
    const otherPort = await post(h.url, { Origin: `http://localhost:${port + 1}` });
    assert.equal(otherPort.status, 403);
    for (const origin of [`http://localhost:${port}`, 'https://app.example']) {
      const ok = await post(h.url, { Origin: origin });
      assert.equal(ok.status, 200, origin);
      await ok.body?.cancel();
    }
    // fetch won't let us forge Host, so go through node:http.
    const { request } = await import('node:http');
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/mcp', method: 'POST', headers: { Host: `rebound.example:${port}`, 'Content-Type': 'application/json' } },
        (res) => { res.resume(); resolve(res.statusCode ?? 0); });
      req.on('error', reject);
      req.end(initialize);
    });
    assert.equal(status, 403);
  });

  test('404 for other paths, 400 for a request without a session, 405 for other methods', async () => {
    assert.equal((await post(h.url.replace('/mcp', '/other'))).status, 404);
    assert.equal((await post(`${h.url}/x`)).status, 404);
    const noSession = await post(h.url, {}, JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }));
    assert.equal(noSession.status, 400);
    assert.equal((await fetch(h.url, { method: 'PUT' })).status, 405);
    assert.equal((await post(h.url, {}, '{not json')).status, 400);
  });

  test('413 for a body over the limit', async () => {
    const r = await post(h.url, {}, 'x'.repeat((32 << 20) + 1));
    assert.equal(r.status, 413);
  });

  test('each session is its own owner; a closed session is gone', async () => {
    f.callers.length = 0;
    const a = await connect(h.url);
    const b = await connect(h.url);
    await a.client.callTool({ name: 'workspace_list', arguments: {} });
    await b.client.callTool({ name: 'workspace_list', arguments: {} });
    await a.client.callTool({ name: 'workspace_list', arguments: {} });
    assert.deepEqual(f.callers.map((c) => c.owner), [`session:${a.transport.sessionId}`, `session:${b.transport.sessionId}`, `session:${a.transport.sessionId}`]);
    assert.notEqual(a.transport.sessionId, b.transport.sessionId);
    const sid = a.transport.sessionId ?? '';
    await a.transport.terminateSession();
    await a.client.close();
    await b.client.close();
    const r = await post(h.url, { 'Mcp-Session-Id': sid }, JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list' }));
    assert.equal(r.status, 404);
  });

  test('a tool result over HTTP is the same isError shape', async () => {
    const { client } = await connect(h.url);
    try {
      const r = await client.callTool({ name: 'workspace_info', arguments: { workspace_id: 'x' } }) as CallToolResult;
      assert.equal(r.isError, true);
      assert.equal((JSON.parse((r.content[0] as { text: string }).text) as { code: string }).code, 'WORKSPACE_NOT_FOUND');
    } finally {
      await client.close();
    }
  });
});

test('binding a non-loopback address without tokens is refused', async () => {
  const f = fakeService();
  await assert.rejects(startHttpServer(f.svc, f.config, { host: '0.0.0.0', port: 0 }),
    (e: unknown) => e instanceof IsletError && e.code === 'CONFIG_INVALID' && /without bearer tokens/.test(e.message) && /tokens/.test(e.hint ?? ''));
});

test('a non-loopback bind with tokens is allowed', async () => {
  const f = fakeService({ tokens: [{ token: TOKEN_A, owner: 'alice' }] });
  const h = await startHttpServer(f.svc, f.config, { host: '0.0.0.0', port: 0 });
  await h.close();
});
