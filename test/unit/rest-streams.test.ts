// The REST exec and file-read routes write straight to the node response:
// execs one after another share one kept-alive connection, a command refused
// before it starts gets its error's status, output streams as it arrives, and
// a file read comes back byte-exact with its declared length. A fake service
// stands behind the real app and SDK client; no VM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { getRequestListener } from '@hono/node-server';
import { WorkspaceNotFoundError, GuestTimeoutError } from '../../src/core/errors.js';
import { ApiClient } from '../../src/sdk/api.js';
import { WorkspaceNotFoundError as SdkNotFound } from '../../src/sdk/errors.js';
import { createRestApp, callerOf } from '../../src/surfaces/rest/app.js';
import type { WorkspaceService } from '../../src/service/workspaces.js';

const FILE = Buffer.from(Array.from({ length: 3 << 20 }, (_, i) => (i * 7) & 0xff));

const fake = {
  exec: async (_c: unknown, i: { workspace_id: string; command: string[] }, o: { onData?: (s: 'stdout' | 'stderr', b: Buffer) => void }) => {
    if (i.workspace_id === 'nope') throw new WorkspaceNotFoundError('nope');
    if (i.command[0] === 'slow-fail') {
      o.onData?.('stdout', Buffer.from('partial'));
      await new Promise((r) => setTimeout(r, 20));
      throw new GuestTimeoutError('exec', 10, 'timeout_ms');
    }
    o.onData?.('stdout', Buffer.from('out'));
    o.onData?.('stderr', Buffer.from('err'));
    return { exit_code: 3, signal: null, stdout: '', stderr: '', timed_out: false, truncated: false, duration_ms: 1 };
  },
  readStream: async () => ({
    size: FILE.length, mode: 0o640,
    chunks: (async function* () { for (let o = 0; o < FILE.length; o += 1 << 20) yield FILE.subarray(o, o + (1 << 20)); })(),
  }),
} as unknown as WorkspaceService;

async function withDaemon(fn: (api: ApiClient, conns: () => number) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'islet-rest-s-'));
  const socketPath = path.join(dir, 'd.sock');
  const listener = getRequestListener(createRestApp(fake, { nodeInfo: async () => ({}), maxBodyBytes: 1 << 30 }).fetch);
  const server = createServer((req, res) => { callerOf.set(req, { owner: 'local' }); void listener(req, res); });
  let conns = 0;
  server.on('connection', () => { conns++; });
  await new Promise<void>((r) => server.listen(socketPath, r));
  try {
    await fn(new ApiClient({ socketPath }), () => conns);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
}

test('execs one after another reuse one kept-alive connection, and stream their output to the hooks', async () => {
  await withDaemon(async (api, conns) => {
    for (let i = 0; i < 5; i++) {
      const seen: string[] = [];
      const r = await api.exec('ws-1', { command: ['x'] }, { onStdout: (b) => seen.push(`o:${b}`), onStderr: (b) => seen.push(`e:${b}`) });
      assert.deepEqual([r.exit_code, r.stdout, r.stderr], [3, 'out', 'err']);
      assert.deepEqual(seen, ['o:out', 'e:err']);
    }
    assert.equal(conns(), 1);
  });
});

test('an exec refused before it starts is its error status; a failure after output is the stream\'s error event', async () => {
  await withDaemon(async (api, conns) => {
    await assert.rejects(api.exec('nope', { command: ['x'] }), (e: Error & { status?: number }) => e instanceof SdkNotFound && e.status === 404);
    await assert.rejects(api.exec('ws-1', { command: ['slow-fail'] }), (e: Error & { code?: string; status?: number }) => e.code === 'GUEST_TIMEOUT' && e.status === 200);
    assert.equal((await api.exec('ws-1', { command: ['x'] })).exit_code, 3);
    assert.equal(conns(), 1);
  });
});

test('a file read comes back byte-exact with its declared length and mode', async () => {
  await withDaemon(async (api) => {
    const res = await api.readFileStream('ws-1', '/f');
    assert.equal(res.headers['content-length'], String(FILE.length));
    assert.equal(res.headers['x-islet-file-mode'], '0640');
    res.resume();
    await new Promise((r) => res.on('end', r));
    assert.ok((await api.readFile('ws-1', '/f')).equals(FILE));
  });
});

test('an exec stream ends with a Server-Timing trailer: the service call\'s own time inside the daemon', async () => {
  await withDaemon(async (api) => {
    const res = await api.http.send('POST', '/v1/workspaces/ws-1/exec', { json: { command: ['x'] } });
    for await (const _ of res) { /* to the end: trailers come after the last chunk */ }
    assert.match(String(res.trailers['server-timing']), /^svc;dur=\d+\.\d{3}$/);
  });
});
