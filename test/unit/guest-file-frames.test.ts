// A streamed file write against a fake agent on a unix socket: a source that
// yields small pieces goes out as whole DATA frames (each frame costs the
// emulated guest a channel hop and a write()), byte for byte, with the last
// frame carrying EOF.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { AgentClient } from '../../src/guest/client.js';
import { writeGuestFileStream } from '../../src/guest/files.js';
import { DATA_CHUNK, FLAG_EOF, encodeJson, FrameDecoder, FrameType, PROTOCOL_VERSION } from '../../src/guest/frame.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'islet-files-'));
/** DATA payload sizes the fake agent saw for the last FILE_WRITE, and a hash of their bytes. */
let sizes: number[] = [];
let hash = createHash('sha256');
const server = net.createServer((c) => {
  const dec = new FrameDecoder();
  c.on('data', (chunk: Buffer) => {
    for (const f of dec.push(chunk)) {
      if (f.type === FrameType.HELLO) c.write(encodeJson(FrameType.OK, f.requestId, { protocol: PROTOCOL_VERSION, agent: 'fake', caps: ['file.abort'] }));
      else if (f.type === FrameType.FILE_WRITE) { sizes = []; hash = createHash('sha256'); }
      else if (f.type === FrameType.DATA) {
        sizes.push(f.payload.length);
        hash.update(f.payload);
        if (f.flags & FLAG_EOF) c.write(encodeJson(FrameType.OK, f.requestId, { bytes: sizes.reduce((a, b) => a + b, 0) }));
      }
    }
  });
});
const sock = path.join(dir, 'agent.sock');
await new Promise<void>((r) => server.listen(sock, r));
after(() => { server.close(); rmSync(dir, { recursive: true, force: true }); });

function* pieces(n: number, size: number): Generator<Buffer> {
  for (let i = 0; i < n; i++) yield Buffer.alloc(size, i % 251);
}
const sha = (bufs: Iterable<Buffer>) => { const h = createHash('sha256'); for (const b of bufs) h.update(b); return h.digest('hex'); };

test('small pieces are gathered into whole DATA frames; the bytes arrive unchanged', async () => {
  const client = await AgentClient.connect(sock, { timeoutMs: 5_000 });
  try {
    const r = await writeGuestFileStream(client, '/f', pieces(300, 1000), { maxBytes: 1 << 20 });
    assert.equal(r.bytes, 300_000);
    assert.equal(hash.digest('hex'), sha(pieces(300, 1000)));
    const whole = Math.floor(300_000 / DATA_CHUNK);
    assert.deepEqual(sizes.slice(0, whole), Array(whole).fill(DATA_CHUNK));
    assert.deepEqual(sizes.slice(whole), [300_000 - whole * DATA_CHUNK], 'the rest goes with EOF in one frame');
  } finally {
    client.close();
  }
});

test('pieces of a whole frame or more pass straight through; a mix keeps its order', async () => {
  const client = await AgentClient.connect(sock, { timeoutMs: 5_000 });
  try {
    const src = [Buffer.alloc(DATA_CHUNK * 2, 1), Buffer.alloc(10, 2), Buffer.alloc(DATA_CHUNK, 3), Buffer.alloc(5, 4)];
    await writeGuestFileStream(client, '/f', src, { maxBytes: 1 << 20 });
    assert.equal(hash.digest('hex'), sha(src));
    assert.deepEqual(sizes, [DATA_CHUNK, DATA_CHUNK, DATA_CHUNK, 15]);
  } finally {
    client.close();
  }
});

test('large pieces at odd sizes (64 KiB socket reads at any offset) still make whole frames', async () => {
  const client = await AgentClient.connect(sock, { timeoutMs: 5_000 });
  try {
    const src = [Buffer.alloc(100_000, 1), Buffer.alloc(DATA_CHUNK - 7, 2), Buffer.alloc(DATA_CHUNK + 3, 3), Buffer.alloc(3 * DATA_CHUNK, 4)];
    const total = src.reduce((a, b) => a + b.length, 0);
    await writeGuestFileStream(client, '/f', src, { maxBytes: 1 << 20 });
    assert.equal(hash.digest('hex'), sha(src));
    const whole = Math.floor(total / DATA_CHUNK);
    assert.deepEqual(sizes, [...Array(whole).fill(DATA_CHUNK), total - whole * DATA_CHUNK]);
  } finally {
    client.close();
  }
});
