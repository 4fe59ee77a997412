// kill -9 of a real `islet serve` (driven over stdio by the official MCP
// client): a new server lists every workspace in its state, the running one
// still answers exec, and exactly one QEMU per running workspace exists.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { daemonPidFor } from './daemon-stop.js';
import { vmEnv } from './factory.js';
import { qemuProcesses } from './procs.js';

// No warm pool: this test counts the QEMUs of workspaces (test/vm/pool.vm.test.ts covers the pool across a kill -9).
const env = vmEnv('serve-restart', { pool: { enabled: false } });
const cfgFile = env.cfgFile;
const SLOW = { timeout: 300_000 };

const qemuCount = (id: string) => qemuProcesses(env.config.paths.runDir).filter((q) => q.id === id).length;

async function server(): Promise<{ client: Client; transport: StdioClientTransport; call: (n: string, a: Record<string, unknown>) => Promise<Record<string, unknown>> }> {
  const client = new Client({ name: 'islet-restart-test', version: '0' });
  const transport = new StdioClientTransport({ command: process.execPath, args: [path.resolve('bin/islet.js'), 'serve', '--config', cfgFile], stderr: 'ignore' });
  await client.connect(transport);
  env.track(transport);
  const call = async (name: string, args: Record<string, unknown>) => {
    const r = await client.callTool({ name, arguments: args }, undefined, SLOW) as CallToolResult;
    assert.notEqual(r.isError, true, `${name}: ${JSON.stringify(r.content)}`);
    return r.structuredContent as Record<string, unknown>;
  };
  return { client, transport, call };
}

let last: Awaited<ReturnType<typeof server>> | undefined;
after(async () => { await last?.client.close(); });

describe('islet serve killed with -9', { timeout: 600_000 }, () => {
  test('the next server lists, re-attaches and runs; nothing is orphaned or duplicated', async () => {
    const s1 = await server();
    const a = await s1.call('workspace_create', { name: 'keep-running' });
    const b = await s1.call('workspace_create', { name: 'was-stopped' });
    await s1.call('exec', { workspace_id: 'keep-running', command: 'echo before > /root/mark' });
    await s1.call('workspace_stop', { workspace_id: 'was-stopped' });
    const pid = s1.transport.pid;
    assert.ok(pid);
    process.kill(pid, 'SIGKILL');
    // The daemon behind it too: the next `islet serve` starts a new one, which must re-attach.
    const daemon = daemonPidFor(cfgFile);
    assert.ok(daemon);
    process.kill(daemon, 'SIGKILL');
    await s1.client.close().catch(() => undefined);
    assert.equal(qemuCount(String(a.workspace_id)), 1, 'the running VM survives its server');

    last = await server();
    const { workspaces } = await last.call('workspace_list', {}) as { workspaces: Array<{ name: string; state: string }> };
    assert.deepEqual(workspaces.map((w) => [w.name, w.state]), [['keep-running', 'running'], ['was-stopped', 'stopped']]);
    const r = await last.call('exec', { workspace_id: 'keep-running', command: 'cat /root/mark' });
    assert.equal(r.stdout, 'before\n');
    assert.equal(qemuCount(String(a.workspace_id)), 1, 'no duplicate QEMU after re-attach');
    assert.equal(qemuCount(String(b.workspace_id)), 0);
  });
});
