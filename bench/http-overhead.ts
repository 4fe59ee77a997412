// No-VM microbench of the daemon's HTTP path: the real REST app and SDK
// transport over a unix socket, in front of a fake service whose exec answers
// at once and whose file streams just count bytes. What it prints is the cost
// the daemon path adds per call, with a bare node:http keep-alive round trip
// on the same kind of socket as the floor.
import { createServer, request, Agent } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { getRequestListener } from '@hono/node-server';
import { ApiClient } from '../src/sdk/api.js';
import { createRestApp, callerOf } from '../src/surfaces/rest/app.js';
import { bounded } from '../src/surfaces/daemon/daemon.js';
import type { WorkspaceService } from '../src/service/workspaces.js';

const N = Number(process.env.N ?? 2000);
const EXEC_MS = Number(process.env.EXEC_MS ?? 0);
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

const info = { workspace_id: 'ws-1', name: 'w', state: 'running' };
const fake = {
  info: async () => info,
  exec: async (_c: unknown, _i: unknown, o: { onData?: (s: string, b: Buffer) => void }) => {
    if (EXEC_MS > 0) await new Promise((r) => setTimeout(r, EXEC_MS));
    return { exit_code: 0, signal: null, stdout: 'hi\n', stderr: '', timed_out: false, truncated: false, duration_ms: 1 };
  },
  writeStream: async (_c: unknown, i: { path: string }, src: AsyncIterable<Uint8Array>) => {
    let n = 0;
    for await (const c of src) n += c.length;
    return { path: i.path, bytes: n };
  },
  readStream: async () => {
    const size = 64 << 20;
    const win = Buffer.alloc(8 << 20);
    return { size, mode: 0o644, chunks: (async function* () { for (let o = 0; o < size; o += win.length) yield win; })() };
  },
} as unknown as WorkspaceService;

async function main() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'islet-httpb-'));
  const sock = path.join(dir, 's');
  const app = createRestApp(fake, { nodeInfo: async () => ({}), maxBodyBytes: 2 ** 40 });
  const listener = getRequestListener(app.fetch);
  const server = bounded(createServer((req, res) => {
    callerOf.set(req, { owner: 'local' });
    void Promise.resolve(listener(req, res));
  }), 60_000, 2 ** 40);
  const bare = createServer((req, res) => { req.resume(); req.on('end', () => res.end('{"ok":true}')); });
  const bareSock = path.join(dir, 'b');
  let conns = 0;
  server.on('connection', () => conns++);
  await new Promise<void>((r) => server.listen(sock, r));
  await new Promise<void>((r) => bare.listen(bareSock, r));
  try {
    const agent = new Agent({ keepAlive: true });
    const bareCall = () => new Promise<void>((resolve, reject) => {
      const req = request({ socketPath: bareSock, path: '/', method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => { res.resume(); res.on('end', resolve); });
      req.on('error', reject);
      req.end('{"command":["true"]}');
    });
    const api = new ApiClient({ socketPath: sock });
    const run = async (name: string, f: () => Promise<unknown>) => {
      for (let i = 0; i < 200; i++) await f();
      const xs: number[] = [];
      for (let i = 0; i < N; i++) { const t = performance.now(); await f(); xs.push(performance.now() - t); }
      console.log(`${name.padEnd(34)} conns ${conns} p50 ${pct(xs, 50).toFixed(3)} ms  p90 ${pct(xs, 90).toFixed(3)} ms`);
    };
    await run('bare node:http keep-alive POST', bareCall);
    await run('SDK GET /v1/workspaces/{id}', () => api.info('ws-1'));
    await run('in-process exec (fake service)', () => fake.exec({ owner: 'local' }, { workspace_id: 'ws-1', command: ['true'] }));
    await run('SDK exec (fake service)', () => api.exec('ws-1', { command: ['true'] }));
    const big = Buffer.alloc(64 << 20);
    for (let i = 0; i < 3; i++) {
      let t = performance.now();
      await api.writeFile('ws-1', '/x', big);
      const w = performance.now() - t;
      t = performance.now();
      const b = await api.readFile('ws-1', '/x');
      const r = performance.now() - t;
      console.log(`64 MiB: write ${(64 / (w / 1000)).toFixed(0)} MiB/s, read ${(64 / (r / 1000)).toFixed(0)} MiB/s (${b.length})`);
    }
  } finally {
    server.close(); server.closeAllConnections(); bare.close(); bare.closeAllConnections();
    rmSync(dir, { recursive: true, force: true });
  }
}
await main();
