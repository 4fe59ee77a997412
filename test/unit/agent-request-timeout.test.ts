// [vm] request_timeout_ms: a guest agent that completes the handshake but
// never answers a request makes the request fail with GUEST_TIMEOUT naming
// the setting, instead of hanging its caller. A fake agent on a unix socket
// plays the guest.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { AgentClient } from '../../src/guest/client.js';
import { encodeJson, FrameDecoder, FrameType, PROTOCOL_VERSION } from '../../src/guest/frame.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'islet-reqto-'));
const sock = path.join(dir, 'agent.sock');
// Answers HELLO and HEALTH only when `answerHealth` says so.
let answerHealth = false;
const server = net.createServer((c) => {
  const dec = new FrameDecoder();
  c.on('data', (chunk: Buffer) => {
    for (const f of dec.push(chunk)) {
      if (f.type === FrameType.HELLO) c.write(encodeJson(FrameType.OK, f.requestId, { protocol: PROTOCOL_VERSION, agent: 'fake', caps: [] }));
      else if (f.type === FrameType.HEALTH && answerHealth) c.write(encodeJson(FrameType.OK, f.requestId, { ok: true }));
    }
  });
});
await new Promise<void>((r) => server.listen(sock, r));
after(() => { server.close(); rmSync(dir, { recursive: true, force: true }); });

test('a request the agent never answers fails with GUEST_TIMEOUT after request_timeout_ms', async () => {
  const client = await AgentClient.connect(sock, { timeoutMs: 5_000, requestTimeoutMs: 300 });
  const t0 = performance.now();
  await assert.rejects(client.request(FrameType.HEALTH, {}), (e: { code?: string; hint?: string }) => {
    assert.equal(e.code, 'GUEST_TIMEOUT');
    assert.match(e.hint ?? '', /\[vm\] request_timeout_ms/);
    return true;
  });
  assert.ok(performance.now() - t0 >= 250, 'not before the deadline');
  // The link stays usable: a later request that is answered succeeds.
  answerHealth = true;
  assert.deepEqual(await client.request(FrameType.HEALTH, {}), { ok: true });
  client.close();
});

test('without request_timeout_ms an unanswered request waits until the link closes', async () => {
  answerHealth = false;
  const client = await AgentClient.connect(sock, { timeoutMs: 5_000 });
  const p = client.request(FrameType.HEALTH, {});
  await new Promise((r) => setTimeout(r, 400));
  answerHealth = true;
  // The first is still pending, not timed out: the fake ignored it; a later request is answered.
  const q = client.request(FrameType.HEALTH, {});
  assert.deepEqual(await q, { ok: true });
  client.close();
  await assert.rejects(p, (e: { code?: string }) => e.code === 'GUEST_DISCONNECTED');
});
