// How an imported image boots, decided from real files in a temp cache:
// its own kernel when that has the PVH note (else islet's, with a warning),
// which initramfs goes with it, and the agent-injection word. No VM boots.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { resolveConfig, type Config } from '../../src/core/config.js';
import { IsletError } from '../../src/core/errors.js';
import { cached, setCurrent } from '../../src/images/cache.js';
import { EXT4_MAGIC_OFFSET, importImage } from '../../src/images/import.js';
import { isPvhBootable } from '../../src/images/imported-boot.js';
import { kindDir } from '../../src/images/paths.js';
import { resolveBootArtifacts } from '../../src/service/artifacts.js';
import { imageNameFromReference, pullImage } from '../../src/service/image-ops.js';
import { readCpio } from '../../src/images/cpio.js';
import { elfKernel } from '../fixtures/elf-kernel.js';

async function scratch(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'islet-import-boot-'));
  t.after(() => rm(d, { recursive: true, force: true }));
  return d;
}

function fakeExt4(): Buffer {
  const b = Buffer.alloc(4096);
  b.writeUInt16LE(0xef53, EXT4_MAGIC_OFFSET);
  return b;
}

/** A fake built host: an agent, a distro kernel (vmlinux = distroKernel) with its initramfs, and a base image, all current. */
async function fakeHost(config: Config, distroKernel: Buffer): Promise<void> {
  const put = async (dir: string, key: string, files: Record<string, Buffer>, recipe: unknown = null) => {
    await cached(dir, key, async (tmp) => {
      for (const [f, data] of Object.entries(files)) await writeFile(path.join(tmp, f), data);
      return { recipe };
    });
    await setCurrent(dir, key);
  };
  await put(kindDir.agent(config), 'a'.repeat(16), { 'islet-agent': Buffer.from('AGENT') });
  await put(kindDir.kernel(config), 'b'.repeat(16), { vmlinux: distroKernel });
  await put(kindDir.initramfs(config), 'c'.repeat(16), { 'initramfs.cpio': Buffer.from('DISTRO-INITRAMFS') }, { agent: 'a'.repeat(16) });
}

const KERNEL_NOT_PVH = /KERNEL_NOT_PVH/;

