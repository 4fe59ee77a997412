// `islet image gc` on a real temp cache and a real state database: what it
// keeps (current, newer than current, reached by a qcow2 chain of a live
// workspace or a template, open by a process, named by a workspace whose
// disk does not exist yet, initramfs of the current agent) and what it
// removes (everything else, and the custom kernel's source tree).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { resolveConfig, type Config } from '../../src/core/config.js';
import { setCurrent } from '../../src/images/cache.js';
import { customKernelDir } from '../../src/images/custom-kernel.js';
import { kindDir } from '../../src/images/paths.js';
import { chainOf, gcCache } from '../../src/service/image-gc.js';
import { Store } from '../../src/service/store.js';

const key = (c: string) => c.repeat(16);

/** A complete cache entry with a chosen build time (minutes ago) and one file. */
async function entry(dir: string, k: string, minutesAgo: number, file: string, recipe: unknown = null): Promise<string> {
  const p = path.join(dir, k);
  await mkdir(p, { recursive: true });
  await writeFile(path.join(p, file), Buffer.alloc(8192, 1));
  await writeFile(path.join(p, 'meta.json'), JSON.stringify({
    key: k, recipe, info: {}, files: { [file]: 8192 }, sizeBytes: 8192, buildMs: 1,
    builtAt: new Date(Date.now() - minutesAgo * 60_000).toISOString(),
  }));
  return path.join(p, file);
}

function overlay(backing: string, file: string): void {
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', backing, '-F', backing.endsWith('.qcow2') ? 'qcow2' : 'raw', file, '64M']);
}

const ROW = { owner: 'alice', vcpus: 1, memory_mb: 256, disk_gb: 2, allow_internet: 0, pid: null, error: null };

async function fixture(t: { after: (fn: () => Promise<void>) => void }) {
  const d = await mkdtemp(path.join(os.tmpdir(), 'islet-gc-'));
  t.after(() => rm(d, { recursive: true, force: true }));
  const config: Config = resolveConfig({ storage: { data_dir: d, cache_dir: path.join(d, 'cache') } });
  const dev = kindDir.image(config, 'dev');
  const base = kindDir.image(config, 'base');
  const f = {
    devOld: await entry(dev, key('1'), 50, 'rootfs.ext4'),
    devLive: await entry(dev, key('2'), 40, 'rootfs.ext4'),
    devSnap: await entry(dev, key('6'), 38, 'rootfs.ext4'),
    devTemplate: await entry(dev, key('5'), 35, 'rootfs.ext4'),
    devOpen: await entry(dev, key('7'), 33, 'rootfs.ext4'),
    devCurrent: await entry(dev, key('3'), 30, 'rootfs.ext4'),
    devNewer: await entry(dev, key('4'), 1, 'rootfs.ext4'),
    baseOld: await entry(base, key('a'), 50, 'rootfs.ext4'),
    baseCurrent: await entry(base, key('b'), 30, 'rootfs.ext4'),
    agentOld: await entry(kindDir.agent(config), key('c'), 50, 'islet-agent'),
    agent: await entry(kindDir.agent(config), key('d'), 30, 'islet-agent'),
    kernelOld: await entry(kindDir.kernel(config), key('e'), 50, 'vmlinux'),
    kernel: await entry(kindDir.kernel(config), key('f'), 30, 'vmlinux'),
    initrdOldAgent: await entry(kindDir.initramfs(config), key('8'), 50, 'initramfs.cpio', { agent: key('c') }),
    initrdCustom: await entry(kindDir.initramfs(config), key('9'), 45, 'initramfs.cpio', { agent: key('d'), kernel: 'custom' }),
    initrd: await entry(kindDir.initramfs(config), key('0'), 30, 'initramfs.cpio', { agent: key('d') }),
  };
  await setCurrent(dev, key('3'));
  await setCurrent(base, key('b'));
  await setCurrent(kindDir.agent(config), key('d'));
  await setCurrent(kindDir.kernel(config), key('f'));
  await setCurrent(kindDir.initramfs(config), key('0'));

  // A running workspace whose overlay sits on an old dev build; a snapshot chain on another.
  await mkdir(path.join(d, 'disks'), { recursive: true });
  const disk = path.join(d, 'disks', 'ws-live.qcow2');
  overlay(f.devLive, disk);
  await mkdir(path.join(d, 'snapshots', 'ws-snap'), { recursive: true });
  const snap = path.join(d, 'snapshots', 'ws-snap', 's1.qcow2');
  overlay(f.devSnap, snap);
  const active = path.join(d, 'snapshots', 'ws-snap', 'active.qcow2');
  overlay(snap, active);
  // A template's disk on another.
  const tdir = path.join(config.paths.cacheDir, 'templates', `dev-${key('5')}`);
  await mkdir(tdir, { recursive: true });
  overlay(f.devTemplate, path.join(tdir, 'disk.qcow2'));
  // The custom kernel's unpacked source tree.
  const src = path.join(customKernelDir(config), 'source', 'linux-source-6.1');
  await mkdir(src, { recursive: true });
  await writeFile(path.join(src, 'Makefile'), Buffer.alloc(4096));

  const store = Store.open(config.paths.stateDb);
  const now = new Date().toISOString();
  store.insertChecked({ ...ROW, id: 'ws-live', name: 'live', state: 'running', image: 'dev', created_at: now, updated_at: now, disk_path: disk }, { total: 9, perOwner: 9 });
  store.insertChecked({ ...ROW, id: 'ws-snap', name: 'snap', state: 'stopped', image: 'dev', created_at: now, updated_at: now, disk_path: active }, { total: 9, perOwner: 9 });
  // A create in flight: its disk does not exist yet, so nothing of base may go.
  store.insertChecked({ ...ROW, id: 'ws-new', name: 'new', state: 'creating', image: 'base', created_at: now, updated_at: now }, { total: 9, perOwner: 9 });
  // Destroyed rows protect nothing.
  store.insertChecked({ ...ROW, id: 'ws-gone', name: 'gone', state: 'destroyed', image: 'dev', created_at: now, updated_at: now, disk_path: path.join(d, 'nope.qcow2') }, { total: 9, perOwner: 9 });
  store.close();
  return { d, config, f, disk, active, src };
}

