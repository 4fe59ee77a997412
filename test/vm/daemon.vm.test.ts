// One daemon, many clients: racing CLI commands start exactly one daemon; two
// stdio MCP clients (official SDK) and the CLI work at once with separate
// owners; the SDK drives a workspace over the unix socket and over TCP with a
// token; kill -9 of the daemon mid-exec gives a coded error and the next call
// starts a new daemon that re-attaches every VM.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ApiClient, DaemonUnavailableError, Islet, IsletApiError, UnauthorizedError, WorkspaceNotFoundError } from '../../src/sdk/index.js';
import { resolveBootArtifacts } from '../../src/service/artifacts.js';
import { twoBranchRepo } from '../fixtures/git-repo.js';
import { ensureStandinImage, STANDIN_IMAGE } from '../fixtures/session-standin.js';
import { vmEnv } from './factory.js';
import { daemonProcesses, qemuProcesses } from './procs.js';

const TOKEN = 'daemon-test-token-0123456789';
// The image routes' imports go into the shared cache: removed first (hooks run in order), before the factory's teardown stops the daemon.
after(() => { for (const n of ['route-pull', 'route-import']) islet(['image', 'rm', n]); });
const env = vmEnv('daemon', {
  pool: { enabled: false },
  server: { http_port: 1, daemon_idle_exit_s: 0, max_transfer_bytes: 80 << 20, tokens: [{ token: TOKEN, owner: 'sdk-tcp' }] },
});
const cfg = env.cfgFile;
const runDir = env.config.paths.runDir;

const bin = path.resolve('bin/islet.js');
const islet = (args: string[], timeout = 300_000) => {
  const at = args[0] === 'ws' ? 2 : args[0] === 'daemon' ? 2 : 1;
  const r = spawnSync(process.execPath, [bin, ...args.slice(0, at), '--config', cfg, ...args.slice(at)], { timeout, maxBuffer: 64 << 20 });
  return { status: r.status, out: r.stdout.toString('utf8'), err: r.stderr.toString('utf8') };
};
const islAsync = (args: string[]) => new Promise<{ status: number | null; out: string; err: string }>((resolve) => {
  const at = args[0] === 'ws' ? 2 : 1;
  const p = env.track(spawn(process.execPath, [bin, ...args.slice(0, at), '--config', cfg, ...args.slice(at)]));
  let out = '';
  let err = '';
  p.stdout.on('data', (c: Buffer) => { out += c; });
  p.stderr.on('data', (c: Buffer) => { err += c; });
  p.on('close', (status) => resolve({ status, out, err }));
});

const daemons = () => daemonProcesses(cfg);

