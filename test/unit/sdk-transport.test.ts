// The SDK keeps connections to the daemon alive, and a request that meets a
// kept-alive socket the daemon has just dropped is sent once more on a fresh
// connection rather than failing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Transport } from '../../src/sdk/transport.js';

async function withServer(onRequest: (sock: Socket, n: number) => boolean, fn: (socketPath: string, conns: () => number) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'islet-sdk-t-'));
  const socketPath = path.join(dir, 'd.sock');
  let conns = 0;
  const perSocket = new WeakMap<Socket, number>();
  const server: Server = createServer((req, res) => {
    const n = (perSocket.get(req.socket) ?? 0) + 1;
    perSocket.set(req.socket, n);
    // false: drop the connection without an answer, as a daemon closing an idle socket does when a request races it.
    if (!onRequest(req.socket, n)) { req.socket.destroy(); return; }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ n }));
  });
  server.on('connection', () => { conns++; });
  await new Promise<void>((r) => server.listen(socketPath, r));
  try {
    await fn(socketPath, () => conns);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
}

test('requests reuse one kept-alive connection', async () => {
  await withServer(() => true, async (socketPath, conns) => {
    const t = new Transport({ socketPath });
    for (let i = 0; i < 5; i++) assert.deepEqual(await t.json('GET', '/x'), { n: i + 1 });
    assert.equal(conns(), 1);
  });
});

test('a reused socket reset under a request: the request is sent again on a fresh connection', async () => {
  await withServer((_s, n) => n === 1, async (socketPath, conns) => {
    const t = new Transport({ socketPath });
    assert.deepEqual(await t.json('GET', '/x'), { n: 1 });
    assert.deepEqual(await t.json('POST', '/x', { json: { a: 1 } }), { n: 1 }); // the second on the first socket was dropped
    assert.equal(conns(), 2);
  });
});

test('a fresh connection that is reset is not retried: the caller sees DAEMON_UNAVAILABLE', async () => {
  let seen = 0;
  await withServer(() => { seen++; return false; }, async (socketPath) => {
    const t = new Transport({ socketPath });
    await assert.rejects(t.json('GET', '/x'), (e: Error & { code?: string }) => e.code === 'DAEMON_UNAVAILABLE');
    assert.equal(seen, 1);
  });
});

test('a large body: an early answer (413) followed by a reset of the socket is the answer, and the request is sent once', async () => {
  let requests = 0;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'islet-sdk-t-'));
  const socketPath = path.join(dir, 'd.sock');
  const server = createServer((req, res) => {
    requests++;
    if (req.method === 'GET') { res.end('{}'); return; }
    // As the daemon does with a body over the limit: answer 413 at once, then drop the connection mid-body.
    res.writeHead(413, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ code: 'FILE_TOO_LARGE', message: 'too large' }), () => req.socket.destroy());
  });
  await new Promise<void>((r) => server.listen(socketPath, r));
  try {
    const t = new Transport({ socketPath });
    await t.json('GET', '/x');
    await assert.rejects(t.json('PUT', '/x', { body: Buffer.alloc(32 << 20) }), (e: Error & { code?: string }) => e.code === 'FILE_TOO_LARGE');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(requests, 2);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
});