const dirOf = (p: string) => path.dirname(p);

test('qcow2 chains are followed through the headers\' backing-file names', async (t) => {
  const { f, active } = await fixture(t);
  const chain = await chainOf(active);
  assert.equal(chain.length, 3);
  assert.equal(chain[2], f.devSnap);
});

test('gc keeps what live workspaces, snapshots, templates, open files and the current agent use, and removes the rest', async (t) => {
  const { config, f, src } = await fixture(t);
  const fh = await open(f.devOpen, 'r'); // as QEMU holds its backing chain open
  t.after(() => fh.close());

  const dry = await gcCache(config, { dryRun: true });
  assert.equal(dry.dryRun, true);
  for (const p of Object.values(f)) assert.ok(existsSync(p), `dry run removed ${p}`);

  const r = await gcCache(config);
  const removed = r.removed.map((x) => `${x.kind} ${x.key}`).sort();
  assert.deepEqual(removed, [
    `agent ${key('c')}`, `image:dev ${key('1')}`, `initramfs ${key('8')}`, `kernel ${key('e')}`, 'kernel-custom source/linux-source-6.1',
  ].sort());
  assert.deepEqual(dry.removed.map((x) => `${x.kind} ${x.key}`).sort(), removed, 'the dry run listed exactly what gc then removed');
  assert.ok(r.freedBytes > 0);
  for (const p of [f.devOld, f.agentOld, f.kernelOld, f.initrdOldAgent]) assert.ok(!existsSync(dirOf(p)), `${p} should be gone`);
  assert.ok(!existsSync(src), 'the custom kernel source tree is removed');
  const why = (k: string) => r.kept.find((x) => x.key === k)?.reason ?? 'removed';
  assert.match(why(key('2')), /in use/, 'under a live workspace row');
  assert.match(why(key('6')), /in use/, 'under a snapshot chain');
  assert.match(why(key('5')), /in use/, 'under a template');
  assert.match(why(key('7')), /in use/, 'open by a process');
  assert.equal(why(key('3')), 'current');
  assert.match(why(key('4')), /newer than current/);
  assert.match(why(key('a')), /does not exist/, 'a create in flight keeps its image');
  assert.match(why(key('9')), /current agent/);
  for (const p of [f.devLive, f.devSnap, f.devTemplate, f.devOpen, f.devCurrent, f.devNewer, f.baseOld, f.baseCurrent, f.agent, f.kernel, f.initrd, f.initrdCustom]) {
    assert.ok(existsSync(p), `${p} should be kept`);
  }
  assert.equal((await gcCache(config)).removed.length, 0, 'a second run finds nothing');
});

test('once the live workspace is destroyed (row and disk), its build goes; a row whose disk is missing keeps its image; "only" limits gc to one image', async (t) => {
  const { config, f, disk } = await fixture(t);
  const only = await gcCache(config, { only: 'image:dev', scanProcesses: false });
  assert.deepEqual(only.removed.map((x) => x.key).sort(), [key('1'), key('7')].sort(), 'nothing else has an open file here');
  assert.ok(existsSync(f.agentOld) && existsSync(f.kernelOld), 'other kinds untouched');
  await rm(disk);
  const missing = await gcCache(config, { only: 'image:dev', scanProcesses: false });
  assert.deepEqual(missing.removed, [], 'a live row whose disk is missing cannot be traced: its image keeps every build');
  const store = Store.open(config.paths.stateDb);
  store.setState('ws-live', 'destroyed');
  store.close();
  const after = await gcCache(config, { only: 'image:dev', scanProcesses: false });
  assert.deepEqual(after.removed.map((x) => x.key), [key('2')], 'the live row was what kept it');
});

test('a running kernel build keeps its source tree', async (t) => {
  const { config, src } = await fixture(t);
  await mkdir(path.join(customKernelDir(config), 'build.lock'));
  const r = await gcCache(config, { only: 'kernel-custom' });
  assert.equal(r.removed.length, 0);
  assert.ok(existsSync(src));
});
