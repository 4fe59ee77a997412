// `islet serve` over stdio as an MCP client runs it: a real server process,
// real VMs. Two workspaces go through their whole lifecycle; files and
// errors are checked on the way.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { ExecOutput, WorkspaceInfo } from '../../src/service/types.js';
import * as calls from './mcp-calls.js';
import { SLOW } from './mcp-calls.js';
import { vmEnv } from './factory.js';

const env = vmEnv('mcp-stdio', { server: { stdio_owner: 'mcp-test' } });
const dataDir = env.dir;
const transferDir = env.config.paths.transferDir;
const outsideDir = path.join(dataDir, 'outside');
const cfgFile = env.cfgFile;

let stderr = '';
const client = new Client({ name: 'islet-vm-test', version: '0' });
const transport = new StdioClientTransport({
  command: process.execPath, args: [path.resolve('bin/islet.js'), 'serve', '--config', cfgFile], stderr: 'pipe',
});
transport.stderr?.on('data', (c: Buffer) => { stderr += c.toString(); });
env.track(transport);
env.note('islet serve stderr', () => stderr.slice(-4000));

// The calls of this file all go through its one client.
const call = (name: string, args: Record<string, unknown>) => calls.call(client, name, args);
const ok = <T>(name: string, args: Record<string, unknown>) => calls.ok<T>(client, name, args);
const fails = (name: string, args: Record<string, unknown>, code: string) => calls.fails(client, name, args, code);

