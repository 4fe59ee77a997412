import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { resolveConfig } from '../../src/core/config.js';
import { IsletError } from '../../src/core/errors.js';
import { cached, setCurrent } from '../../src/images/cache.js';
import { readCpio } from '../../src/images/cpio.js';
import { chooseKernel, customKernelDir, ensureCustomInitramfs, fragmentPath, loadFragment } from '../../src/images/custom-kernel.js';
import {
  customKernelKey, hasPvhNote, parseDotConfig, parseFragment, renderFragment, unappliedSymbols,
} from '../../src/images/kernel-config.js';

const code = (re: RegExp) => (e: unknown) => e instanceof IsletError && e.code === 'IMAGE_BUILD_FAILED' && re.test(e.message);

test('fragment parser reads y/n/numbers/strings, "is not set" and comments', () => {
  const f = parseFragment([
    '# a comment', '', 'CONFIG_A=y', 'CONFIG_B=n', '# CONFIG_C is not set', 'CONFIG_NR_CPUS=64', 'CONFIG_HEX=0x1f',
    'CONFIG_LOCALVERSION="-islet"', '  CONFIG_SPACED=y  ',
  ].join('\n'));
  assert.deepEqual([...f], [['CONFIG_A', 'y'], ['CONFIG_B', 'n'], ['CONFIG_C', 'n'], ['CONFIG_NR_CPUS', '64'], ['CONFIG_HEX', '0x1f'],
    ['CONFIG_LOCALVERSION', '"-islet"'], ['CONFIG_SPACED', 'y']]);
});

test('fragment parser refuses modules, duplicates and garbage, naming the line', () => {
  assert.throws(() => parseFragment('CONFIG_A=y\nCONFIG_VIRTIO_NET=m', 'f'), code(/^f:2: CONFIG_VIRTIO_NET=m: .*without module support/));
  assert.throws(() => parseFragment('CONFIG_A=y\n# CONFIG_A is not set'), code(/:2: CONFIG_A is set twice/));
  assert.throws(() => parseFragment('VIRTIO=y'), code(/:1: not a Kconfig line/));
  assert.throws(() => parseFragment('CONFIG_A=maybe'), code(/unsupported value maybe/));
  assert.throws(() => parseFragment('CONFIG_A="unterminated'), code(/unsupported value/));
});

test('the shipped fragment builds in what islet guests need and leaves out the rest', async () => {
  const f = await loadFragment();
  assert.ok(fragmentPath().endsWith(path.join('images', 'kernel', 'microvm.config')));
  const on = ['CONFIG_PVH', 'CONFIG_VIRTIO_MMIO', 'CONFIG_VIRTIO_BLK', 'CONFIG_VIRTIO_CONSOLE', 'CONFIG_VIRTIO_NET', 'CONFIG_EXT4_FS',
    'CONFIG_OVERLAY_FS', 'CONFIG_SQUASHFS', 'CONFIG_DEVTMPFS', 'CONFIG_TMPFS', 'CONFIG_CGROUPS', 'CONFIG_SECCOMP_FILTER', 'CONFIG_INET',
    'CONFIG_UNIX', 'CONFIG_INOTIFY_USER', 'CONFIG_SERIAL_8250_CONSOLE', 'CONFIG_NF_TABLES', 'CONFIG_BLK_DEV_INITRD'];
  for (const s of on) assert.equal(f.get(s), 'y', `${s} should be built in`);
  const off = ['CONFIG_MODULES', 'CONFIG_USB_SUPPORT', 'CONFIG_SOUND', 'CONFIG_DRM', 'CONFIG_WLAN', 'CONFIG_BT', 'CONFIG_NETWORK_FILESYSTEMS'];
  for (const s of off) assert.equal(f.get(s), 'n', `${s} should be off`);
  assert.ok(![...f.values()].includes('m'));
});