test('the PVH note decides: a PVH kernel is the imported image\'s own, any other x86-64 ELF falls back to islet\'s with a warning', async (t) => {
  const d = await scratch(t);
  const config = resolveConfig({ storage: { data_dir: d, cache_dir: path.join(d, 'cache') } });
  const distro = elfKernel(true, 1);
  await fakeHost(config, distro);
  const rootfs = path.join(d, 'root.ext4');
  await writeFile(rootfs, fakeExt4());
  for (const [f, pvh] of [['pvh', true], ['plain', false]] as const) await writeFile(path.join(d, f), elfKernel(pvh, 7));
  assert.equal(await isPvhBootable(path.join(d, 'pvh')), true);
  assert.equal(await isPvhBootable(path.join(d, 'plain')), false);

  // Own kernel: booted, with the bare initramfs (this agent, no modules) and the injection word.
  const own = await importImage(config, { name: 'own', kernel: path.join(d, 'pvh'), rootfs });
  assert.equal(own.kernelUse, 'own');
  assert.equal(own.injectAgent, true);
  assert.ok(!own.warnings.some((w) => KERNEL_NOT_PVH.test(w)), own.warnings.join('; '));
  const a = await resolveBootArtifacts(config, 'own');
  assert.equal(a.vmlinux, own.kernel, 'the imported vmlinux boots');
  assert.equal(a.injectAgent, true);
  assert.match(a.kernelKey, /^import:own:/);
  const entries = readCpio(await readFile(a.initrd));
  assert.deepEqual(entries.find((e) => e.path === 'init')?.data?.toString(), 'AGENT', 'the initramfs carries the current agent as /init');
  assert.equal(entries.filter((e) => e.path.endsWith('.ko')).length, 0, 'and no modules: they would not match a foreign kernel');

  // Not PVH: islet's kernel and initramfs, and a warning with the code.
  const plain = await importImage(config, { name: 'plain', kernel: path.join(d, 'plain'), rootfs });
  assert.equal(plain.kernelUse, 'islet');
  assert.ok(plain.warnings.some((w) => KERNEL_NOT_PVH.test(w) && /islet's kernel/.test(w)), plain.warnings.join('; '));
  const b = await resolveBootArtifacts(config, 'plain');
  assert.equal(b.vmlinux, path.join(kindDir.kernel(config), 'b'.repeat(16), 'vmlinux'));
  assert.equal(b.initrd, path.join(kindDir.initramfs(config), 'c'.repeat(16), 'initramfs.cpio'));
  assert.equal(b.injectAgent, true, 'the agent is injected whichever kernel boots');

  // A copy of islet's own distro kernel keeps that kernel's initramfs (its modules match).
  await writeFile(path.join(d, 'same'), distro);
  await importImage(config, { name: 'same', kernel: path.join(d, 'same'), rootfs });
  const c = await resolveBootArtifacts(config, 'same');
  assert.equal(path.basename(path.dirname(c.vmlinux)), (await importImage(config, { name: 'same', kernel: path.join(d, 'same'), rootfs })).key);
  assert.equal(c.initrd, b.initrd);

  // Full init: the image's own agent and systemd; nothing injected.
  await importImage(config, { name: 'full', kernel: path.join(d, 'pvh'), rootfs, initMode: 'full' });
  assert.equal((await resolveBootArtifacts(config, 'full')).injectAgent, false);

  // A built (recipe) image is untouched by all this.
  await cached(kindDir.image(config, 'base'), 'd'.repeat(16), async (tmp) => {
    await writeFile(path.join(tmp, 'rootfs.ext4'), fakeExt4());
    return { recipe: { recipe: { name: 'base', initMode: 'fast', chain: ['base'] } } };
  });
  await setCurrent(kindDir.image(config, 'base'), 'd'.repeat(16));
  const base = await resolveBootArtifacts(config, 'base');
  assert.equal(base.injectAgent, false);
  assert.equal(base.vmlinux, b.vmlinux);
});

test('pull: absolute paths only, no "..", size-bounded by [images] import_max_mb; the name comes from the reference', async (t) => {
  const d = await scratch(t);
  const config = resolveConfig({ storage: { data_dir: d, cache_dir: path.join(d, 'cache') }, images: { import_max_mb: 1 } });
  await fakeHost(config, elfKernel(true, 1));
  await mkdir(path.join(d, 'in'));
  const kernel = path.join(d, 'in', 'vmlinux');
  const rootfs = path.join(d, 'in', 'root.ext4');
  await writeFile(kernel, elfKernel(true, 2));
  await writeFile(rootfs, fakeExt4());
  const code = (c: string, re?: RegExp) => (e: unknown) => {
    assert.ok(e instanceof IsletError, String(e));
    assert.equal(e.code, c, e.message);
    if (re) assert.match(e.message, re);
    return true;
  };
  await assert.rejects(pullImage(config, { reference: 'x', kernelPath: 'in/vmlinux', rootfsPath: rootfs }), code('INVALID_ARGUMENT', /absolute/));
  await assert.rejects(pullImage(config, { reference: 'x', kernelPath: kernel, rootfsPath: `${d}/in/../in/root.ext4` }), code('INVALID_ARGUMENT', /\.\./));
  await assert.rejects(pullImage(config, { reference: 'x', kernelPath: kernel, rootfsPath: '/etc/passwd' }), code('PATH_OUTSIDE_ALLOWED'));
  await assert.rejects(pullImage(config, { reference: 'x', kernelPath: kernel, rootfsPath: path.join(d, 'in') }), code('INVALID_ARGUMENT', /regular file/));
  const big = path.join(d, 'in', 'big.ext4');
  await writeFile(big, Buffer.concat([fakeExt4(), Buffer.alloc(1024 * 1024)]));
  await assert.rejects(pullImage(config, { reference: 'x', kernelPath: kernel, rootfsPath: big }), code('FILE_TOO_LARGE', /import_max_mb|bytes/));
  const r = await pullImage(config, { reference: 'registry.example/team/Debian_Minbase:12', kernelPath: kernel, rootfsPath: rootfs });
  assert.equal(r.name, 'debian-minbase-12');
  assert.equal(r.reference, 'registry.example/team/Debian_Minbase:12');
  assert.equal(r.kernelUse, 'own');
  assert.equal(imageNameFromReference('alpine'), 'alpine');
  assert.throws(() => imageNameFromReference('///'), code('INVALID_ARGUMENT'));
});
