// The MCP tools driven by a real Client over an in-memory pair, against a fake
// WorkspaceService that records what the surface passes it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { CallToolResult, Progress } from '@modelcontextprotocol/sdk/types.js';
import { resolveConfig } from '../../src/core/config.js';
import { CancelledError, IsletError } from '../../src/core/errors.js';
import type { Caller, ExecHooks, ExecOutput, WorkspaceInfo } from '../../src/service/types.js';
import type { WorkspaceService } from '../../src/service/workspaces.js';
import { createMcpServer } from '../../src/surfaces/mcp/server.js';

const ws = (id: string, owner: string): WorkspaceInfo => ({
  workspace_id: id, name: id, state: 'running', image: 'base', vcpus: 1, memory_mb: 256, disk_gb: 2,
  allow_internet: false, owner, created_at: '2025-01-01T00:00:00Z', updated_at: '2025-01-01T00:00:00Z', pid: 42,
  network: { mode: 'user', ip: '10.0.2.15', forwards: [] }, snapshot_count: 0, error: null, disk_used_bytes: 1024, ssh: null,
  snapshots: [], current_snapshot_id: null,
  lifetime: { ttl_minutes: 0, idle_stop_minutes: 0, retention_minutes: 0, expires_at: null, idle_stop_at: null, destroy_at: null, last_active_at: null, stopped_by: null },
});

class FakeService {
  readonly config = resolveConfig({ server: { exec_progress_interval_ms: 100 } });
  readonly calls: Array<{ op: string; caller: Caller; input: unknown }> = [];
  execSignal: AbortSignal | undefined;
  private record(op: string, caller: Caller, input: unknown) { this.calls.push({ op, caller, input }); }
  async list(c: Caller, i: unknown) { this.record('list', c, i); return [{ ...ws('ws-1', c.owner), internal_secret: 'x' }]; }
  async info(c: Caller, i: { workspace_id: string }) {
    this.record('info', c, i);
    throw new IsletError('WORKSPACE_NOT_FOUND', `no workspace "${i.workspace_id}"`, 'list yours with workspace_list');
  }
  async destroy(c: Caller, i: { workspace_id: string }) { this.record('destroy', c, i); return { workspace_id: i.workspace_id, destroyed: true as const }; }
  async fileRead(c: Caller, i: unknown) { this.record('fileRead', c, i); return { path: '/etc/hostname', content: 'guest\n', encoding: 'utf8' as const, bytes: 6 }; }
  async exec(c: Caller, i: { command: string | string[] }, h: ExecHooks = {}): Promise<ExecOutput> {
    this.record('exec', c, i);
    this.execSignal = h.signal;
    const out = (s: string): ExecOutput => ({ exit_code: 3, signal: null, stdout: s, stderr: 'warn\n', stdout_encoding: 'utf8', stderr_encoding: 'utf8', timed_out: false, truncated: false, duration_ms: 5 });
    if (i.command === 'fast') return out('done\n');
    if (i.command === 'long') {
      return h.detach ? { ...out('begin\n'), exit_code: null, running: true, process_id: 4, next_offset: 6 } : out('not detached\n');
    }
    // A slow command: emit a line, then wait until cancelled or 450 ms pass.
    h.onData?.('stdout', Buffer.from('line one\nstep \u001b[31m2\n'));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(resolve, 450);
      h.signal?.addEventListener('abort', () => { clearTimeout(t); reject(new CancelledError('exec')); });
    });
    return out('slow\n');
  }
}

const textOf = (r: CallToolResult) => r.content.map((c) => (c.type === 'text' ? c.text : '')).join('');

