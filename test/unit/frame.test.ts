import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { IsletError } from '../../src/core/errors.js';
import {
  FLAG_EOF, FrameDecoder, FrameType, HEADER_BYTES, MAGIC, MAX_PAYLOAD, Stream, decodeHeader, decodeJson, encodeFrame, encodeJson,
} from '../../src/guest/frame.js';

const violation = (e: unknown) => e instanceof IsletError && e.code === 'GUEST_PROTOCOL_VIOLATION';

test('encode/decode round trip, byte by byte', () => {
  const frames = [
    encodeJson(FrameType.EXEC, 7, { argv: ['echo', 'hi'] }),
    encodeFrame({ type: FrameType.DATA, flags: Stream.STDOUT | FLAG_EOF, requestId: 7, payload: randomBytes(3000) }),
    encodeFrame({ type: FrameType.DATA, flags: Stream.STDERR, requestId: 0xffffffff }),
  ];
  const all = Buffer.concat(frames);
  const d = new FrameDecoder();
  const got = [];
  for (let i = 0; i < all.length; i++) got.push(...d.push(all.subarray(i, i + 1)));
  assert.equal(got.length, 3);
  assert.deepEqual(decodeJson(got[0]!), { argv: ['echo', 'hi'] });
  assert.equal(got[1]!.flags, Stream.STDOUT | FLAG_EOF);
  assert.deepEqual(got[1]!.payload, frames[1]!.subarray(HEADER_BYTES));
  assert.equal(got[2]!.requestId, 0xffffffff);
  assert.equal(got[2]!.payload.length, 0);
  assert.equal(d.pending, 0);
});

test('truncated input yields nothing until the rest arrives', () => {
  const f = encodeJson(FrameType.OK, 1, { a: 1 });
  const d = new FrameDecoder();
  assert.deepEqual(d.push(f.subarray(0, 10)), []);
  assert.deepEqual(d.push(f.subarray(10, f.length - 1)), []);
  assert.equal(d.push(f.subarray(f.length - 1)).length, 1);
});

test('oversize length is rejected from the header alone', () => {
  const h = Buffer.alloc(HEADER_BYTES);
  h.writeUInt32BE(MAGIC, 0); h.writeUInt8(1, 4); h.writeUInt8(FrameType.DATA, 5);
  h.writeUInt32BE(MAX_PAYLOAD + 1, 12);
  assert.throws(() => new FrameDecoder().push(h), violation);
  assert.throws(() => encodeFrame({ type: FrameType.DATA, requestId: 1, payload: Buffer.alloc(MAX_PAYLOAD + 1) }), RangeError);
});

test('bad magic, bad version and garbage are violations', () => {
  const f = encodeJson(FrameType.OK, 1, {});
  const badMagic = Buffer.from(f); badMagic.writeUInt32BE(0xdeadbeef, 0);
  const badVersion = Buffer.from(f); badVersion.writeUInt8(9, 4);
  assert.throws(() => decodeHeader(badMagic), violation);
  assert.throws(() => decodeHeader(badVersion), violation);
  assert.throws(() => decodeHeader(Buffer.alloc(3)), violation);
  for (let i = 0; i < 200; i++) {
    const g = randomBytes(64);
    if (g.readUInt32BE(0) === MAGIC) continue;
    assert.throws(() => new FrameDecoder().push(g), violation);
  }
});

test('JSON payloads must be objects', () => {
  const mk = (s: string) => ({ type: FrameType.OK, flags: 0, requestId: 1, payload: Buffer.from(s) });
  assert.throws(() => decodeJson(mk('not json')), violation);
  assert.throws(() => decodeJson(mk('[1,2]')), violation);
  assert.throws(() => decodeJson(mk('null')), violation);
  assert.deepEqual(decodeJson(mk('{"x":1}')), { x: 1 });
});
