// Background processes through a real `islet serve` driven by the official
// MCP client over stdio: a web server that answers through a port forward
// while other commands run, output by offset, a process that survives kill -9
// of the server and a pause/resume, a long exec that returns a process id
// within the client's default timeout, and a 1 GiB writer that leaves guest
// and host memory flat.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { ok } from './mcp-calls.js';
import { daemonPidFor } from './daemon-stop.js';
import { vmEnv } from './factory.js';

const env = vmEnv('process', { pool: { enabled: false } });
const cfgFile = env.cfgFile;

interface Proc { process_id: number; pid: number; running: boolean; exit_code: number | null; signal: string | null; exit_status: number | null; output_bytes: number; dropped_bytes: number }
interface Output { stdout: string; stderr: string; start_offset: number; next_offset: number; dropped_bytes: number; process: Proc }

async function server(): Promise<{ client: Client; transport: StdioClientTransport }> {
  const client = new Client({ name: 'islet-process-test', version: '0' });
  const transport = new StdioClientTransport({ command: process.execPath, args: [path.resolve('bin/islet.js'), 'serve', '--config', cfgFile], stderr: 'ignore' });
  await client.connect(transport);
  env.track(transport);
  return { client, transport };
}

function get(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
  });
}

const rssKb = (status: string) => Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);

let s: Awaited<ReturnType<typeof server>> | undefined;
const WS = 'procs';
after(async () => { await s?.client.close(); });

