// baseOf reads a qcow2 backing chain from the headers (no qemu-img): the
// pre-root start uses it to tell a disk made from the current image build
// from one made from an earlier build.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { baseOf } from '../../src/service/preroot.js';

/** A qcow2 header that names `backing` (or none). */
function qcow2(backing?: string): Buffer {
  const b = Buffer.alloc(512);
  b.writeUInt32BE(0x514649fb, 0);
  b.writeUInt32BE(3, 4);
  if (backing) {
    b.writeBigUInt64BE(200n, 8);
    b.writeUInt32BE(Buffer.byteLength(backing), 16);
    b.write(backing, 200);
  }
  return b;
}

test('baseOf follows relative and absolute backing names down to the raw base', () => {
  const d = mkdtempSync(path.join(os.tmpdir(), 'islet-baseof-'));
  const base = path.join(d, 'img', 'rootfs.ext4');
  mkdirSync(path.dirname(base));
  writeFileSync(base, Buffer.alloc(4096)); // raw ext4: no qcow2 magic
  writeFileSync(path.join(d, 'snap.qcow2'), qcow2(base));
  writeFileSync(path.join(d, 'active.qcow2'), qcow2('snap.qcow2'));
  return Promise.all([
    baseOf(path.join(d, 'active.qcow2')).then((b) => assert.equal(b, base)),
    baseOf(path.join(d, 'snap.qcow2')).then((b) => assert.equal(b, base)),
  ]).then(async () => {
    writeFileSync(base.replace('img/rootfs.ext4', 'lone.qcow2'), qcow2());
    assert.equal(await baseOf(path.join(d, 'lone.qcow2')), undefined);
  });
});

test('baseOf gives up on a loop instead of spinning', async () => {
  const d = mkdtempSync(path.join(os.tmpdir(), 'islet-baseof-'));
  writeFileSync(path.join(d, 'a.qcow2'), qcow2('b.qcow2'));
  writeFileSync(path.join(d, 'b.qcow2'), qcow2('a.qcow2'));
  assert.equal(await baseOf(path.join(d, 'a.qcow2')), undefined);
});
