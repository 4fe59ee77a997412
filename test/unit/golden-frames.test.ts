// The Go agent writes golden frames (agent/testdata/frames); the host must
// read every one of them exactly, and write the host-direction ones so the
// agent reads the same thing. This is the cross-language contract test.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { FrameDecoder, decodeJson, encodeFrame } from '../../src/guest/frame.js';

interface Golden {
  name: string;
  direction: 'host' | 'guest';
  file: string;
  type: number;
  flags: number;
  requestId: number;
  payload?: unknown;
  payloadHex?: string;
}

const dir = path.resolve('agent/testdata/frames');
const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Golden[];

test('the manifest covers both directions and the frame types the host uses', () => {
  assert.ok(manifest.length >= 10);
  const types = new Set(manifest.map((g) => g.type));
  for (const t of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 19, 20]) assert.ok(types.has(t), `no golden frame of type ${t}`);
});

for (const g of manifest) {
  test(`golden frame ${g.name}`, () => {
    const bytes = readFileSync(path.join(dir, g.file));
    const frames = new FrameDecoder().push(bytes);
    assert.equal(frames.length, 1);
    const f = frames[0]!;
    assert.equal(f.type, g.type);
    assert.equal(f.flags, g.flags);
    assert.equal(f.requestId, g.requestId);
    if (g.payloadHex !== undefined) {
      assert.equal(f.payload.toString('hex'), g.payloadHex);
      assert.deepEqual(encodeFrame({ type: g.type, flags: g.flags, requestId: g.requestId, payload: f.payload }), bytes);
    } else if (g.payload !== undefined && g.payload !== null) {
      assert.deepEqual(decodeJson(f), g.payload);
      // Same header and payload length; key order is Go's, so compare parsed JSON, not bytes.
      const mine = encodeFrame({ type: g.type, flags: g.flags, requestId: g.requestId, payload: Buffer.from(JSON.stringify(g.payload)) });
      assert.deepEqual(new FrameDecoder().push(mine).map((x) => decodeJson(x)), [g.payload]);
    } else {
      assert.equal(f.payload.length, 0);
    }
  });
}
