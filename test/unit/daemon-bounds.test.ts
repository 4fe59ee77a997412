// The daemon's HTTP listeners bound durations without capping streamed
// uploads: a body that stalls is cut, one that keeps flowing for longer than
// the idle bound is not, and a slow reply after the body is never cut.
import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { FileTooLargeError } from '../../src/sdk/errors.js';
import { Transport } from '../../src/sdk/transport.js';
import { bounded } from '../../src/surfaces/daemon/daemon.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a stalled body is cut; a flowing one and a slow reply are not', async () => {
  const server = bounded(createServer(async (req, res) => {
    let n = 0;
    try {
      for await (const c of req) n += (c as Buffer).length;
    } catch {
      return; // cut
    }
    await sleep(600); // a long operation after the body, e.g. an exec
    res.end(String(n));
  }), 300);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const post = (write: (req: ReturnType<typeof request>) => Promise<void>) => new Promise<string>((resolve) => {
    const req = request({ host: '127.0.0.1', port, method: 'PUT', path: '/', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c; });
      res.on('end', () => resolve(`ok ${body}`));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code ?? e.message}`));
    void write(req);
  });
  try {
    // Flowing for 5 × 150 ms = 750 ms, longer than the 300 ms idle bound.
    const flowing = await post(async (req) => {
      for (let i = 0; i < 5; i++) { req.write(Buffer.alloc(1000)); await sleep(150); }
      req.end();
    });
    assert.equal(flowing, 'ok 5000');
    const stalled = await post(async (req) => { req.write(Buffer.alloc(1000)); await sleep(2000); req.end(); });
    assert.match(stalled, /^error (ECONNRESET|socket hang up)/);
  } finally {
    server.close();
  }
});

test('a large body asks first: one over the bound is refused before a byte is sent, others flow', async () => {
  const max = 4 << 20;
  let bodies = 0;
  const server = bounded(createServer(async (req, res) => {
    bodies++;
    let n = 0;
    for await (const c of req) n += (c as Buffer).length;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ n }));
  }), 1000, max);
  let received = 0;
  server.on('connection', (s) => s.on('data', (d: Buffer) => { received += d.length; }));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const t = new Transport({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
  try {
    received = 0;
    await assert.rejects(t.json('PUT', '/f', { body: Buffer.alloc(max + 1) }), FileTooLargeError);
    assert.equal(bodies, 0, 'the handler never ran');
    assert.ok(received < 64 << 10, `only headers reached the server (${received} bytes)`);
    assert.deepEqual(await t.json('PUT', '/f', { body: Buffer.alloc(max) }), { n: max });
    async function* chunks() { for (let i = 0; i < 8; i++) yield Buffer.alloc(1 << 20); }
    assert.deepEqual(await t.json('PUT', '/f', { body: chunks() }), { n: 8 << 20 }, 'a stream has no declared size and flows');
    assert.deepEqual(await t.json('PUT', '/f', { body: Buffer.from('small') }), { n: 5 });
  } finally {
    server.close();
  }
});