describe('islet daemon', { timeout: 1_200_000 }, () => {
  test('five CLI commands started at once on a cold data dir start exactly one daemon', async () => {
    assert.deepEqual(daemons(), []);
    const rs = await Promise.all(Array.from({ length: 5 }, () => islAsync(['ws', 'list', '--json'])));
    for (const r of rs) assert.equal(r.status, 0, r.err);
    assert.equal(daemons().length, 1, 'exactly one daemon process');
    const st = JSON.parse(islet(['daemon', 'status', '--json']).out) as { running: boolean; pid: number; node: string };
    assert.equal(st.running, true);
    assert.deepEqual(daemons(), [st.pid]);
  });

  test('two stdio MCP clients and the CLI at once: each its own workspaces, ownership separate', async () => {
    const mcp = async (owner: string) => {
      const t = env.track(new StdioClientTransport({ command: process.execPath, args: [bin, 'serve', '--config', cfg, '--owner', owner, '-q'], stderr: 'pipe' }));
      const c = new Client({ name: `test-${owner}`, version: '1' });
      await c.connect(t);
      return c;
    };
    const [a, b] = await Promise.all([mcp('alice'), mcp('bob')]);
    const sc = (r: unknown) => (r as { structuredContent: Record<string, unknown> }).structuredContent;
    const flow = async (c: Client, name: string) => {
      const w = sc(await c.callTool({ name: 'workspace_create', arguments: { name, image: 'base' } }, undefined, { timeout: 300_000 }));
      const e = sc(await c.callTool({ name: 'exec', arguments: { workspace_id: name, command: `echo ${name}` } }, undefined, { timeout: 120_000 }));
      assert.equal(e.stdout, `${name}\n`);
      return w.workspace_id as string;
    };
    const cliFlow = async () => {
      const r = await islAsync(['ws', 'create', '--name', 'c1', '--image', 'base', '--owner', 'carol', '--json', '-q']);
      assert.equal(r.status, 0, r.err);
      const e = await islAsync(['ws', 'exec', 'c1', '--owner', 'carol', '-q', '--', 'echo', 'c1']);
      assert.equal(e.out, 'c1\n');
    };
    await Promise.all([flow(a, 'a1'), flow(b, 'b1'), cliFlow()]);
    // Each sees only its own.
    const names = async (c: Client) => (sc(await c.callTool({ name: 'workspace_list', arguments: {} })).workspaces as Array<{ name: string }>).map((w) => w.name);
    assert.deepEqual(await names(a), ['a1']);
    assert.deepEqual(await names(b), ['b1']);
    const notMine = await b.callTool({ name: 'exec', arguments: { workspace_id: 'a1', command: 'true' } });
    assert.equal(notMine.isError, true);
    assert.match(JSON.stringify(notMine.content), /WORKSPACE_NOT_FOUND/);
    const all = JSON.parse(islet(['ws', 'list', '--all', '--json']).out) as Array<{ name: string; owner: string }>;
    assert.deepEqual(all.map((w) => `${w.owner}/${w.name}`).sort(), ['alice/a1', 'bob/b1', 'carol/c1']);
    // Destroys, each by its owner.
    for (const [c, n] of [[a, 'a1'], [b, 'b1']] as const) {
      const d = await c.callTool({ name: 'workspace_destroy', arguments: { workspace_id: n } }, undefined, { timeout: 120_000 });
      assert.equal(d.isError, undefined, JSON.stringify(d.content));
    }
    assert.equal(islet(['ws', 'destroy', 'c1', '--owner', 'carol', '-q']).status, 0);
    await Promise.all([a.close(), b.close()]);
    assert.equal(daemons().length, 1, 'still one daemon');
  });

  test('SDK over the unix socket: create, streamed exec, 64 MiB both ways byte-exact, snapshot, fork, destroy', async () => {
    const islet = new Islet({ config: cfg, owner: 'sdk' });
    const ws = await islet.workspaces.create({ name: 's1', image: 'base' });
    assert.equal(ws.info.state, 'running');
    const chunks: string[] = [];
    const r = await ws.exec('for i in 1 2 3; do echo line$i; sleep 0.2; done; echo oops >&2; exit 4', { onStdout: (b) => chunks.push(b.toString()) });
    assert.equal(r.exit_code, 4);
    assert.equal(chunks.join(''), 'line1\nline2\nline3\n');
    assert.ok(chunks.length >= 2, `output arrived in ${chunks.length} piece(s), not streamed`);
    assert.equal(r.stderr, 'oops\n');
    const big = randomBytes(64 << 20);
    await ws.files.write('/root/big.bin', big);
    const sum = await ws.exec(['sha256sum', '/root/big.bin']);
    assert.equal(sum.stdout.split(' ')[0], createHash('sha256').update(big).digest('hex'));
    const back = await ws.files.read('/root/big.bin');
    assert.ok(back.equals(big), 'read back byte-exact');
    await ws.snapshots.create('cp1');
    const fork = await ws.fork({ snapshot: 'cp1', name: 's1-fork' });
    assert.equal((await fork.exec(['test', '-f', '/root/big.bin'])).exit_code, 0);
    await fork.destroy();
    await ws.destroy();
    await assert.rejects(islet.workspaces.get('s1'), WorkspaceNotFoundError);
  });

  test('TCP: a token is required for REST; a wrong token gets 401; with one the SDK works', async () => {
    islet(['daemon', 'stop']);
    const d = env.track(spawn(process.execPath, [bin, 'daemon', 'run', '--config', cfg, '--tcp', '--port', '0', '-q'], { stdio: ['ignore', 'ignore', 'pipe'] }));
    const url = await new Promise<string>((resolve, reject) => {
      let err = '';
      d.stderr.on('data', (c: Buffer) => {
        err += c;
        const m = /and (http:\/\/[^\s]+)/.exec(err);
        if (m?.[1]) resolve(m[1]);
      });
      d.once('exit', () => reject(new Error(`daemon exited: ${err}`)));
    });
    const noToken = await fetch(`${url}/v1/workspaces`);
    assert.equal(noToken.status, 401);
    await assert.rejects(new Islet({ url, token: 'wrong-token-wrong-token' }).workspaces.list(), UnauthorizedError);
    const viaTcp = new Islet({ url, token: TOKEN });
    assert.deepEqual(await viaTcp.workspaces.list(), []);
    const node = await viaTcp.node();
    assert.equal(typeof node.cores, 'number');
    const h = await fetch(`${url}/healthz`);
    assert.equal(h.headers.get('x-islet-node'), os.hostname());
    d.kill('SIGTERM');
    await new Promise((r) => d.once('exit', r));
  });

  /** The image routes: admin only; pull and import register the built base rootfs (copied into the data dir) under two names, removed afterwards. */
  function imageRoutes(socketPath: string | undefined, raw: (method: string, p: string, o?: { json?: unknown }) => Promise<unknown>): Array<[string, () => Promise<unknown>]> {
    const admin = new ApiClient({ socketPath, headers: { 'x-islet-admin': '1' } });
    const files = async () => {
      const a = await resolveBootArtifacts(env.config, 'base');
      const rootfsPath = path.join(env.dir, 'route-rootfs.ext4');
      spawnSync('cp', ['--sparse=always', a.rootfs, rootfsPath]);
      return { kernelPath: a.vmlinux, rootfsPath };
    };
    return [
      ['POST /api/images/pull', async () => {
        const f = await files();
        await assert.rejects(raw('POST', '/api/images/pull', { json: { reference: 'route-pull', ...f } }), (e: unknown) => (e as IsletApiError).status === 403, 'pull needs an admin');
        await assert.rejects(admin.http.send('POST', '/api/images/pull', { json: { reference: 'route-pull', kernelPath: f.kernelPath, rootfsPath: `${env.dir}/../x.ext4` } }),
          (e: unknown) => (e as IsletApiError).status === 400, 'no ".." in host paths');
        return admin.http.send('POST', '/api/images/pull', { json: { reference: 'route-pull', ...f } });
      }],
      ['POST /v1/images/import', async () => admin.http.send('POST', '/v1/images/import', { json: { name: 'route-import', ...(await files()) } })],
      ['POST /v1/images/{name}/build', () => admin.http.send('POST', '/v1/images/base/build')],
      ['POST /v1/images/{name}/verify', async () => {
        const res = await admin.http.send('POST', '/v1/images/route-import/verify', { json: {} }) as AsyncIterable<Buffer> & { statusCode?: number; resume(): void };
        const body: Buffer[] = [];
        for await (const c of res) body.push(c);
        const report = JSON.parse(Buffer.concat(body).toString()) as { ok: boolean; kind: string; checks: Array<{ name: string; ok: boolean; detail: string }> };
        assert.equal(report.kind, 'imported');
        // The route's wiring; what the checks prove is test/vm/image-import.vm.test.ts's job (this cache's agent may predate injection).
        assert.ok(report.checks.filter((c) => c.name.startsWith('exec:')).every((c) => c.ok), JSON.stringify(report.checks));
        return { statusCode: res.statusCode, resume() {} };
      }],
    ];
  }

  /** The agent session routes, on the session-standin fixture image (a stand-in for OpenCode; test/vm/sessions.vm.test.ts checks the flow). */
  function sessionRoutes(raw: (method: string, p: string, o?: { json?: unknown }) => Promise<unknown>): Array<[string, () => Promise<unknown>]> {
    let id = '';
    return [
      ['POST /api/agent/sessions', async () => {
        await ensureStandinImage(env.childEnv());
        const repoUrl = await twoBranchRepo(path.join(env.config.paths.transferDir, 'route-repo'));
        const res = await raw('POST', '/api/agent/sessions', { json: { repoUrl, branch: 'main', imageRef: STANDIN_IMAGE } }) as AsyncIterable<Buffer> & { statusCode?: number };
        const body: Buffer[] = [];
        for await (const c of res) body.push(c);
        id = (JSON.parse(Buffer.concat(body).toString()) as { sessionId: string }).sessionId;
        return { statusCode: res.statusCode, resume() {} };
      }],
      ['GET /api/agent/sessions', () => raw('GET', '/api/agent/sessions')],
      ['GET /api/agent/sessions/{id}', () => raw('GET', `/api/agent/sessions/${id}`)],
      ['DELETE /api/agent/sessions/{id}', () => raw('DELETE', `/api/agent/sessions/${id}`)],
    ];
  }

  test('every route of /v1/openapi.json answers with a success status on a real workspace', async () => {
    const api = await new Islet({ config: cfg, owner: 'routes' }).client();
    const raw = (method: string, p: string, o: { json?: unknown; body?: Buffer; query?: Record<string, string> } = {}) => api.http.send(method, p, o);
    const doc = await api.http.json<{ paths: Record<string, Record<string, unknown>> }>('GET', '/v1/openapi.json');
    const w = '/v1/workspaces/r1';
    let pid = 0;
    // In an order that works: each route once. A route added to the API without a line here fails the test.
    const calls: Array<[string, () => Promise<unknown>]> = [
      ['GET /healthz', () => raw('GET', '/healthz')],
      ['GET /v1/node', () => raw('GET', '/v1/node')],
      ['GET /v1/images', () => raw('GET', '/v1/images')],
      ['GET /v1/status', async () => {
        await assert.rejects(raw('GET', '/v1/status'), (e: unknown) => (e as IsletApiError).status === 403, 'status needs an admin');
        return new ApiClient({ socketPath: api.http.endpoint.socketPath, headers: { 'x-islet-admin': '1' } }).http.send('GET', '/v1/status');
      }],
      ...imageRoutes(api.http.endpoint.socketPath, raw),
      ...sessionRoutes(raw),
      ['POST /v1/run', async () => {
        // Read to the end: the run's workspace is gone before the next route's is made.
        const res = await raw('POST', '/v1/run', { json: { image: 'base', command: ['echo', 'ran'] } });
        const body: Buffer[] = [];
        for await (const c of res) body.push(c as Buffer);
        assert.match(Buffer.concat(body).toString(), /"type":"exit","exit_code":0/);
        return { statusCode: res.statusCode, resume() {} };
      }],
      ['POST /v1/workspaces', () => raw('POST', '/v1/workspaces', { json: { name: 'r1', image: 'base' } })],
      ['GET /v1/workspaces', () => raw('GET', '/v1/workspaces')],
      ['GET /v1/workspaces/{id}', () => raw('GET', w)],
      ['POST /v1/workspaces/{id}/exec', () => raw('POST', `${w}/exec`, { json: { command: 'true' } })],
      ['POST /v1/workspaces/{id}/processes', async () => {
        const res = await raw('POST', `${w}/processes`, { json: { command: 'read x; echo got $x; sleep 30', stdin: true } });
        const body: Buffer[] = [];
        for await (const c of res) body.push(c as Buffer);
        pid = (JSON.parse(Buffer.concat(body).toString()) as { process_id: number }).process_id;
        return { statusCode: res.statusCode, resume() {} };
      }],
      ['GET /v1/workspaces/{id}/processes', () => raw('GET', `${w}/processes`)],
      ['POST /v1/workspaces/{id}/processes/{pid}/stdin', () => raw('POST', `${w}/processes/${pid}/stdin`, { body: Buffer.from('hi\n') })],
      ['GET /v1/workspaces/{id}/processes/{pid}/output', () => raw('GET', `${w}/processes/${pid}/output`, { query: { wait_ms: '5000' } })],
      ['POST /v1/workspaces/{id}/processes/{pid}/resize', async () => {
        // A terminal process to resize.
        const res = await raw('POST', `${w}/processes`, { json: { command: 'sleep 30', pty: { cols: 80, rows: 24 } } });
        const body: Buffer[] = [];
        for await (const c of res) body.push(c as Buffer);
        const tty = (JSON.parse(Buffer.concat(body).toString()) as { process_id: number }).process_id;
        return raw('POST', `${w}/processes/${tty}/resize`, { json: { cols: 100, rows: 30 } });
      }],
      ['POST /v1/workspaces/{id}/processes/{pid}/signal', () => raw('POST', `${w}/processes/${pid}/signal`, { json: { signal: 'KILL' } })],
      ['POST /v1/workspaces/{id}/processes/{pid}/wait', () => raw('POST', `${w}/processes/${pid}/wait`, { json: { timeout_ms: 10_000 } })],
      ['PUT /v1/workspaces/{id}/files', () => raw('PUT', `${w}/files`, { query: { path: '/root/f' }, body: Buffer.from('x') })],
      ['GET /v1/workspaces/{id}/files', () => raw('GET', `${w}/files`, { query: { path: '/root/f' } })],
      ['POST /v1/workspaces/{id}/files/download', () => raw('POST', `${w}/files/download`, { json: { guest_path: '/root/f', host_path: 'r1-f' } })],
      ['POST /v1/workspaces/{id}/files/upload', () => raw('POST', `${w}/files/upload`, { json: { host_path: 'r1-f', guest_path: '/root/g' } })],
      ['POST /v1/workspaces/{id}/forwards', () => raw('POST', `${w}/forwards`, { json: { guest_port: 8080, host_port: 47311 } })],
      ['GET /v1/workspaces/{id}/ip', () => raw('GET', `${w}/ip`)],
      ['DELETE /v1/workspaces/{id}/forwards/{host_port}', () => raw('DELETE', `${w}/forwards/47311`)],
      ['PUT /v1/workspaces/{id}/policy', () => raw('PUT', `${w}/policy`, { json: { allowed_ports: [] } })],
      ['PUT /v1/workspaces/{id}/lifetime', () => raw('PUT', `${w}/lifetime`, { json: { idle_stop_minutes: 0 } })],
      ['POST /v1/workspaces/{id}/snapshots', () => raw('POST', `${w}/snapshots`, { json: { name: 'rs' } })],
      ['GET /v1/workspaces/{id}/snapshots', () => raw('GET', `${w}/snapshots`)],
      ['POST /v1/workspaces/{id}/fork', () => raw('POST', `${w}/fork`, { json: { snapshot: 'rs', name: 'r1-fork' } })],
      ['POST /v1/workspaces/{id}/snapshots/{snapshot}/restore', async () => {
        (await raw('POST', `${w}/snapshots`, { json: { name: 'rs2' } })).resume(); // a later one, on a branch after the restore
        return raw('POST', `${w}/snapshots/rs/restore`);
      }],
      ['POST /v1/workspaces/{id}/pause', () => raw('POST', `${w}/pause`)],
      ['POST /v1/workspaces/{id}/resume', () => raw('POST', `${w}/resume`)],
      ['POST /v1/workspaces/{id}/stop', () => raw('POST', `${w}/stop`)],
      ['POST /v1/workspaces/{id}/start', () => raw('POST', `${w}/start`)],
      ['DELETE /v1/workspaces/{id}/snapshots/{snapshot}', async () => {
        (await raw('DELETE', '/v1/workspaces/r1-fork')).resume();
        return raw('DELETE', `${w}/snapshots/rs2`); // nothing builds on it: the disk went back to rs
      }],
      ['DELETE /v1/workspaces/{id}', () => raw('DELETE', w)],
    ];
    const inDoc = Object.entries(doc.paths).flatMap(([p, m]) => Object.keys(m).map((k) => `${k.toUpperCase()} ${p}`)).sort();
    assert.deepEqual(calls.map(([k]) => k).sort(), inDoc);
    for (const [k, call] of calls) {
      const res = await call().catch((e: unknown) => { throw new Error(`${k}: ${String(e)}`); }) as { statusCode?: number; resume(): void };
      assert.ok(res.statusCode !== undefined && res.statusCode < 300, `${k}: HTTP ${res.statusCode}`);
      res.resume();
    }
  });

  test('kill -9 of the daemon during an exec: a coded error, then a new daemon re-attaches the VM', async () => {
    const islet = new Islet({ config: cfg, owner: 'sdk' });
    const ws = await islet.workspaces.create({ name: 'k1', image: 'base' });
    await ws.files.write('/root/keep.txt', 'kept\n');
    const [pid] = daemons();
    assert.ok(pid);
    const running = ws.exec('sleep 30');
    setTimeout(() => process.kill(pid, 'SIGKILL'), 1_000);
    await assert.rejects(running, (e: unknown) => e instanceof DaemonUnavailableError && (e as IsletApiError).code === 'DAEMON_UNAVAILABLE');
    // The next call (a fresh client, as a new CLI process would be) starts a new daemon, which re-attaches.
    const again = new Islet({ config: cfg, owner: 'sdk' });
    const back = await again.workspaces.get('k1');
    assert.equal(back.info.state, 'running');
    assert.equal((await back.exec(['cat', '/root/keep.txt'])).stdout, 'kept\n');
    assert.equal(daemons().length, 1);
    const mine = () => qemuProcesses(runDir).filter((q) => q.id === ws.id).length;
    assert.equal(mine(), 1, 'one QEMU, nothing orphaned or duplicated');
    await back.destroy();
    assert.equal(mine(), 0);
  });

  test('a stdio MCP client keeps its session across a daemon kill -9: the call in flight is a DAEMON_UNAVAILABLE tool error', async () => {
    const t = env.track(new StdioClientTransport({ command: process.execPath, args: [bin, 'serve', '--config', cfg, '--owner', 'mcp-k', '-q'], stderr: 'pipe' }));
    const c = new Client({ name: 'test-reconnect', version: '1' });
    await c.connect(t);
    const sc = (r: unknown) => (r as { structuredContent: Record<string, unknown> }).structuredContent;
    await c.callTool({ name: 'workspace_create', arguments: { name: 'm1', image: 'base' } }, undefined, { timeout: 300_000 });
    const [pid] = daemons();
    assert.ok(pid);
    const inFlight = c.callTool({ name: 'exec', arguments: { workspace_id: 'm1', command: 'sleep 20' } }, undefined, { timeout: 120_000 });
    setTimeout(() => process.kill(pid, 'SIGKILL'), 1_500);
    const lost = await inFlight;
    assert.equal(lost.isError, true);
    assert.match(JSON.stringify(lost.content), /DAEMON_UNAVAILABLE/);
    // Same client, same session: the front started a new daemon, which re-attached the VM.
    const e = sc(await c.callTool({ name: 'exec', arguments: { workspace_id: 'm1', command: 'echo again' } }, undefined, { timeout: 120_000 }));
    assert.equal(e.stdout, 'again\n');
    const d = await c.callTool({ name: 'workspace_destroy', arguments: { workspace_id: 'm1' } }, undefined, { timeout: 120_000 });
    assert.notEqual(d.isError, true);
    await c.close();
    assert.equal(daemons().length, 1);
  });
});
