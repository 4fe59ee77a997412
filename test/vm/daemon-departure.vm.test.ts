// When a stdio MCP client goes away, nothing of its making runs on except
// its workspaces: its `islet serve` front exits, the daemon keeps the
// workspace it left, and once that is destroyed the daemon leaves after its
// idle time, taking its warm-pool VMs with it. No QEMU is left.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ApiClient, Islet } from '../../src/sdk/index.js';
import { daemonPidFor } from './daemon-stop.js';
import { vmEnv } from './factory.js';
import { qemuProcesses } from './procs.js';

const env = vmEnv('ddep', {
  resources: { default_image: 'base', default_memory_mb: 256 },
  pool: { enabled: true, target_free: 1, max_size: 1 },
  server: { daemon_idle_exit_s: 3 },
});
const cfg = env.cfgFile;
const runDir = env.config.paths.runDir;

const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };
async function until(what: string, ok: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('a stdio client goes away', { timeout: 600_000 }, () => {
  test('only its workspace runs on; after that is destroyed the daemon leaves with its pool VMs', async () => {
    const t = env.track(new StdioClientTransport({ command: process.execPath, args: [path.resolve('bin/islet.js'), 'serve', '--config', cfg, '-q'], stderr: 'ignore' }));
    const mcp = new Client({ name: 'departure-test', version: '0' });
    await mcp.connect(t);
    const call = async (name: string, args: Record<string, unknown>) => {
      const r = await mcp.callTool({ name, arguments: args }) as { isError?: boolean; structuredContent?: Record<string, unknown> };
      assert.ok(!r.isError, `${name}: ${JSON.stringify(r)}`);
      return r.structuredContent!;
    };
    const kept = await call('workspace_create', { name: 'kept' });
    const gone = await call('workspace_create', { name: 'gone' });
    await call('workspace_destroy', { workspace_id: gone.workspace_id });
    const frontPid = t.pid;
    await mcp.close();
    if (frontPid) await until('the stdio front exits', () => !alive(frontPid), 30_000);

    const daemon = daemonPidFor(cfg);
    assert.ok(daemon && alive(daemon), 'the daemon stays: it has a workspace');
    const islet = new Islet({ config: cfg, owner: 'local' });
    const socketPath = path.join(runDir, 'islet.sock');
    const admin = new ApiClient({ socketPath, headers: { 'x-islet-admin': '1' } });
    const status = await admin.http.json<{ pool: { id: string }[] }>('GET', '/v1/status');
    const pool = new Set(status.pool.map((p) => p.id));
    const running = qemuProcesses(runDir).map((q) => q.id);
    assert.ok(running.includes(String(kept.workspace_id)), 'the kept workspace runs');
    assert.ok(!running.includes(String(gone.workspace_id)), 'the destroyed one does not');
    for (const id of running) assert.ok(id === kept.workspace_id || pool.has(id), `${id} is neither the workspace nor a pool VM the daemon holds`);

    await (await islet.workspaces.get('kept')).destroy();
    await until('the idle daemon exits', () => !alive(daemon), 120_000);
    await until('no QEMU is left', () => qemuProcesses(runDir).length === 0, 30_000);
  });
});
