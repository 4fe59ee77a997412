// Every start is a restore (docs/pool.md, "Pre-root templates"), with real
// VMs: a started workspace restored from its image's pre-root template runs
// on its own disk (another size, other first blocks than the template's)
// with its own identity; a disk fork and a disk snapshot_restore take the
// same path, and the restore gives the same bytes as the reboot path; a
// kernel changed since the template was taken means a cold boot, with a note.
import assert from 'node:assert/strict';
import { closeSync, copyFileSync, openSync, readSync, utimesSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { WorkspaceInfo } from '../../src/service/types.js';
import { WorkspaceService } from '../../src/service/workspaces.js';
import { pinnedBoot } from '../../bench/pinned-boot.js';
import { vmEnv } from './factory.js';

// Stage 1 is this checkout's: pin its kernel and initramfs (the cache's "current" moves with every build on the host).
const env = vmEnv('preroot', { vm: await pinnedBoot() });
// A private kernel copy stands in for a rebuilt kernel (the shared cache's files are never touched).
const kernel = path.join(env.dir, 'vmlinux');
const initrd = path.join(env.dir, 'initrd');
const stale = vmEnv('preroot-stale', { vm: { kernel_path: kernel, initrd_path: initrd } });
const caller = { owner: 'preroot-test' };
const GiB = 1024 ** 3;

const run = async (svc: WorkspaceService, ws: string, command: string) => {
  const r = await svc.exec(caller, { workspace_id: ws, command });
  assert.equal(r.exit_code, 0, `${command}: ${r.stderr}`);
  return r.stdout;
};
const restored = (w: { boot?: WorkspaceInfo['boot'] }, what: string) =>
  assert.equal(w.boot?.path, 'restore', `${what}: ${JSON.stringify(w.boot)}`);
/** What a workspace's guest says about itself: hostname, machine-id, disk size, first bytes of its disk, its file. */
const facts = (svc: WorkspaceService, ws: string) => run(svc, ws,
  'hostname; cat /etc/machine-id; echo $(( $(cat /sys/block/vda/size) * 512 )); head -c 9 /dev/vda; echo; cat /root/mine; grep -c preroot /proc/cmdline || true;'
  + ' od -An -tu4 -j1028 -N4 /dev/vda | tr -d " "'); // the ext4 superblock's block count (the template disk's is the image's)
const SHA = 'sha256sum /root/big | cut -c1-64';

describe('pre-root restores', { timeout: 1_200_000 }, () => {
  test('starts, disk forks and disk snapshot restores restore the pre-root template, each with its own disk and identity', async () => {
    const svc = await env.open();
    await svc.create(caller, { name: 'pr-a' });
    await svc.create(caller, { name: 'pr-b', disk_gb: 3 });
    // Each disk gets its own file and its own first bytes (ext4 leaves its first 1024 unused). Read-only first: the
    // journal holds an older copy of block 0, and its replay after a power-off would put it back over the mark.
    for (const w of ['pr-a', 'pr-b']) {
      await run(svc, w, `echo ${w}-file > /root/mine && sync && mount -o remount,ro / && printf ${w}-blk0 | dd of=/dev/vda conv=notrunc status=none && sync`);
    }
    const before = { a: await facts(svc, 'pr-a'), b: await facts(svc, 'pr-b') };

    // The template of this image build and shape, taken now if the shared cache has none (the second test shows a start taking it).
    const res = env.config.resources;
    await svc.preroot!.ensure({ image: res.default_image, vcpus: res.default_vcpus, memoryMb: res.default_memory_mb, net: true });

    for (const w of ['pr-a', 'pr-b']) await svc.stop(caller, { workspace_id: w });
    restored(await svc.start(caller, { workspace_id: 'pr-a' }), 'start pr-a');
    restored(await svc.start(caller, { workspace_id: 'pr-b' }), 'start pr-b (3 GiB)');
    const a = await facts(svc, 'pr-a');
    const b = await facts(svc, 'pr-b');
    // Same as each booted before: hostname, machine-id, capacity, first blocks, files; never the template's.
    assert.equal(a, before.a);
    assert.equal(b, before.b);
    assert.match(a, /^pr-a\n[0-9a-f]{32}\n2147483648\npr-a-blk0\npr-a-file\n0\n524288\n$/);
    assert.match(b, /^pr-b\n[0-9a-f]{32}\n3221225472\npr-b-blk0\npr-b-file\n0\n786432\n$/);
    // The template was taken on a disk of the image's own size: its first blocks (superblock, block 0) differ.
    const rootfs = (await svc.rt.artifacts(res.default_image)).rootfs;
    const head = Buffer.alloc(2048);
    const fd = openSync(rootfs, 'r');
    readSync(fd, head, 0, 2048, 0);
    closeSync(fd);
    assert.notEqual(head.readUInt32LE(1028), 524288);
    assert.equal(head.subarray(0, 9).toString('latin1'), '\0'.repeat(9));
    assert.notEqual(a.split('\n')[1], b.split('\n')[1]);
    // The filesystem fills the 3 GiB disk (the guest saw the new capacity before mounting).
    assert.ok(Number(await run(svc, 'pr-b', "df -B1 --output=size / | tail -1")) > 2.5 * GiB);

    // A disk fork: the source's files, an identity of its own.
    const fork = await svc.fork(caller, { workspace_id: 'pr-a', name: 'pr-fork' });
    restored(fork, 'disk fork');
    const f = await facts(svc, 'pr-fork');
    assert.match(f, /^pr-fork\n[0-9a-f]{32}\n2147483648\npr-a-blk0\npr-a-file\n0\n524288\n$/);
    assert.notEqual(f.split('\n')[1], a.split('\n')[1], 'the fork has its own machine-id');

    // snapshot_restore of a disk snapshot on a running workspace: the bytes of the snapshot, by restore.
    await run(svc, 'pr-a', 'head -c 16777216 /dev/urandom > /root/big && sync');
    const sum = await run(svc, 'pr-a', SHA);
    await svc.snapshotCreate(caller, { workspace_id: 'pr-a', name: 's1' });
    await run(svc, 'pr-a', 'head -c 16777216 /dev/urandom > /root/big && sync');
    assert.notEqual(await run(svc, 'pr-a', SHA), sum);
    const r = await svc.snapshotRestore(caller, { workspace_id: 'pr-a', snapshot: 's1' });
    assert.equal(r.restarted, true);
    restored(r, 'snapshot_restore');
    assert.equal(await run(svc, 'pr-a', SHA), sum);
    await run(svc, 'pr-a', 'head -c 16777216 /dev/urandom > /root/big && sync');
    await svc.close();

    // The reboot path (no templates) on the same workspace gives the same bytes.
    const cfg = { ...env.config, pool: { ...env.config.pool, template: false } };
    const cold2 = await WorkspaceService.open(cfg);
    try {
      const r2 = await cold2.snapshotRestore(caller, { workspace_id: 'pr-a', snapshot: 's1' });
      assert.equal(r2.boot?.path, 'cold');
      assert.equal(await run(cold2, 'pr-a', SHA), sum);
    } finally {
      await cold2.close();
    }
  });

  test('a kernel changed since the pre-root template was taken means a cold boot, with a note', async () => {
    const rt = await env.rt();
    const art = await rt.artifacts('base');
    copyFileSync(art.vmlinux, kernel);
    copyFileSync(art.initrd, initrd);
    const svc = await stale.open();
    await svc.create(caller, { name: 'st' });
    await svc.stop(caller, { workspace_id: 'st' });
    await svc.start(caller, { workspace_id: 'st' }); // cold: takes the template for this kernel
    await svc.preroot!.settled();
    await svc.stop(caller, { workspace_id: 'st' });
    restored(await svc.start(caller, { workspace_id: 'st' }), 'start under the kernel of the template');
    // The stop before left a clean filesystem (the agent remounts the root read-only at power-off): no journal replay.
    assert.equal(await run(svc, 'st', "dmesg | grep -c 'EXT4-fs (vda): recovery complete' || true"), '0\n');
    await svc.stop(caller, { workspace_id: 'st' });

    const later = new Date(Date.now() + 60_000);
    utimesSync(kernel, later, later); // not the kernel file the template was taken from any more
    const w = await svc.start(caller, { workspace_id: 'st' });
    assert.equal(w.boot?.path, 'cold');
    assert.match(w.boot?.note ?? '', /kernel or image of \S+ changed since its pre-root template was taken: booted cold/);
    assert.equal(await run(svc, 'st', 'hostname'), 'st\n');
    await svc.close();
  });
});
