import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { newestKernelPackage } from '../../src/images/kernel.js';
import { GUEST_MODULES, moduleLoadOrder } from '../../src/images/modules.js';
import { extractVmlinux, findCompressedPayloads } from '../../src/images/vmlinux.js';
import { run, which } from '../../src/host/run.js';

// The dependencies of the Debian 6.1 cloud kernel's virtio modules, as their .modinfo says.
const DEBIAN_61: Record<string, string[]> = {
  virtio_ring: [], virtio: ['virtio_ring'], virtio_mmio: ['virtio', 'virtio_ring'], virtio_blk: ['virtio', 'virtio_ring'],
  virtio_console: ['virtio', 'virtio_ring'], failover: [], net_failover: ['failover'], virtio_net: ['net_failover', 'virtio', 'virtio_ring'],
};

test('module order puts dependencies first and keeps the requested order otherwise', () => {
  assert.deepEqual(moduleLoadOrder(GUEST_MODULES, (n) => DEBIAN_61[n]), [...GUEST_MODULES]);
  assert.deepEqual(moduleLoadOrder(['virtio_net', 'virtio_blk'], (n) => DEBIAN_61[n]),
    ['failover', 'net_failover', 'virtio_ring', 'virtio', 'virtio_net', 'virtio_blk']);
  // dashes and underscores name the same module
  assert.deepEqual(moduleLoadOrder(['net-failover'], (n) => DEBIAN_61[n]), ['failover', 'net_failover']);
});

test('module order reports unknown modules and cycles', () => {
  assert.throws(() => moduleLoadOrder(['virtio_net'], (n) => (n === 'failover' ? undefined : DEBIAN_61[n])),
    /failover \(needed by net_failover\) is not in the kernel package/);
  const cyclic: Record<string, string[]> = { a: ['b'], b: ['c'], c: ['a'] };
  assert.throws(() => moduleLoadOrder(['a'], (n) => cyclic[n]), /cycle: a → b → c → a/);
});

test('newest kernel package is chosen numerically, other flavours ignored', () => {
  const out = [
    'linux-image-6.1.0-9-cloud-amd64 - Linux 6.1 for x86-64 cloud (signed)',
    'linux-image-6.1.0-10-cloud-amd64 - Linux 6.1 for x86-64 cloud (signed)',
    'linux-image-6.1.0-11-cloud-amd64-unsigned - Linux 6.1 for x86-64 cloud',
    'linux-image-6.1.0-12-amd64 - Linux 6.1 for 64-bit PCs (signed)',
  ].join('\n');
  assert.equal(newestKernelPackage(out), 'linux-image-6.1.0-10-cloud-amd64');
  assert.equal(newestKernelPackage(''), undefined);
});

/** A fake "ELF kernel". */
const vmlinux = Buffer.concat([Buffer.from('\x7fELF', 'latin1'), randomBytes(5000), Buffer.alloc(20000, 7)]);

/** A bzImage-like wrapper: boot stub with a decoy gzip magic, the payload, then trailing bytes (the kernel appends its size). */
function wrap(compressed: Buffer): Buffer {
  const stub = Buffer.concat([Buffer.from('MZ boot stub'), randomBytes(300), Buffer.from([0x1f, 0x8b, 0x08]), randomBytes(64)]);
  return Buffer.concat([stub, compressed, Buffer.from([1, 2, 3, 4])]);
}

async function scratch(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'islet-vmlinux-test-'));
  t.after(() => rm(d, { recursive: true, force: true }));
  return d;
}

test('magic scan finds every candidate offset', () => {
  const buf = Buffer.concat([Buffer.from('xx'), Buffer.from([0x1f, 0x8b, 0x08]), Buffer.from('yy'),
    Buffer.from([0x02, 0x21, 0x4c, 0x18]), Buffer.from('BZh91AY&SY'), Buffer.from('BZh no block magic')]);
  assert.deepEqual(findCompressedPayloads(buf), [
    { kind: 'gzip', offset: 2 }, { kind: 'lz4', offset: 7 }, { kind: 'bzip2', offset: 11 },
  ]);
});

test('extracts a gzip payload past a decoy magic and ignores trailing bytes', async (t) => {
  const dir = await scratch(t);
  await writeFile(path.join(dir, 'vmlinuz'), wrap(zlib.gzipSync(vmlinux)));
  const r = await extractVmlinux(path.join(dir, 'vmlinuz'), path.join(dir, 'vmlinux'), dir);
  assert.equal(r.kind, 'gzip');
  assert.ok(r.offset > 300, 'the decoy magic in the stub was skipped');
  assert.deepEqual(await readFile(path.join(dir, 'vmlinux')), vmlinux);
});

test('fails clearly when no payload decompresses to an ELF', async (t) => {
  const dir = await scratch(t);
  await writeFile(path.join(dir, 'vmlinuz'), Buffer.concat([randomBytes(100), zlib.gzipSync(Buffer.from('not an elf'))]));
  await assert.rejects(extractVmlinux(path.join(dir, 'vmlinuz'), path.join(dir, 'vmlinux'), dir), /no compressed ELF kernel found/);
});

test('extracts an lz4 legacy payload with lz4(1)', async (t) => {
  if (!(await which('lz4'))) return t.skip('lz4 is not installed');
  const dir = await scratch(t);
  await writeFile(path.join(dir, 'plain'), vmlinux);
  await run(['lz4', '-l', '-q', '-f', path.join(dir, 'plain'), path.join(dir, 'plain.lz4')]);
  await writeFile(path.join(dir, 'vmlinuz'), wrap(await readFile(path.join(dir, 'plain.lz4'))));
  const r = await extractVmlinux(path.join(dir, 'vmlinuz'), path.join(dir, 'vmlinux'), dir);
  assert.equal(r.kind, 'lz4');
  assert.deepEqual(await readFile(path.join(dir, 'vmlinux')), vmlinux);
});
