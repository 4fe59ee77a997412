// A streamed file read against a fake agent on a unix socket: window after
// window, each window's frames handed on as they arrive (a relay never waits
// for a whole window), at most two windows held for a slow reader, and a file
// that shrinks midway ends the stream with an error.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { AgentClient } from '../../src/guest/client.js';
import { readGuestFileStream } from '../../src/guest/files.js';
import { DATA_CHUNK, FrameDecoder, FrameType, PROTOCOL_VERSION, Stream, decodeJson, encodeFrame, encodeJson } from '../../src/guest/frame.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'islet-fread-'));
let file = Buffer.alloc(0);
/** Windows asked for, in order. */
let asked: { offset: number; length: number }[] = [];
/** When set, the OK that ends window `holdAt` (its index in `asked`) waits for this promise. */
let hold: { at: number; until: Promise<void> } | undefined;
/** Runs once a window's frames are out (before its OK): lets a test change the file between windows. */
let afterWindow: ((i: number) => void) | undefined;

const server = net.createServer((c) => {
  const dec = new FrameDecoder();
  c.on('data', (chunk: Buffer) => {
    for (const f of dec.push(chunk)) {
      if (f.type === FrameType.HELLO) c.write(encodeJson(FrameType.OK, f.requestId, { protocol: PROTOCOL_VERSION, agent: 'fake', caps: ['file.range'] }));
      if (f.type !== FrameType.FILE_READ) continue;
      const req = decodeJson(f) as { offset: number; length: number };
      const i = asked.push({ offset: req.offset, length: req.length }) - 1;
      const part = file.subarray(req.offset, req.offset + req.length);
      for (let off = 0; off < part.length; off += DATA_CHUNK) {
        c.write(encodeFrame({ type: FrameType.DATA, flags: Stream.STDOUT, requestId: f.requestId, payload: part.subarray(off, off + DATA_CHUNK) }));
      }
      afterWindow?.(i);
      const ok = () => c.write(encodeJson(FrameType.OK, f.requestId, { fileSize: file.length, mode: 0o640 }));
      if (hold?.at === i) void hold.until.then(ok);
      else ok();
    }
  });
});
const sock = path.join(dir, 'agent.sock');
await new Promise<void>((r) => server.listen(sock, r));
after(() => { server.close(); rmSync(dir, { recursive: true, force: true }); });

const pattern = (n: number) => { const b = Buffer.allocUnsafe(n); for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 12)) & 0xff; return b; };
const reset = (n: number) => { file = pattern(n); asked = []; hold = undefined; afterWindow = undefined; };
const WINDOW = 256 << 10;

test('windows go out in order and the bytes come back whole, the mode with them', async () => {
  reset(3 * WINDOW + 12345);
  const client = await AgentClient.connect(sock, { timeoutMs: 5_000 });
  try {
    const f = await readGuestFileStream(client, '/f', { maxBytes: 1 << 30, window: WINDOW });
    assert.equal(f.size, file.length);
    assert.equal(f.mode, 0o640);
    const got: Buffer[] = [];
    for await (const c of f.chunks) got.push(c);
    assert.ok(Buffer.concat(got).equals(file), 'byte-exact');
    assert.deepEqual(asked.map((a) => a.offset), [0, WINDOW, 2 * WINDOW, 3 * WINDOW]);
    assert.equal(asked.at(-1)!.length, 12345, 'the last window asks for what is left');
  } finally {
    client.close();
  }
});

test('a window\'s first frames reach the reader before that window is over', async () => {
  reset(2 * WINDOW);
  let release!: () => void;
  hold = { at: 1, until: new Promise<void>((r) => { release = r; }) };
  const client = await AgentClient.connect(sock, { timeoutMs: 5_000 });
  try {
    const f = await readGuestFileStream(client, '/f', { maxBytes: 1 << 30, window: WINDOW });
    const it = f.chunks[Symbol.asyncIterator]();
    assert.equal((await it.next()).value.length, WINDOW, 'the first window, read before returning');
    const second = await it.next(); // window 1's OK is held: only its frames can answer this
    assert.ok(second.value.equals(file.subarray(WINDOW, WINDOW + DATA_CHUNK)));
    release();
    let rest = 0;
    for (let n = await it.next(); !n.done; n = await it.next()) rest += n.value.length;
    assert.equal(rest, WINDOW - DATA_CHUNK);
  } finally {
    release();
    client.close();
  }
});

test('a reader that takes nothing holds at most two windows: no third is asked for until it reads', async () => {
  reset(8 * WINDOW);
  const client = await AgentClient.connect(sock, { timeoutMs: 5_000 });
  try {
    const f = await readGuestFileStream(client, '/f', { maxBytes: 1 << 30, window: WINDOW });
    const it = f.chunks[Symbol.asyncIterator]();
    await it.next(); // the first window: the stream starts
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(asked.length, 3, `the first window, then two more held for the reader: ${JSON.stringify(asked)}`);
    let total = WINDOW;
    for (let n = await it.next(); !n.done; n = await it.next()) total += n.value.length;
    assert.equal(total, file.length);
    assert.equal(asked.length, 8);
  } finally {
    client.close();
  }
});

test('a file that shrinks while read ends the stream with GUEST_ERROR, never short without a word', async () => {
  reset(4 * WINDOW);
  afterWindow = (i) => { if (i === 1) file = file.subarray(0, 2 * WINDOW + 100); };
  const client = await AgentClient.connect(sock, { timeoutMs: 5_000 });
  try {
    const f = await readGuestFileStream(client, '/f', { maxBytes: 1 << 30, window: WINDOW });
    await assert.rejects(async () => { for await (const _ of f.chunks); }, (e: Error & { code?: string }) => e.code === 'GUEST_ERROR' && /changed size/.test(e.message));
  } finally {
    client.close();
  }
});

test('a file over maxBytes is refused before any byte', async () => {
  reset(3 * WINDOW);
  const client = await AgentClient.connect(sock, { timeoutMs: 5_000 });
  try {
    await assert.rejects(readGuestFileStream(client, '/f', { maxBytes: 2 * WINDOW, window: WINDOW }), (e: Error & { code?: string }) => e.code === 'FILE_TOO_LARGE');
    assert.equal(asked.length, 1);
  } finally {
    client.close();
  }
});