describe('background processes over MCP', { timeout: 1_200_000 }, () => {
  test('a web server answers through a port forward while other commands run; its output reads from 0 and from an offset', async () => {
    s = await server();
    const c = s.client;
    await ok(c, 'workspace_create', { name: WS });
    await ok(c, 'exec', { workspace_id: WS, command: 'mkdir -p /root/www && echo hello-from-guest > /root/www/index.html' });
    const p = await ok<Proc>(c, 'process_start', { workspace_id: WS, command: 'echo starting; exec busybox httpd -f -vv -p 8080 -h /root/www 2>&1' });
    assert.equal(p.running, true);
    const fwd = await ok<{ host_port: number }>(c, 'port_forward', { workspace_id: WS, guest_port: 8080 });
    let body = '';
    for (let i = 0; i < 50 && body === ''; i++) body = await get(fwd.host_port).catch(async () => { await delay(200); return ''; });
    assert.equal(body, 'hello-from-guest\n');
    const other = await ok<{ stdout: string; exit_code: number }>(c, 'exec', { workspace_id: WS, command: 'echo other command' });
    assert.deepEqual([other.stdout, other.exit_code], ['other command\n', 0]);
    assert.equal(await get(fwd.host_port), 'hello-from-guest\n');

    const all = await ok<Output>(c, 'process_output', { workspace_id: WS, process_id: p.process_id, wait_ms: 5_000 });
    assert.ok(all.stdout.startsWith('starting\n'), all.stdout);
    assert.deepEqual([all.start_offset, all.dropped_bytes, all.process.running], [0, 0, true]);
    const later = await ok<Output>(c, 'process_output', { workspace_id: WS, process_id: p.process_id, offset: 9 });
    assert.equal(later.start_offset, 9);
    assert.equal(later.stdout, all.stdout.slice(9, 9 + later.stdout.length));
    assert.ok(later.next_offset >= all.next_offset);
    const list = await ok<{ processes: Proc[] }>(c, 'process_list', { workspace_id: WS });
    assert.ok(list.processes.some((x) => x.process_id === p.process_id && x.running));
    const k = await ok<Proc>(c, 'process_kill', { workspace_id: WS, process_id: p.process_id, signal: 'KILL' });
    assert.equal(k.process_id, p.process_id);
    const w = await ok<Proc>(c, 'process_wait', { workspace_id: WS, process_id: p.process_id, timeout_ms: 20_000 });
    assert.deepEqual([w.running, w.signal, w.exit_status], [false, 'KILL', 137]);
  });

  test('a background sleep survives kill -9 of the server and a pause/resume, and is killed with TERM (143)', async () => {
    const s1 = s!;
    const p = await ok<Proc>(s1.client, 'process_start', { workspace_id: WS, command: 'sleep 600; echo done' });
    const pid = s1.transport.pid;
    assert.ok(pid);
    process.kill(pid, 'SIGKILL');
    // And the daemon behind it, which holds the agent connections: the next server starts a new one.
    const daemon = daemonPidFor(cfgFile);
    assert.ok(daemon);
    process.kill(daemon, 'SIGKILL');
    await s1.client.close().catch(() => undefined);
    s = await server();
    const c = s.client;
    const find = async () => (await ok<{ processes: Proc[] }>(c, 'process_list', { workspace_id: WS })).processes.find((x) => x.process_id === p.process_id);
    assert.deepEqual([(await find())?.running, (await find())?.pid], [true, p.pid], 'listed, running, after the server was killed');
    await ok(c, 'workspace_pause', { workspace_id: WS });
    await ok(c, 'workspace_resume', { workspace_id: WS });
    assert.deepEqual([(await find())?.running, (await find())?.pid], [true, p.pid], 'listed, running, after pause/resume');
    await ok(c, 'process_kill', { workspace_id: WS, process_id: p.process_id });
    const w = await ok<Proc>(c, 'process_wait', { workspace_id: WS, process_id: p.process_id, timeout_ms: 20_000 });
    assert.deepEqual([w.running, w.exit_code, w.signal, w.exit_status], [false, null, 'TERM', 143]);
    const out = await ok<Output>(c, 'process_output', { workspace_id: WS, process_id: p.process_id });
    assert.equal(out.stdout, '', 'killed before "done"');
  });

  test('exec of `sleep 90; echo ok` with the client\'s default timeout returns a process id, and the command finishes', async () => {
    const c = s!.client;
    const t0 = performance.now();
    // No request options: the SDK's default request timeout (60 s) applies.
    const r = await c.callTool({ name: 'exec', arguments: { workspace_id: WS, command: 'echo begin; sleep 90; echo ok', timeout_ms: 180_000 } }) as CallToolResult;
    const took = performance.now() - t0;
    assert.notEqual(r.isError, true, JSON.stringify(r.content));
    const e = r.structuredContent as { running: boolean; process_id: number; exit_code: number | null; stdout: string; next_offset: number };
    assert.equal(e.running, true);
    assert.equal(e.exit_code, null);
    assert.equal(e.stdout, 'begin\n');
    assert.ok(took < 60_000, `returned after ${took} ms`);
    let w: Proc | undefined;
    while (!w || w.running) w = await ok<Proc>(c, 'process_wait', { workspace_id: WS, process_id: e.process_id, timeout_ms: 50_000 });
    assert.equal(w.exit_code, 0);
    const out = await ok<Output>(c, 'process_output', { workspace_id: WS, process_id: e.process_id, offset: e.next_offset });
    assert.equal(out.stdout, 'ok\n');
  });

  test('a process writing 1 GiB keeps guest and host memory flat; the output says how much was dropped', async () => {
    const c = s!.client;
    const agentRss = async () => rssKb((await ok<{ stdout: string }>(c, 'exec', { workspace_id: WS, command: 'cat /proc/1/status' })).stdout);
    const hostRss = () => rssKb(readFileSync(`/proc/${s!.transport.pid!}/status`, 'utf8'));
    const guest0 = await agentRss();
    const host0 = hostRss();
    const t0 = performance.now();
    const p = await ok<Proc>(c, 'process_start', { workspace_id: WS, command: 'head -c 1073741824 /dev/zero' });
    let w: Proc | undefined;
    while (!w || w.running) w = await ok<Proc>(c, 'process_wait', { workspace_id: WS, process_id: p.process_id, timeout_ms: 30_000 });
    const secs = (performance.now() - t0) / 1000;
    process.stderr.write(`1 GiB through the ring in ${secs.toFixed(1)} s (${(1024 / secs).toFixed(0)} MiB/s)\n`);
    assert.equal(w.exit_code, 0);
    assert.equal(w.output_bytes, 1 << 30);
    assert.ok(w.dropped_bytes >= (1 << 30) - (1 << 20), `dropped ${w.dropped_bytes}`);
    const out = await ok<Output>(c, 'process_output', { workspace_id: WS, process_id: p.process_id, max_bytes: 4096 });
    assert.equal(out.dropped_bytes, w.dropped_bytes);
    assert.equal(out.start_offset, w.dropped_bytes);
    assert.equal(out.stdout.length, 4096);
    const guest1 = await agentRss();
    const host1 = hostRss();
    process.stderr.write(`agent RSS ${guest0} -> ${guest1} kB, server RSS ${host0} -> ${host1} kB\n`);
    assert.ok(guest1 - guest0 < 32 * 1024, `agent RSS grew from ${guest0} to ${guest1} kB`);
    assert.ok(host1 - host0 < 64 * 1024, `server RSS grew from ${host0} to ${host1} kB`);
  });
});
