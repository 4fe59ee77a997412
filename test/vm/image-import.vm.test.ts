// Acceptance for imported images (issue 17, item 2): an ext4 rootfs built
// by another tool (mmdebstrap minbase + mke2fs -d, test/fixtures/foreign-
// rootfs.ts), without islet's agent, imports, boots with the agent injected
// from the initramfs and the imported kernel (PVH), runs exec, passes the
// generic verify, and exports; the user's file is unchanged (sha256). A
// kernel without the PVH note falls back to islet's kernel and still boots.
//
// The agent and initramfs are built from this checkout into a private
// cache (the kernel and Go's build cache are the shared cache's, linked),
// so the test boots this checkout's stage 1 without moving the shared
// cache's "current" agent under other users of it.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../src/core/config.js';
import { ensureAgent, ensureInitramfs, ensureKernel } from '../../src/images/index.js';
import { sectionData } from '../../src/images/elf.js';
import { importImage } from '../../src/images/import.js';
import { isPvhBootable, sha256File } from '../../src/images/imported-boot.js';
import { resolveBootArtifacts } from '../../src/service/artifacts.js';
import { exportImage, verifyImage } from '../../src/service/image-ops.js';
import { foreignRootfs } from '../fixtures/foreign-rootfs.js';
import { vmEnv } from './factory.js';

const shared = loadConfig().paths.cacheDir;
const cache = mkdtempSync(path.join(os.tmpdir(), 'islet-import-cache-'));
mkdirSync(path.join(cache, 'images'));
// base: the accelerator verdict is taken on it (Runtime.accel); only read here.
if (existsSync(path.join(shared, 'images', 'base'))) symlinkSync(path.join(shared, 'images', 'base'), path.join(cache, 'images', 'base'));
for (const d of ['kernel', 'go', 'kernel-custom']) if (existsSync(path.join(shared, d))) symlinkSync(path.join(shared, d), path.join(cache, d));
if (existsSync(path.join(shared, 'accel.json'))) copyFileSync(path.join(shared, 'accel.json'), path.join(cache, 'accel.json'));
const env = vmEnv('image-import', { storage: { cache_dir: cache }, vm: { kernel: 'distro' } });
after(() => rmSync(cache, { recursive: true, force: true }));

const log = (s: string) => process.stderr.write(`[image-import] ${s}\n`);
const alice = { owner: 'alice' };

/** A copy of vmlinux whose Xen PVH note (type 18) is renumbered: an x86-64 ELF QEMU's microvm cannot enter. */
function withoutPvhNote(vmlinux: string, out: string): void {
  const buf = readFileSync(vmlinux);
  const notes = sectionData(buf, '.notes');
  assert.ok(notes, 'the kernel has a .notes section');
  const base = notes.byteOffset - buf.byteOffset;
  let patched = 0;
  for (let off = 0; off + 12 <= notes.length;) {
    const namesz = notes.readUInt32LE(off);
    const descsz = notes.readUInt32LE(off + 4);
    if (notes.toString('latin1', off + 12, off + 15) === 'Xen' && notes.readUInt32LE(off + 8) === 18) {
      buf.writeUInt32LE(0x7fff, base + off + 8);
      patched++;
    }
    off += 12 + ((namesz + 3) & ~3) + ((descsz + 3) & ~3);
  }
  assert.equal(patched, 1, 'one PVH note patched');
  writeFileSync(out, buf);
}