describe('MCP over stdio with real VMs', { timeout: 900_000 }, () => {
  let a: WorkspaceInfo;
  let b: WorkspaceInfo;

  before(async () => { await client.connect(transport); }, SLOW);

  after(async () => {
    for (const w of [a, b]) if (w) await call('workspace_destroy', { workspace_id: w.workspace_id }).catch(() => undefined);
    await client.close(); // closes stdin: the server must exit by itself
  }, SLOW);

  test('the server lists its tools', async () => {
    const { tools } = await client.listTools();
    assert.equal(tools.length, 33);
  });

  test('create two workspaces; exec returns stdout, stderr and the exit code as data', async () => {
    a = await ok<WorkspaceInfo>('workspace_create', { name: 'mcp-a' });
    b = await ok<WorkspaceInfo>('workspace_create', { name: 'mcp-b' });
    assert.equal(a.state, 'running');
    assert.equal(a.owner, 'mcp-test');
    const ra = await ok<ExecOutput>('exec', { workspace_id: a.workspace_id, command: 'hostname; echo oops >&2; exit 7' });
    assert.deepEqual([ra.stdout, ra.stderr, ra.exit_code, ra.timed_out], ['mcp-a\n', 'oops\n', 7, false]);
    const rb = await ok<ExecOutput>('exec', { workspace_id: 'mcp-b', command: ['cat', '/proc/sys/kernel/hostname'] });
    assert.equal(rb.stdout, 'mcp-b\n');
    const { workspaces } = await ok<{ workspaces: WorkspaceInfo[] }>('workspace_list', {});
    assert.deepEqual(workspaces.map((w) => w.name).sort(), ['mcp-a', 'mcp-b']);
  });

  test('workspace_ip and port_forward over MCP', async () => {
    const ip = await ok<{ ip: string; mode: string; allow_internet: boolean }>('workspace_ip', { workspace_id: a.workspace_id });
    assert.deepEqual([ip.mode, ip.ip, ip.allow_internet], ['user', '10.0.2.15', false]);
    const f = await ok<{ host_port: number; guest_port: number }>('port_forward', { workspace_id: a.workspace_id, guest_port: 8080 });
    assert.equal(f.guest_port, 8080);
    const r = await ok<{ removed: boolean }>('port_forward_remove', { workspace_id: a.workspace_id, host_port: f.host_port });
    assert.equal(r.removed, true);
  });

  test('file_write and file_read, utf8 and base64', async () => {
    const w = await ok<{ bytes: number }>('file_write', { workspace_id: a.workspace_id, path: '/root/notes/hello.txt', content: 'héllo\n' });
    assert.equal(w.bytes, 7);
    const r = await ok<{ content: string; bytes: number }>('file_read', { workspace_id: a.workspace_id, path: '/root/notes/hello.txt' });
    assert.deepEqual([r.content, r.bytes], ['héllo\n', 7]);
    const bin = Buffer.from([0, 1, 2, 255, 254, 10]);
    await ok('file_write', { workspace_id: a.workspace_id, path: '/root/bin.dat', content: bin.toString('base64'), encoding: 'base64', mode: 0o600 });
    const rb = await ok<{ content: string }>('file_read', { workspace_id: a.workspace_id, path: '/root/bin.dat', encoding: 'base64' });
    assert.deepEqual(Buffer.from(rb.content, 'base64'), bin);
    const st = await ok<ExecOutput>('exec', { workspace_id: a.workspace_id, command: 'stat -c %a /root/bin.dat' });
    assert.equal(st.stdout, '600\n');
  });

  test('file_upload and file_download stay inside transfer_dir', async () => {
    mkdirSync(transferDir, { recursive: true });
    mkdirSync(outsideDir, { recursive: true });
    writeFileSync(path.join(transferDir, 'in.txt'), 'from the host\n');
    writeFileSync(path.join(outsideDir, 'secret.txt'), 'not for the guest\n');
    symlinkSync(path.join(outsideDir, 'secret.txt'), path.join(transferDir, 'link-to-secret'));
    symlinkSync(outsideDir, path.join(transferDir, 'link-to-outside'));

    const up = await ok<{ bytes: number }>('file_upload', { workspace_id: b.workspace_id, host_path: 'in.txt', guest_path: '/tmp/in.txt' });
    assert.equal(up.bytes, 14);
    const cat = await ok<ExecOutput>('exec', { workspace_id: b.workspace_id, command: 'cat /tmp/in.txt && echo more >> /tmp/in.txt' });
    assert.equal(cat.stdout, 'from the host\n');
    const down = await ok<{ host_path: string }>('file_download', { workspace_id: b.workspace_id, guest_path: '/tmp/in.txt', host_path: 'out/in.txt' });
    assert.equal(readFileSync(path.join(transferDir, 'out/in.txt'), 'utf8'), 'from the host\nmore\n');
    assert.equal(down.host_path, path.join(transferDir, 'out/in.txt'));
    await fails('file_download', { workspace_id: b.workspace_id, guest_path: '/tmp/in.txt', host_path: 'out/in.txt' }, 'INVALID_ARGUMENT');
    await ok('file_download', { workspace_id: b.workspace_id, guest_path: '/tmp/in.txt', host_path: 'out/in.txt', overwrite: true });

    const ws = b.workspace_id;
    await fails('file_upload', { workspace_id: ws, host_path: '../islet.toml', guest_path: '/tmp/x' }, 'PATH_OUTSIDE_ALLOWED');
    await fails('file_upload', { workspace_id: ws, host_path: '/etc/passwd', guest_path: '/tmp/x' }, 'PATH_OUTSIDE_ALLOWED');
    await fails('file_upload', { workspace_id: ws, host_path: 'link-to-secret', guest_path: '/tmp/x' }, 'PATH_OUTSIDE_ALLOWED');
    await fails('file_upload', { workspace_id: ws, host_path: 'link-to-outside/secret.txt', guest_path: '/tmp/x' }, 'PATH_OUTSIDE_ALLOWED');
    await fails('file_download', { workspace_id: ws, guest_path: '/tmp/in.txt', host_path: '../escaped.txt' }, 'PATH_OUTSIDE_ALLOWED');
    await fails('file_download', { workspace_id: ws, guest_path: '/tmp/in.txt', host_path: path.join(outsideDir, 'x.txt') }, 'PATH_OUTSIDE_ALLOWED');
    await fails('file_download', { workspace_id: ws, guest_path: '/tmp/in.txt', host_path: 'link-to-outside/x.txt' }, 'PATH_OUTSIDE_ALLOWED');
    await fails('file_download', { workspace_id: ws, guest_path: '/tmp/in.txt', host_path: 'link-to-outside/sub/x.txt' }, 'PATH_OUTSIDE_ALLOWED');
    assert.equal(existsSync(path.join(dataDir, 'escaped.txt')), false);
    assert.equal(existsSync(path.join(outsideDir, 'x.txt')), false);
    assert.equal(existsSync(path.join(outsideDir, 'sub')), false, 'a refused download must not create directories outside transfer_dir');
  });

  test('errors carry their code; invalid arguments are refused', async () => {
    await fails('exec', { workspace_id: 'no-such-ws', command: 'true' }, 'WORKSPACE_NOT_FOUND');
    await fails('workspace_info', { workspace_id: 'no-such-ws' }, 'WORKSPACE_NOT_FOUND');
    await ok('file_write', { workspace_id: a.workspace_id, path: '/root/big', content: 'x'.repeat(5000) });
    await fails('file_read', { workspace_id: a.workspace_id, path: '/root/big', max_bytes: 1000 }, 'FILE_TOO_LARGE');
    for (const args of [{ workspace_id: a.workspace_id }, { workspace_id: a.workspace_id, command: 'true', timeout_ms: -1 }]) {
      const r = await call('exec', args);
      assert.equal(r.isError, true, JSON.stringify(args));
    }
    await fails('workspace_create', { name: 'mcp-a' }, 'INVALID_ARGUMENT');
  });

  test('stop, start and exec again: files survive, processes do not', async () => {
    await ok('exec', { workspace_id: a.workspace_id, command: 'nohup sleep 1000 >/dev/null 2>&1 & sync' });
    const stopped = await ok<WorkspaceInfo>('workspace_stop', { workspace_id: a.workspace_id });
    assert.deepEqual([stopped.state, stopped.pid], ['stopped', null]);
    await fails('exec', { workspace_id: a.workspace_id, command: 'true' }, 'STATE_CONFLICT');
    const started = await ok<WorkspaceInfo>('workspace_start', { workspace_id: a.workspace_id });
    assert.equal(started.state, 'running');
    const r = await ok<ExecOutput>('exec', { workspace_id: a.workspace_id, command: 'cat /root/notes/hello.txt; pgrep -x sleep || echo no-sleep' });
    assert.equal(r.stdout, 'héllo\nno-sleep\n');
    const info = await ok<WorkspaceInfo>('workspace_info', { workspace_id: b.workspace_id });
    assert.equal(info.state, 'running', 'the other workspace is untouched');
  });

  test('destroy both; a second destroy is WORKSPACE_NOT_FOUND', async () => {
    for (const w of [a, b]) {
      const d = await ok<{ destroyed: boolean }>('workspace_destroy', { workspace_id: w.workspace_id });
      assert.equal(d.destroyed, true);
    }
    await fails('workspace_destroy', { workspace_id: a.workspace_id }, 'WORKSPACE_NOT_FOUND');
    const { workspaces } = await ok<{ workspaces: WorkspaceInfo[] }>('workspace_list', {});
    assert.deepEqual(workspaces, []);
  });
});
