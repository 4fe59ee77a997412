// Issue 12 at the MCP surface, through a real Client over an in-memory pair
// and over HTTP: input errors the model can read (SEP-1303), results that fit
// every transport, and limits on calls, buffered output and sessions.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { resolveConfig } from '../../src/core/config.js';
import { execStreams } from '../../src/core/encoding.js';
import { IsletError } from '../../src/core/errors.js';
import type { Caller, ExecHooks, ExecOutput } from '../../src/service/types.js';
import type { WorkspaceService } from '../../src/service/workspaces.js';
import { startHttpServer } from '../../src/surfaces/mcp/http.js';
import { createMcpServer } from '../../src/surfaces/mcp/server.js';
import { register as registerExec } from '../../src/surfaces/mcp/tools/exec.js';
import { register as registerFiles } from '../../src/surfaces/mcp/tools/files.js';
import { register as registerLifetime } from '../../src/surfaces/mcp/tools/lifetime.js';
import { register as registerNetwork } from '../../src/surfaces/mcp/tools/network.js';
import { register as registerProcess } from '../../src/surfaces/mcp/tools/process.js';
import { register as registerSessions } from '../../src/surfaces/mcp/tools/sessions.js';
import { register as registerSnapshots } from '../../src/surfaces/mcp/tools/snapshots.js';
import { register as registerWorkspace } from '../../src/surfaces/mcp/tools/workspace.js';

const textOf = (r: CallToolResult) => r.content.map((c) => (c.type === 'text' ? c.text : '')).join('');
const errOf = (r: CallToolResult) => { assert.equal(r.isError, true, textOf(r)); return JSON.parse(textOf(r)) as { code: string; message: string }; };

class Fake {
  readonly calls: Array<{ op: string; input: Record<string, unknown> }> = [];
  constructor(readonly config = resolveConfig({})) {}
  async exec(_c: Caller, i: Record<string, unknown>, h: ExecHooks = {}): Promise<ExecOutput> {
    this.calls.push({ op: 'exec', input: i });
    if (i.command === 'wait') {
      await new Promise<void>((resolve) => { const t = setTimeout(resolve, 300); h.signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }); });
    }
    // What the guest would send for `head -c N /dev/zero` with the cap the surface asked for.
    const n = Math.min(Number(i.max_output_bytes), i.command === 'zeros' ? 16 << 20 : 0);
    return { exit_code: 0, signal: null, ...execStreams(Buffer.alloc(n), Buffer.from('done\n')), timed_out: false, truncated: n < (16 << 20), duration_ms: 1 };
  }
  async fileRead(_c: Caller, i: Record<string, unknown>) {
    this.calls.push({ op: 'fileRead', input: i });
    throw new IsletError('FILE_TOO_LARGE', 'read /big: guest sent more than n bytes', 'raise maxBytes');
  }
  async portForward(_c: Caller, i: Record<string, unknown>) { this.calls.push({ op: 'portForward', input: i }); return {}; }
}

async function pair(svc: Fake): Promise<Client> {
  const server = createMcpServer(svc as unknown as WorkspaceService, () => ({ owner: 'alice' }));
  const [a, b] = InMemoryTransport.createLinkedPair();
  await server.connect(a);
  const client = new Client({ name: 'test', version: '0' });
  await client.connect(b);
  return client;
}

describe('input validation failures are tool results with INVALID_ARGUMENT (SEP-1303)', () => {
  const svc = new Fake();
  let client: Client;
  before(async () => { client = await pair(svc); });
  after(() => client.close());

  test('port 0 and port 70000 name the field; the service is never called', async () => {
    for (const port of [0, 70000]) {
      const e = errOf(await client.callTool({ name: 'port_forward', arguments: { workspace_id: 'w', guest_port: port } }) as CallToolResult);
      assert.equal(e.code, 'INVALID_ARGUMENT');
      assert.match(e.message, /^port_forward: guest_port: Number must be/);
    }
    const e = errOf(await client.callTool({ name: 'exec', arguments: { workspace_id: 'w' } }) as CallToolResult);
    assert.equal(e.code, 'INVALID_ARGUMENT');
    assert.match(e.message, /^exec: command: /);
    assert.equal(svc.calls.length, 0);
  });

  test('the guard changes no advertised input schema: the same tools registered without it list identically', async () => {
    const bare = new McpServer({ name: 'bare', version: '0' });
    for (const register of [registerExec, registerFiles, registerLifetime, registerNetwork, registerProcess, registerSnapshots, registerWorkspace, registerSessions]) {
      register(bare, svc as unknown as WorkspaceService, () => ({ owner: 'alice' }));
    }
    const [a, b] = InMemoryTransport.createLinkedPair();
    await bare.connect(a);
    const plain = new Client({ name: 'plain', version: '0' });
    await plain.connect(b);
    const schemas = async (c: Client) => (await c.listTools()).tools.map((t) => [t.name, t.inputSchema]).sort((x, y) => String(x[0]).localeCompare(String(y[0])));
    assert.deepEqual(await schemas(client), await schemas(plain));
    await plain.close();
  });

  test('the advertised schemas keep their bounds and required fields', async () => {
    const { tools } = await client.listTools();
    const pf = tools.find((t) => t.name === 'port_forward')!;
    const props = pf.inputSchema.properties as Record<string, { minimum?: number; maximum?: number }>;
    assert.equal(props.guest_port?.minimum, 1);
    assert.equal(props.guest_port?.maximum, 65535);
    assert.deepEqual(pf.inputSchema.required, ['workspace_id', 'guest_port']);
    assert.equal(pf.inputSchema.additionalProperties, false);
    const w = tools.find((t) => t.name === 'workspace_create')!;
    assert.match(JSON.stringify(w.inputSchema), /"maxLength":48/);
  });
});

