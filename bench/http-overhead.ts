// No-VM figure for the daemon's HTTP path: the real REST app and SDK client
// over a unix socket in front of a fake service whose exec answers at once,
// so what is timed is what the daemon path adds per call. Its baseline is a
// bare node:http keep-alive round trip on the same kind of socket.
import { createServer, request, Agent } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { getRequestListener } from '@hono/node-server';
import { ApiClient } from '../src/sdk/api.js';
import { createRestApp, callerOf } from '../src/surfaces/rest/app.js';
import { bounded } from '../src/surfaces/daemon/daemon.js';
import type { WorkspaceService } from '../src/service/workspaces.js';
import { pct, timed } from './exec.js';
import type { Row } from './mcp.js';

const fake = {
  exec: async () => ({ exit_code: 0, signal: null, stdout: '', stderr: '', timed_out: false, truncated: false, duration_ms: 0 }),
} as unknown as WorkspaceService;

export async function benchHttpOverhead(n: number, record: (r: Row) => void): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'islet-httpb-'));
  const sock = path.join(dir, 'rest.sock');
  const bareSock = path.join(dir, 'bare.sock');
  const listener = getRequestListener(createRestApp(fake, { nodeInfo: async () => ({}), maxBodyBytes: 1 << 20 }).fetch);
  const server = bounded(createServer((req, res) => {
    callerOf.set(req, { owner: 'local' });
    void listener(req, res);
  }));
  const bare = createServer((req, res) => { req.resume(); req.on('end', () => res.end('{"exit_code":0}')); });
  await new Promise<void>((r) => server.listen(sock, r));
  await new Promise<void>((r) => bare.listen(bareSock, r));
  try {
    const agent = new Agent({ keepAlive: true });
    const bareCall = () => new Promise<void>((resolve, reject) => {
      const req = request({ socketPath: bareSock, path: '/', method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end('{"command":["true"]}');
    });
    const api = new ApiClient({ socketPath: sock });
    const rest = () => api.exec('ws-1', { command: ['true'] });
    // Taking turns in blocks, so host drift hits both alike.
    const xs: number[] = [];
    const base: number[] = [];
    for (let i = 0; i < 50; i++) { await bareCall(); await rest(); }
    for (let b = 0; b < 10; b++) {
      base.push(...await timed(n / 10, bareCall));
      xs.push(...await timed(n / 10, rest));
    }
    agent.destroy();
    const v = pct(xs, 50);
    const bv = pct(base, 50);
    record({ metric: 'REST exec round trip, no VM (p50)', value: v, unit: 'ms', baseline: bv, ratio: v / bv,
      note: 'fake service behind the real REST app and SDK; baseline: bare node:http keep-alive POST on a unix socket' });
  } finally {
    for (const s of [server, bare]) { s.closeAllConnections(); s.close(); }
    rmSync(dir, { recursive: true, force: true });
  }
}
