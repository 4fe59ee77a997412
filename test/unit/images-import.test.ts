// `islet image import`: what is refused, and with which code. Nothing here
// boots; the one accepted import uses tiny synthetic files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { resolveConfig } from '../../src/core/config.js';
import { IsletError } from '../../src/core/errors.js';
import {
  assertExt4, assertVmlinux, EXT4_MAGIC_OFFSET, importImage, resolveImportSource,
} from '../../src/images/import.js';
import { listImages } from '../../src/images/catalog.js';

async function scratch(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'islet-import-'));
  t.after(() => rm(d, { recursive: true, force: true }));
  return d;
}

/** 4 KiB with the ext4 superblock magic where the kernel looks for it. */
function fakeExt4(): Buffer {
  const b = Buffer.alloc(4096);
  b.writeUInt16LE(0xef53, EXT4_MAGIC_OFFSET);
  return b;
}

/** A minimal ELF64 x86-64 executable header (enough for the checks, not to boot). */
function fakeVmlinux(machine = 62, type = 2): Buffer {
  const b = Buffer.alloc(256);
  b.writeUInt32BE(0x7f454c46, 0);
  b[4] = 2; // ELFCLASS64
  b[5] = 1; // little-endian
  b[6] = 1;
  b.writeUInt16LE(type, 16);
  b.writeUInt16LE(machine, 18);
  return b;
}

const code = (c: string, re?: RegExp) => (e: unknown) => {
  assert.ok(e instanceof IsletError, String(e));
  assert.equal(e.code, c, e.message);
  if (re) assert.match(e.message, re);
  return true;
};

test('a rootfs without the ext4 superblock magic is refused as INVALID_ARGUMENT', async (t) => {
  const d = await scratch(t);
  const f = path.join(d, 'x.img');
  await writeFile(f, Buffer.alloc(4096));
  await assert.rejects(assertExt4(f), code('INVALID_ARGUMENT', /not an ext4 filesystem/));
  await writeFile(f, Buffer.from('tiny'));
  await assert.rejects(assertExt4(f), code('INVALID_ARGUMENT'));
  const qcow = Buffer.alloc(4096);
  qcow.write('QFI\xfb', 0, 'latin1');
  await writeFile(f, qcow);
  await assert.rejects(assertExt4(f), code('INVALID_ARGUMENT', /qcow2/));
  const mbr = Buffer.alloc(4096);
  mbr.writeUInt16LE(0xaa55, 510);
  await writeFile(f, mbr);
  await assert.rejects(assertExt4(f), code('INVALID_ARGUMENT', /partitioned disk/));
  await writeFile(f, fakeExt4());
  await assertExt4(f);
});

test('a kernel that is not an uncompressed x86-64 ELF vmlinux is refused', async (t) => {
  const d = await scratch(t);
  const f = path.join(d, 'k');
  const bz = Buffer.alloc(1024);
  bz.write('HdrS', 0x202, 'latin1');
  await writeFile(f, bz);
  await assert.rejects(assertVmlinux(f), code('INVALID_ARGUMENT', /compressed bzImage/));
  await writeFile(f, Buffer.from('#!/bin/sh\n'));
  await assert.rejects(assertVmlinux(f), code('INVALID_ARGUMENT', /not an ELF/));
  await writeFile(f, fakeVmlinux(183));
  await assert.rejects(assertVmlinux(f), code('INVALID_ARGUMENT', /not x86-64/));
  await writeFile(f, fakeVmlinux(62, 1));
  await assert.rejects(assertVmlinux(f), code('INVALID_ARGUMENT', /not an executable/));
  await writeFile(f, fakeVmlinux());
  await assertVmlinux(f);
});