describe('importing a foreign image', { timeout: 1_500_000 }, () => {
  let rootfs = '';
  let kernel = '';
  let before256 = '';

  before(async () => {
    rootfs = await foreignRootfs(log);
    before256 = await sha256File(rootfs);
    const agent = await ensureAgent(env.config, log);
    const k = await ensureKernel(env.config, log);
    await ensureInitramfs(env.config, k, agent, log);
    // Imports come from the home or the data dir: the kernel is copied into the data dir.
    kernel = path.join(env.dir, 'vmlinux');
    copyFileSync(k.vmlinux, kernel);
    assert.equal(await isPvhBootable(kernel), true);
  });

  test('an ext4 rootfs without islet\'s agent imports, boots with the injected agent on its own kernel, runs exec and passes generic verify; the original is unchanged', async () => {
    const r = await importImage(env.config, { name: 'foreign', kernel, rootfs });
    log(`import: ${JSON.stringify({ kernelUse: r.kernelUse, injectAgent: r.injectAgent, hasAgent: r.hasAgent, warnings: r.warnings })}`);
    assert.equal(r.hasAgent, false, 'the rootfs has no /usr/local/bin/islet-agent');
    assert.equal(r.kernelUse, 'own');
    assert.equal(r.injectAgent, true);
    const art = await resolveBootArtifacts(env.config, 'foreign');
    assert.equal(art.vmlinux, r.kernel, 'the imported copy of the kernel boots, not islet\'s');

    const svc = await env.open();
    const t0 = performance.now();
    await svc.create(alice, { name: 'f1', image: 'foreign' });
    log(`workspace of the foreign image running in ${Math.round(performance.now() - t0)} ms`);
    const x = await svc.exec(alice, {
      workspace_id: 'f1',
      command: 'cat /etc/debian_version; readlink /proc/1/exe; test -e /usr/local/bin/islet-agent && echo has-agent || echo no-agent; echo hi > /root/f; cat /root/f',
    });
    assert.equal(x.exit_code, 0, x.stderr);
    const lines = x.stdout.trim().split('\n');
    assert.match(lines[0] ?? '', /^\d+(\.\d+)?/, 'a Debian system');
    assert.equal(lines[1], '/run/islet/islet-agent', 'PID 1 is the agent copied from the initramfs');
    assert.equal(lines[2], 'no-agent', 'nothing was written into the image');
    assert.equal(lines[3], 'hi');
    await svc.destroy(alice, { workspace_id: 'f1' });

    const report = await verifyImage(env.config, await env.rt(), 'foreign', { memoryMb: 256, onResult: (c) => log(`${c.ok ? 'PASS' : 'FAIL'} ${c.name}: ${c.detail}`) });
    assert.equal(report.kind, 'imported');
    assert.ok(report.ok, JSON.stringify(report.checks, null, 1));
    assert.ok(report.checks.some((c) => /network/.test(c.name) && c.detail === 'network-ok'), 'the network check ran on a NIC');

    const out = path.join(env.dir, 'export');
    const e = await exportImage(env.config, 'foreign', out);
    assert.equal(await sha256File(e.files.rootfs), before256, 'the exported rootfs is the imported one, byte for byte');
    assert.equal(await sha256File(e.files.vmlinux), await sha256File(kernel));
    assert.match(e.cmdline, /islet\.agent=initramfs/);
    assert.equal(await sha256File(rootfs), before256, 'the user\'s rootfs is unchanged');
  });

  test('a kernel without the PVH note falls back to islet\'s kernel, with a warning, and the image still boots', async () => {
    const plain = path.join(env.dir, 'vmlinux-nopvh');
    withoutPvhNote(kernel, plain);
    const r = await importImage(env.config, { name: 'foreign-nopvh', kernel: plain, rootfs });
    assert.equal(r.kernelUse, 'islet');
    assert.ok(r.warnings.some((w) => /KERNEL_NOT_PVH/.test(w)), r.warnings.join('; '));
    const art = await resolveBootArtifacts(env.config, 'foreign-nopvh');
    assert.notEqual(art.vmlinux, r.kernel);
    assert.equal(await sha256File(art.vmlinux), await sha256File(kernel), 'islet\'s own kernel boots');
    const m = await env.boot({ image: 'foreign-nopvh' });
    const x = await m.exec({ shell: 'readlink /proc/1/exe' });
    assert.equal(x.stdout.toString().trim(), '/run/islet/islet-agent');
    assert.equal(await sha256File(rootfs), before256, 'the user\'s rootfs is unchanged');
  });
});