describe('results fit every transport', () => {
  const svc = new Fake();
  let client: Client;
  before(async () => { client = await pair(svc); });
  after(() => client.close());

  test('16 MiB of NULs asked: output capped per stream, base64 with a flag, carried once, text short (issue 12 #2)', async () => {
    const r = await client.callTool({ name: 'exec', arguments: { workspace_id: 'w', command: 'zeros', max_output_bytes: 16 << 20 } }) as CallToolResult;
    const sc = r.structuredContent as unknown as ExecOutput;
    const perStream = svc.config.server.max_result_bytes / 2;
    assert.equal(svc.calls.at(-1)?.input.max_output_bytes, perStream, 'the service is asked for no more than fits');
    assert.equal(sc.stdout_encoding, 'base64');
    assert.equal(Buffer.from(sc.stdout, 'base64').length, perStream);
    assert.equal(sc.truncated, true);
    assert.ok(textOf(r).length < 5000, `text block is ${textOf(r).length} chars`);
    const wire = Buffer.byteLength(JSON.stringify(r));
    assert.ok(wire < 8 << 20, `result is ${wire} bytes on the wire, over the stdio budget`);
  });

  test('file_read over the inline cap is FILE_TOO_LARGE pointing at file_download', async () => {
    const e = errOf(await client.callTool({ name: 'file_read', arguments: { workspace_id: 'w', path: '/big', max_bytes: 16 << 20 } }) as CallToolResult);
    assert.equal(e.code, 'FILE_TOO_LARGE');
    assert.equal(svc.calls.at(-1)?.input.max_bytes, svc.config.server.max_result_bytes);
    assert.match(JSON.parse(textOf(await client.callTool({ name: 'file_read', arguments: { workspace_id: 'w', path: '/big' } }) as CallToolResult)).hint, /file_download/);
  });
});

describe('limits on calls and buffered output (issue 12 #9)', () => {
  test('calls over max_concurrent_calls are refused with QUOTA_EXCEEDED, and slots come back', async () => {
    const svc = new Fake(resolveConfig({ server: { max_concurrent_calls: 2 } }));
    const client = await pair(svc);
    const rs = await Promise.all([0, 1, 2].map(() => client.callTool({ name: 'exec', arguments: { workspace_id: 'w', command: 'wait' } }) as Promise<CallToolResult>));
    const refused = rs.filter((r) => r.isError);
    assert.equal(refused.length, 1);
    assert.equal(errOf(refused[0]!).code, 'QUOTA_EXCEEDED');
    assert.match(errOf(refused[0]!).message, /2 tool calls/);
    const again = await client.callTool({ name: 'exec', arguments: { workspace_id: 'w', command: 'wait' } }) as CallToolResult;
    assert.equal(again.isError, undefined);
    await client.close();
  });

  test('exec output that would pass max_buffered_output_bytes is refused; the budget is shared by sessions', async () => {
    const svc = new Fake(resolveConfig({ server: { max_buffered_output_bytes: 3 << 20 } }));
    const [a, b] = [await pair(svc), await pair(svc)];
    const first = a.callTool({ name: 'exec', arguments: { workspace_id: 'w', command: 'wait', max_output_bytes: 1 << 20 } }) as Promise<CallToolResult>;
    await new Promise((r) => setTimeout(r, 50));
    const second = await b.callTool({ name: 'exec', arguments: { workspace_id: 'w', command: 'wait', max_output_bytes: 1 << 20 } }) as CallToolResult;
    assert.equal(errOf(second).code, 'QUOTA_EXCEEDED');
    assert.match(errOf(second).message, /max_buffered_output_bytes|limit of/);
    assert.equal((await first).isError, undefined);
    const third = await b.callTool({ name: 'exec', arguments: { workspace_id: 'w', command: 'fast', max_output_bytes: 1 << 20 } }) as CallToolResult;
    assert.equal(third.isError, undefined, 'released after the first call');
    await Promise.all([a.close(), b.close()]);
  });
});

describe('HTTP sessions are bounded and expire (issue 12 #6)', () => {
  const initialize = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'curl', version: '0' } } });
  const post = (url: string, headers: Record<string, string> = {}, body = initialize) => fetch(url, {
    method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', ...headers }, body });

  test('initialize past max_sessions is a 503 QUOTA_EXCEEDED; an idle session expires and frees its place', async () => {
    const svc = new Fake(resolveConfig({ server: { max_sessions: 2, session_idle_ms: 1000 } }));
    const h = await startHttpServer(svc as unknown as WorkspaceService, svc.config, { host: '127.0.0.1', port: 0 });
    try {
      const ids: string[] = [];
      for (let i = 0; i < 2; i++) {
        const r = await post(h.url);
        assert.equal(r.status, 200);
        ids.push(r.headers.get('mcp-session-id')!);
        await r.text();
      }
      const full = await post(h.url);
      assert.equal(full.status, 503);
      const body = await full.json() as { error: { message: string; data: { code: string } } };
      assert.equal(body.error.data.code, 'QUOTA_EXCEEDED');
      assert.match(body.error.message, /max_sessions/);
      await new Promise((r) => setTimeout(r, 1600));
      const gone = await post(h.url, { 'mcp-session-id': ids[0]!, 'mcp-protocol-version': '2025-06-18' },
        JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }));
      assert.equal(gone.status, 404, 'the idle session expired');
      await gone.text();
      const again = await post(h.url);
      assert.equal(again.status, 200);
      await again.text();
    } finally {
      await h.close();
    }
  });
});