test('missing files are FILE_NOT_FOUND; paths and symlinks leaving the allowed roots are PATH_OUTSIDE_ALLOWED', async (t) => {
  const d = await scratch(t);
  const allowed = path.join(d, 'home');
  await mkdir(allowed);
  const inside = path.join(allowed, 'rootfs.ext4');
  await writeFile(inside, fakeExt4());
  const outside = path.join(d, 'elsewhere.ext4');
  await writeFile(outside, fakeExt4());
  assert.equal(await resolveImportSource('rootfs', inside, [allowed]), inside);
  await assert.rejects(resolveImportSource('kernel', path.join(allowed, 'nope'), [allowed]), code('FILE_NOT_FOUND', /does not exist/));
  await assert.rejects(resolveImportSource('rootfs', outside, [allowed]), code('PATH_OUTSIDE_ALLOWED', /outside the directories/));
  await assert.rejects(resolveImportSource('rootfs', `${allowed}/../elsewhere.ext4`, [allowed]), code('PATH_OUTSIDE_ALLOWED'));
  // A link inside that points outside is judged by its target.
  await symlink(outside, path.join(allowed, 'link.ext4'));
  await assert.rejects(resolveImportSource('rootfs', path.join(allowed, 'link.ext4'), [allowed]), code('PATH_OUTSIDE_ALLOWED', /→/));
  // A sibling whose name only starts like the root is not inside it.
  await mkdir(`${allowed}2`);
  await writeFile(`${allowed}2/r.ext4`, fakeExt4());
  await assert.rejects(resolveImportSource('rootfs', `${allowed}2/r.ext4`, [allowed]), code('PATH_OUTSIDE_ALLOWED'));
  await assert.rejects(resolveImportSource('rootfs', allowed, [allowed]), code('INVALID_ARGUMENT', /not a regular file/));
  await assert.rejects(resolveImportSource('rootfs', '/etc/hostname', [allowed]), code('PATH_OUTSIDE_ALLOWED'));
});

test('importImage validates, then registers a read-only copy that image list shows', async (t) => {
  const d = await scratch(t);
  const config = resolveConfig({ storage: { data_dir: d } });
  const kernel = path.join(d, 'vmlinux');
  const rootfs = path.join(d, 'root.ext4');
  await writeFile(kernel, fakeVmlinux());
  await writeFile(rootfs, fakeExt4());
  await assert.rejects(importImage(config, { name: 'Bad Name', kernel, rootfs }), code('INVALID_ARGUMENT', /invalid image name/));
  await assert.rejects(importImage(config, { name: 'base', kernel, rootfs }), code('INVALID_ARGUMENT', /image of the catalog/));
  await assert.rejects(importImage(config, { name: 'mine', kernel: path.join(d, 'missing'), rootfs }), code('FILE_NOT_FOUND'));
  await assert.rejects(importImage(config, { name: 'mine', kernel: rootfs, rootfs }), code('INVALID_ARGUMENT', /kernel/));
  await assert.rejects(importImage(config, { name: 'mine', kernel, rootfs: kernel }), code('INVALID_ARGUMENT', /not an ext4/));
  await assert.rejects(importImage(config, { name: 'mine', kernel: '/etc/hostname', rootfs }), code('PATH_OUTSIDE_ALLOWED'));

  const r = await importImage(config, { name: 'mine', kernel, rootfs });
  assert.equal(r.reused, false);
  assert.deepEqual(await readFile(r.rootfs), fakeExt4());
  assert.equal((await stat(r.rootfs)).mode & 0o777, 0o444);
  assert.deepEqual(await readFile(r.kernel), fakeVmlinux());
  assert.ok(r.warnings.some((w) => /KERNEL_NOT_PVH/.test(w)), 'a kernel without the PVH note falls back to islet\'s, with a warning');
  assert.equal(r.kernelUse, 'islet');
  assert.equal((await importImage(config, { name: 'mine', kernel, rootfs })).reused, true, 'same files, same key');
  const row = (await listImages(config)).find((x) => x.name === 'mine');
  assert.ok(row?.built, JSON.stringify(row));
  assert.equal(row.hasRecipe, false);
  assert.equal(row.initMode, 'fast');
});
