import { test } from 'node:test';
import assert from 'node:assert/strict';
import { entryType, readCpio, writeCpio } from '../../src/images/cpio.js';
import { initramfsEntries, MODULES_DIR, STAGE1_MARKER } from '../../src/images/initramfs.js';
import { run, which } from '../../src/host/run.js';

const agent = Buffer.from('\x7fELF fake agent, 29 bytes....');
const modules = [
  { name: 'virtio_ring', data: Buffer.from('ring') },
  { name: 'virtio', data: Buffer.from('virtio!') },
];

test('newc header layout: magic, 13 hex fields, 4-byte alignment, trailer', () => {
  const buf = writeCpio([{ type: 'file', path: '/init', mode: 0o755, data: Buffer.from('abc') }]);
  assert.equal(buf.toString('latin1', 0, 6), '070701');
  assert.match(buf.toString('latin1', 6, 110), /^[0-9a-f]{104}$/);
  // name "init\0" is 5 bytes: 110 + 5 = 115, padded to 116; data 3 bytes padded to 4
  assert.equal(buf.toString('latin1', 110, 115), 'init\0');
  assert.equal(buf.toString('latin1', 116, 119), 'abc');
  assert.equal(buf.toString('latin1', 120, 126), '070701');
  assert.ok(buf.includes('TRAILER!!!\0'));
  assert.equal(buf.length % 4, 0);
});

test('round trip of the initramfs layout', () => {
  const parsed = readCpio(writeCpio(initramfsEntries(agent, modules)));
  const byPath = new Map(parsed.map((e) => [e.path, e]));
  for (const d of ['dev', 'proc', 'sys', 'newroot', 'lib', 'lib/modules', MODULES_DIR]) {
    assert.equal(entryType(byPath.get(d)?.mode ?? 0), 'dir', d);
  }
  const init = byPath.get('init');
  assert.ok(init);
  assert.equal(init.mode, 0o100755);
  assert.deepEqual(init.data, agent);
  const con = byPath.get('dev/console');
  assert.ok(con);
  assert.equal(con.mode, 0o020600);
  assert.deepEqual([con.rdevMajor, con.rdevMinor], [5, 1]);
  assert.equal(byPath.get(STAGE1_MARKER)?.data.length, 0);
  assert.equal(byPath.get(`${MODULES_DIR}/order`)?.data.toString().trim().split(/\s+/).join(' '), 'virtio_ring virtio');
  assert.deepEqual(byPath.get(`${MODULES_DIR}/virtio.ko`)?.data, Buffer.from('virtio!'));
  for (const e of parsed) {
    assert.deepEqual([e.uid, e.gid, e.mtime], [0, 0, 0], e.path);
  }
  assert.equal(new Set(parsed.map((e) => e.ino)).size, parsed.length, 'inode numbers are unique');
  // every entry's directory comes before it
  const seen = new Set<string>();
  for (const e of parsed) {
    const parent = e.path.includes('/') ? e.path.slice(0, e.path.lastIndexOf('/')) : '';
    assert.ok(!parent || seen.has(parent), `${e.path} before ${parent}`);
    seen.add(e.path);
  }
});

test('writer output is deterministic', () => {
  assert.deepEqual(writeCpio(initramfsEntries(agent, modules)), writeCpio(initramfsEntries(agent, modules)));
});

test('writer rejects bad paths, duplicates and children before parents', () => {
  assert.throws(() => writeCpio([{ type: 'dir', path: 'a/../b' }]), /bad path/);
  assert.throws(() => writeCpio([{ type: 'dir', path: 'a' }, { type: 'dir', path: '/a/' }]), /duplicate/);
  assert.throws(() => writeCpio([{ type: 'file', path: 'x/y', data: Buffer.alloc(0) }]), /before its directory/);
});

test('reader rejects garbage and truncation', () => {
  const good = writeCpio([{ type: 'file', path: 'f', data: Buffer.from('hello') }]);
  assert.throws(() => readCpio(Buffer.from('not a cpio archive at all, no sir, not at all.....................................................................')), /bad magic/);
  assert.throws(() => readCpio(good.subarray(0, 50)), /truncated/);
});

test('cpio(1) lists what we wrote', async (t) => {
  if (!(await which('cpio'))) return t.skip('cpio is not installed');
  const r = await run(['cpio', '-it', '--quiet'], { input: writeCpio(initramfsEntries(agent, modules)) });
  assert.deepEqual(r.stdout.trim().split('\n'), [
    'dev', 'dev/console', 'proc', 'sys', 'newroot', 'lib', 'lib/modules', MODULES_DIR,
    `${MODULES_DIR}/virtio_ring.ko`, `${MODULES_DIR}/virtio.ko`, `${MODULES_DIR}/order`, STAGE1_MARKER, 'init',
  ]);
  const v = await run(['cpio', '-itv', '--quiet'], { input: writeCpio(initramfsEntries(agent, modules)) });
  assert.match(v.stdout, /^crw------- .* 5,\s+1 .* dev\/console$/m);
});
