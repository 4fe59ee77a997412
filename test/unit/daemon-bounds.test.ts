// The daemon's HTTP listeners bound durations without capping streamed
// uploads: a body that stalls is cut, one that keeps flowing for longer than
// the idle bound is not, and a slow reply after the body is never cut.
import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
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