test('rendered fragment reads back through the .config parser', () => {
  const f = parseFragment('CONFIG_A=y\nCONFIG_B=n\nCONFIG_S="x y"\nCONFIG_N=3');
  const text = renderFragment(f);
  assert.match(text, /^# CONFIG_B is not set$/m);
  assert.deepEqual(parseDotConfig(`#\n# Automatically generated\n#\n${text}CONFIG_OTHER=y\n`),
    new Map([['CONFIG_A', 'y'], ['CONFIG_B', 'n'], ['CONFIG_S', '"x y"'], ['CONFIG_N', '3'], ['CONFIG_OTHER', 'y']]));
});

test('unapplied symbols: dropped, changed, and absent-means-off', () => {
  const frag = parseFragment('CONFIG_A=y\nCONFIG_B=n\nCONFIG_C=n\nCONFIG_D=y\nCONFIG_N=64');
  const final = parseDotConfig('CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_N=8\n');
  assert.deepEqual(unappliedSymbols(frag, final), [
    { symbol: 'CONFIG_D', want: 'y', got: 'absent' },
    { symbol: 'CONFIG_N', want: '64', got: '8' },
  ]);
  assert.deepEqual(unappliedSymbols(frag, parseDotConfig('CONFIG_A=y\nCONFIG_D=y\nCONFIG_N=64\nCONFIG_B=y')), [
    { symbol: 'CONFIG_B', want: 'n', got: 'y' },
  ]);
});

test('cache key: same for reordered or re-commented fragments, different for any value or source version', () => {
  const src = { package: 'linux-source-6.1', version: '6.1.192-2' };
  const k = customKernelKey(src, parseFragment('CONFIG_A=y\nCONFIG_B=n'));
  assert.match(k, /^[0-9a-f]{16}$/);
  assert.equal(customKernelKey(src, parseFragment('# why B\n# CONFIG_B is not set\n\nCONFIG_A=y')), k);
  assert.equal(customKernelKey(src, parseFragment('# comment\nCONFIG_B=n\n\nCONFIG_A=y\n')), k);
  assert.notEqual(customKernelKey(src, parseFragment('CONFIG_A=y\nCONFIG_B=y')), k);
  assert.notEqual(customKernelKey(src, parseFragment('CONFIG_A=y')), k);
  assert.notEqual(customKernelKey({ ...src, version: '6.1.192-3' }, parseFragment('CONFIG_A=y\nCONFIG_B=n')), k);
});

function note(name: string, type: number, desc: Buffer): Buffer {
  const n = Buffer.from(`${name}\0`);
  const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);
  const h = Buffer.alloc(12);
  h.writeUInt32LE(n.length, 0);
  h.writeUInt32LE(desc.length, 4);
  h.writeUInt32LE(type, 8);
  return Buffer.concat([h, pad(n), pad(desc)]);
}

test('PVH note is found among other notes, and only with the Xen name and type 18', () => {
  const gnu = note('GNU', 3, Buffer.alloc(20, 1));
  const pvh = note('Xen', 18, Buffer.from([0, 0, 0, 1]));
  assert.equal(hasPvhNote(Buffer.concat([gnu, note('Xen', 6, Buffer.from('linux\0')), pvh])), true);
  assert.equal(hasPvhNote(Buffer.concat([gnu, note('Xen', 6, Buffer.from('linux\0'))])), false);
  assert.equal(hasPvhNote(note('Linux', 18, Buffer.alloc(4))), false);
  assert.equal(hasPvhNote(Buffer.alloc(5)), false);
});

test('kernel choice: auto falls back to distro, custom demands a build, distro and kernel_path win', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'islet-kchoice-'));
  try {
    const cfg = (vm: Record<string, unknown>) => resolveConfig({ storage: { data_dir: dir }, vm });
    const agentFile = path.join(dir, 'agent');
    await writeFile(agentFile, 'not really an agent');
    const agent = { path: agentFile, key: 'a'.repeat(16), sizeBytes: 19, goVersion: 'go1.19', reused: true };

    assert.equal((await chooseKernel(cfg({}), agent.key)).kind, 'distro');
    assert.match((await chooseKernel(cfg({}), agent.key)).reason, /no custom kernel has been built/);
    await assert.rejects(chooseKernel(cfg({ kernel: 'custom' }), agent.key),
      (e: unknown) => e instanceof IsletError && e.code === 'IMAGE_NOT_FOUND' && /islet kernel build/.test(e.hint ?? ''));

    // A built custom kernel (its cache entry) without an initramfs for this agent is not used.
    const key = 'b'.repeat(16);
    const kdir = customKernelDir(cfg({}));
    await cached(kdir, key, async (tmp) => {
      await writeFile(path.join(tmp, 'vmlinux'), 'ELF');
      return { info: { release: '6.1.192-islet', sourceVersion: '6.1.192-2' } };
    });
    await setCurrent(kdir, key);
    assert.match((await chooseKernel(cfg({}), agent.key)).reason, /no initramfs for the current agent/);

    const initrd = await ensureCustomInitramfs(cfg({}), key, agent);
    const entries = readCpio(await readFile(initrd.path));
    assert.deepEqual(entries.find((e) => e.path === 'lib/modules/islet/order')?.data?.toString(), '\n');
    assert.equal(entries.find((e) => e.path === 'init')?.data?.toString(), 'not really an agent');

    const auto = await chooseKernel(cfg({}), agent.key);
    assert.equal(auto.kind, 'custom');
    assert.equal(auto.custom?.initrd, initrd.path);
    assert.equal(auto.custom?.release, '6.1.192-islet');
    assert.equal((await chooseKernel(cfg({ kernel: 'custom' }), agent.key)).kind, 'custom');
    assert.equal((await chooseKernel(cfg({ kernel: 'distro' }), agent.key)).kind, 'distro');
    assert.equal((await chooseKernel(cfg({ kernel_path: '/boot/vmlinux-x' }), agent.key)).kind, 'distro');
    // Another agent (rebuilt since): auto falls back until the initramfs is refreshed.
    assert.equal((await chooseKernel(cfg({}), 'c'.repeat(16))).kind, 'distro');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('config: [vm] kernel accepts auto, distro, custom and nothing else', () => {
  assert.equal(resolveConfig({}).vm.kernel, 'auto');
  assert.equal(resolveConfig({ vm: { kernel: 'custom' } }).vm.kernel, 'custom');
  assert.throws(() => resolveConfig({ vm: { kernel: 'mine' } }), (e: unknown) => e instanceof IsletError && e.code === 'CONFIG_INVALID');
});
