// `islet serve --http` with real VMs: two sessions without tokens own
// separate workspaces; exec progress and cancellation travel over HTTP.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Progress } from '@modelcontextprotocol/sdk/types.js';
import type { ExecOutput, WorkspaceInfo } from '../../src/service/types.js';
import { vmEnv } from './factory.js';
import { call, fails, ok, SLOW } from './mcp-calls.js';

const env = vmEnv('mcp-http', { server: { exec_progress_interval_ms: 500 } });

let stderr = '';
env.note('islet serve stderr', () => stderr.slice(-4000));
const sessions: Client[] = [];

async function startServer(): Promise<string> {
  const p = env.spawn(process.execPath, [path.resolve('bin/islet.js'), 'serve', '--http', '--port', '0', '--config', env.cfgFile],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  return new Promise((resolve, reject) => {
    p.stderr?.on('data', (c: Buffer) => {
      stderr += c.toString();
      const m = /MCP Streamable HTTP on (http:\/\/\S+)/.exec(stderr);
      if (m?.[1]) resolve(m[1]);
    });
    p.once('exit', (code) => reject(new Error(`islet serve exited ${code} before listening:\n${stderr}`)));
  });
}

async function session(url: string): Promise<Client> {
  const c = new Client({ name: 'islet-vm-test', version: '0' });
  await c.connect(new StreamableHTTPClientTransport(new URL(url)));
  sessions.push(c);
  return c;
}

describe('MCP over Streamable HTTP with real VMs', { timeout: 900_000 }, () => {
  let A: Client;
  let B: Client;
  let ws: WorkspaceInfo | undefined;

  before(async () => {
    const url = await startServer();
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
    A = await session(url);
    B = await session(url);
  }, SLOW);

  after(async () => {
    if (ws) await call(A, 'workspace_destroy', { workspace_id: ws.workspace_id }).catch(() => undefined);
    await Promise.allSettled(sessions.map((c) => c.close()));
  }, SLOW);

  test('session A creates a workspace and runs a command in it', async () => {
    ws = await ok<WorkspaceInfo>(A, 'workspace_create', { name: 'mcp-http-a' });
    assert.match(ws.owner, /^session:[0-9a-f-]{36}$/);
    const r = await ok<ExecOutput>(A, 'exec', { workspace_id: ws.workspace_id, command: ['sh', '-c', 'echo hi; exit 3'] });
    assert.deepEqual([r.stdout, r.exit_code], ['hi\n', 3]);
  });

  test('session B neither sees nor touches A\'s workspace', async () => {
    assert.ok(ws);
    const listB = await ok<{ workspaces: WorkspaceInfo[] }>(B, 'workspace_list', {});
    assert.deepEqual(listB.workspaces, []);
    const listA = await ok<{ workspaces: WorkspaceInfo[] }>(A, 'workspace_list', {});
    assert.deepEqual(listA.workspaces.map((w) => w.workspace_id), [ws.workspace_id]);
    for (const ref of [ws.workspace_id, ws.name]) {
      await fails(B, 'exec', { workspace_id: ref, command: 'true' }, 'WORKSPACE_NOT_FOUND');
      await fails(B, 'workspace_info', { workspace_id: ref }, 'WORKSPACE_NOT_FOUND');
      await fails(B, 'file_read', { workspace_id: ref, path: '/etc/hostname' }, 'WORKSPACE_NOT_FOUND');
      await fails(B, 'workspace_destroy', { workspace_id: ref }, 'WORKSPACE_NOT_FOUND');
    }
    await ok(A, 'workspace_info', { workspace_id: ws.workspace_id });
  });

  test('exec sends progress notifications while a ~3 s command runs', async () => {
    assert.ok(ws);
    const seen: Progress[] = [];
    const r = await ok<ExecOutput>(A, 'exec', { workspace_id: ws.workspace_id, command: 'for i in 1 2 3; do echo tick $i; sleep 1; done' },
      { onprogress: (p) => seen.push(p) });
    assert.equal(r.stdout, 'tick 1\ntick 2\ntick 3\n');
    assert.ok(seen.length >= 2, `expected at least 2 progress notifications, got ${seen.length}`);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]!.progress > seen[i - 1]!.progress);
    assert.ok(seen.some((p) => /tick \d/.test(p.message ?? '')), JSON.stringify(seen));
  });

  test('cancelling exec kills the guest process', async () => {
    assert.ok(ws);
    const id = ws.workspace_id;
    const ac = new AbortController();
    let pid = '';
    // $$ is the shell's pid, which exec hands to sleep; progress carries it as the last output line.
    const call1 = call(A, 'exec', { workspace_id: id, command: 'echo $$; exec sleep 300', timeout_ms: 600_000 }, {
      signal: ac.signal,
      onprogress: (p) => {
        const m = /: (\d+)$/.exec(p.message ?? '');
        if (m?.[1] && !pid) { pid = m[1]; ac.abort(new Error('cancelled by the test')); }
      },
    });
    await assert.rejects(call1);
    assert.match(pid, /^\d+$/);
    // The kill travels notifications/cancelled -> service -> agent; allow it a few seconds to land.
    const probe = await ok<ExecOutput>(A, 'exec', { workspace_id: id,
      command: `for i in $(seq 50); do kill -0 ${pid} 2>/dev/null || { echo gone; exit 0; }; sleep 0.1; done; echo alive` });
    assert.equal(probe.stdout, 'gone\n');
  });

  test('errors over HTTP carry their code', async () => {
    assert.ok(ws);
    await fails(A, 'workspace_start', { workspace_id: ws.workspace_id }, 'STATE_CONFLICT');
    await ok(A, 'file_write', { workspace_id: ws.workspace_id, path: '/tmp/big', content: 'y'.repeat(3000) });
    await fails(A, 'file_read', { workspace_id: ws.workspace_id, path: '/tmp/big', max_bytes: 100 }, 'FILE_TOO_LARGE');
    const r = await call(A, 'file_read', { workspace_id: ws.workspace_id, path: 'tmp/big' });
    assert.equal(r.isError, true, 'a relative guest path is refused by the schema');
  });

  test('destroy from the owning session', async () => {
    assert.ok(ws);
    await ok(A, 'workspace_destroy', { workspace_id: ws.workspace_id });
    ws = undefined;
    assert.deepEqual((await ok<{ workspaces: WorkspaceInfo[] }>(A, 'workspace_list', {})).workspaces, []);
  });
});