describe('MCP tools over an in-memory client', () => {
  const svc = new FakeService();
  const client = new Client({ name: 'test', version: '0' });
  before(async () => {
    const server = createMcpServer(svc as unknown as WorkspaceService, () => ({ owner: 'alice' }));
    const [a, b] = InMemoryTransport.createLinkedPair();
    await server.connect(a);
    await client.connect(b);
  });
  after(() => client.close());

  test('the server identifies itself and lists all tools with schemas and all four annotations', async () => {
    assert.equal(client.getServerVersion()?.name, 'islet');
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), ['exec', 'file_download', 'file_read', 'file_upload', 'file_write',
      'network_policy', 'port_forward', 'port_forward_remove', 'process_kill', 'process_list', 'process_output', 'process_start',
      'process_wait', 'process_write', 'session_create', 'session_destroy', 'session_get', 'session_list', 'snapshot_create', 'snapshot_delete', 'snapshot_list', 'snapshot_restore',
      'workspace_create', 'workspace_destroy', 'workspace_fork', 'workspace_info', 'workspace_ip', 'workspace_list', 'workspace_pause',
      'workspace_resume', 'workspace_set_lifetime', 'workspace_start', 'workspace_stop']);
    for (const t of tools) {
      assert.ok(t.title && t.description && t.description.length > 40, t.name);
      assert.equal(t.inputSchema.type, 'object', t.name);
      assert.equal(t.outputSchema?.type, 'object', t.name);
      for (const k of ['readOnlyHint', 'destructiveHint', 'idempotentHint', 'openWorldHint'] as const) {
        assert.equal(typeof t.annotations?.[k], 'boolean', `${t.name}.${k}`);
      }
    }
    const byName = new Map(tools.map((t) => [t.name, t]));
    assert.equal(byName.get('workspace_list')?.annotations?.readOnlyHint, true);
    assert.deepEqual(byName.get('workspace_destroy')?.annotations,
      { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false });
    assert.equal(byName.get('exec')?.annotations?.destructiveHint, true);
    assert.match(byName.get('exec')?.description ?? '', /timeout_ms.*60 s/s);
    assert.deepEqual(byName.get('exec')?.inputSchema.required, ['workspace_id', 'command']);
  });

  test('workspace_list wraps the array in an object, passes the caller and drops undeclared fields', async () => {
    const r = await client.callTool({ name: 'workspace_list', arguments: { state: 'running' } }) as CallToolResult;
    assert.equal(r.isError, undefined);
    const sc = r.structuredContent as { workspaces: Array<Record<string, unknown>> };
    assert.equal(sc.workspaces[0]?.workspace_id, 'ws-1');
    assert.equal(sc.workspaces[0]?.internal_secret, undefined);
    assert.deepEqual(svc.calls.at(-1), { op: 'list', caller: { owner: 'alice' }, input: { state: 'running' } });
  });

  test('a domain error is an isError result carrying code, message and hint', async () => {
    const r = await client.callTool({ name: 'workspace_info', arguments: { workspace_id: 'nope' } }) as CallToolResult;
    assert.equal(r.isError, true);
    assert.equal(r.structuredContent, undefined);
    assert.deepEqual(JSON.parse(textOf(r)), { code: 'WORKSPACE_NOT_FOUND', message: 'no workspace "nope"', hint: 'list yours with workspace_list' });
  });

  test('invalid arguments never reach the service', async () => {
    const before = svc.calls.length;
    const r = await client.callTool({ name: 'workspace_info', arguments: { workspace_id: '../etc' } }) as CallToolResult;
    assert.equal(r.isError, true);
    assert.match(textOf(r), /workspace_id/);
    const r2 = await client.callTool({ name: 'file_read', arguments: { workspace_id: 'w', path: 'relative' } }) as CallToolResult;
    assert.equal(r2.isError, true);
    assert.equal(svc.calls.length, before);
  });

  test('schema defaults are applied before the service sees the input', async () => {
    await client.callTool({ name: 'file_read', arguments: { workspace_id: 'w', path: '/etc/hostname' } });
    assert.deepEqual(svc.calls.at(-1)?.input, { workspace_id: 'w', path: '/etc/hostname', encoding: 'utf8', max_bytes: 1 << 20 });
  });

  test('exec: a non-zero exit code is data, and the text shows the output', async () => {
    const r = await client.callTool({ name: 'exec', arguments: { workspace_id: 'w', command: 'fast' } }) as CallToolResult;
    assert.equal(r.isError, undefined);
    assert.equal((r.structuredContent as unknown as ExecOutput).exit_code, 3);
    assert.match(textOf(r), /exit code 3[\s\S]*done[\s\S]*warn/);
  });

  test('exec: a long command comes back detached, with its process id and offset in the result and the text', async () => {
    const r = await client.callTool({ name: 'exec', arguments: { workspace_id: 'w', command: 'long' } }) as CallToolResult;
    assert.deepEqual(r.structuredContent, {
      exit_code: null, signal: null, stdout: 'begin\n', stderr: 'warn\n', stdout_encoding: 'utf8', stderr_encoding: 'utf8',
      timed_out: false, truncated: false, duration_ms: 5, running: true, process_id: 4, next_offset: 6,
    });
    assert.match(textOf(r), /still running .* process 4 .*offset 6/);
  });

  test('exec reports progress with the last output line when given a progressToken', async () => {
    const seen: Progress[] = [];
    const r = await client.callTool({ name: 'exec', arguments: { workspace_id: 'w', command: 'slow' } }, undefined,
      { onprogress: (p) => seen.push(p) }) as CallToolResult;
    assert.equal((r.structuredContent as unknown as ExecOutput).stdout, 'slow\n');
    assert.ok(seen.length >= 2, `expected progress, got ${seen.length}`);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]!.progress > seen[i - 1]!.progress, 'progress increases');
    assert.match(seen[0]?.message ?? '', /step \[31m2$/, 'last line, control characters stripped');
  });

  test('cancelling the call aborts the signal the service got', async () => {
    const ac = new AbortController();
    const call = client.callTool({ name: 'exec', arguments: { workspace_id: 'w', command: 'slow' } }, undefined, { signal: ac.signal });
    setTimeout(() => ac.abort(new Error('user cancelled')), 50);
    await assert.rejects(call);
    // The cancellation notification travels to the server; wait for its effect, not a fixed time.
    const sig = svc.execSignal;
    assert.ok(sig);
    if (!sig.aborted) await new Promise((r) => sig.addEventListener('abort', r, { once: true }));
    assert.equal(sig.aborted, true);
  });
});
