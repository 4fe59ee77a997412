// Snapshots, restore, forks and pruning against real VMs, through the
// WorkspaceService. VM boots are few (create, restore, fork, one start):
// every check shares the one source workspace.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { IsletError } from '../../src/core/errors.js';
import type { WorkspaceInfo } from '../../src/service/types.js';
import type { WorkspaceService } from '../../src/service/workspaces.js';
import { destroyAll, vmEnv } from './factory.js';

const env = vmEnv('snap');
const dataDir = env.dir;
const me = { owner: 'snap-test' };
const coded = (c: string) => (e: unknown) => e instanceof IsletError && e.code === c;
let svc: WorkspaceService;
let src: WorkspaceInfo;

/** Runs a shell command in a workspace; asserts exit 0 and returns stdout. */
async function sh(ws: string, command: string): Promise<string> {
  const r = await svc.exec(me, { workspace_id: ws, command, timeout_ms: 120_000 });
  assert.equal(r.exit_code, 0, `${command}: ${r.stderr}`);
  return r.stdout;
}

describe('snapshots and forks', { timeout: 900_000 }, () => {
  before(async () => {
    svc = await env.open();
    src = await svc.create(me, { name: 'src' });
  }, { timeout: 300_000 });
  after(async () => {
    assert.deepEqual(await destroyAll(svc), []); // forks first: a source whose snapshots a fork uses cannot go before it
    // Nothing of any workspace is left on disk.
    assert.deepEqual(readdirSync(path.join(dataDir, 'disks')), []);
    assert.deepEqual(readdirSync(path.join(dataDir, 'snapshots')), []);
  });

  test('restore brings back a 1 MiB file byte for byte, and deleted files; a running workspace is restarted', async () => {
    const sum = await sh('src', 'head -c 1048576 /dev/urandom > /root/data.bin && echo keep > /root/keep.txt && sha256sum /root/data.bin');
    const s = await svc.snapshotCreate(me, { workspace_id: 'src', name: 'one', description: 'random data' });
    assert.equal(s.live, true);
    assert.equal(s.parent_id, null);
    assert.ok(s.size_bytes && s.size_bytes > 1 << 20, `snapshot holds the data: ${s.size_bytes}`);
    await sh('src', 'head -c 4096 /dev/urandom | dd of=/root/data.bin bs=1 seek=1000 conv=notrunc 2>/dev/null; rm /root/keep.txt; echo new > /root/new.txt; sync');
    assert.notEqual(await sh('src', 'sha256sum /root/data.bin'), sum);

    const r = await svc.snapshotRestore(me, { workspace_id: 'src', snapshot: 'one' });
    assert.deepEqual([r.restarted, r.state, r.snapshot_id], [true, 'running', s.snapshot_id]);
    assert.equal(await sh('src', 'sha256sum /root/data.bin'), sum);
    assert.equal(await sh('src', 'cat /root/keep.txt'), 'keep\n');
    assert.equal(await sh('src', 'test -e /root/new.txt && echo yes || echo no'), 'no\n');
    const info = await svc.info(me, { workspace_id: 'src' });
    assert.equal(info.current_snapshot_id, s.snapshot_id);
    assert.deepEqual(info.snapshots.map((x) => x.name), ['one']);
    assert.equal(info.snapshot_count, 1);
  });

  test('a live disk snapshot is a clean filesystem: the root is frozen across the switch and thawed at once', async () => {
    const disks = path.join(dataDir, 'disks');
    const readOnly = () => new Set(readdirSync(disks).filter((f) => (statSync(path.join(disks, f)).mode & 0o222) === 0));
    await svc.create(me, { name: 'frz' }); // its own workspace: the other tests count the snapshots of src
    const before = readOnly();
    await sh('frz', 'head -c 65536 /dev/urandom > /root/dirty.bin'); // unsynced: in the page cache and the journal
    await svc.snapshotCreate(me, { workspace_id: 'frz', name: 'frozen' });
    const made = [...readOnly()].filter((f) => !before.has(f));
    assert.equal(made.length, 1, `one disk became the snapshot: ${made}`);
    // ext4's superblock at 1 KiB; s_feature_incompat at 0x60; 0x4 = needs_recovery: set while mounted (a sync-only
    // snapshot has it), cleared by a freeze.
    const incompat = (file: string) => {
      const tmp = mkdtempSync(path.join(os.tmpdir(), 'islet-sb-'));
      try {
        execFileSync('qemu-img', ['dd', '-U', '-f', 'qcow2', '-O', 'raw', 'bs=1024', 'count=2', `if=${file}`, `of=${tmp}/sb`]);
        const sb = readFileSync(`${tmp}/sb`).subarray(1024);
        assert.equal(sb.readUInt16LE(0x38), 0xef53, 'an ext4 superblock');
        return sb.readUInt32LE(0x60);
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    };
    assert.equal(incompat(path.join(disks, made[0]!)) & 0x4, 0, 'the snapshot needs no journal replay');
    // Thawed by the host right away, not by the guest's deadline: unfreezing a thawed root is EINVAL.
    assert.match(await sh('frz', 'echo after > /root/after.txt; fsfreeze --unfreeze / 2>&1; echo rc=$?'), /Invalid argument[\s\S]*rc=1/);
    await svc.destroy(me, { workspace_id: 'frz' });
  });

  test('a fork has its own identity, and neither it nor its source sees the other\'s writes', async () => {
    const srcMachineId = await sh('src', 'cat /etc/machine-id');
    const f = await svc.fork(me, { workspace_id: 'src', snapshot: 'one', name: 'forky' });
    assert.equal(f.state, 'running');
    assert.notEqual(f.workspace_id, src.workspace_id);
    assert.equal(f.current_snapshot_id, (await svc.snapshotList(me, { workspace_id: 'src' })).snapshots[0]!.snapshot_id);
    assert.equal(await sh('forky', 'hostname'), 'forky\n');
    assert.equal(await sh('src', 'hostname'), 'src\n');
    const forkMachineId = await sh('forky', 'cat /etc/machine-id');
    assert.match(forkMachineId, /^[0-9a-f]{32}\n$/);
    assert.notEqual(forkMachineId, srcMachineId);
    assert.equal(await sh('forky', 'cat /root/keep.txt'), 'keep\n', 'the fork starts from the snapshot');

    await sh('src', 'echo from-src > /root/a.txt; sync');
    await sh('forky', 'echo from-fork > /root/b.txt; echo changed > /root/keep.txt; sync');
    assert.equal(await sh('forky', 'test -e /root/a.txt && echo yes || echo no'), 'no\n');
    assert.equal(await sh('src', 'test -e /root/b.txt && echo yes || echo no'), 'no\n');
    assert.equal(await sh('src', 'cat /root/keep.txt'), 'keep\n');
    assert.equal(await sh('forky', 'cat /root/keep.txt'), 'changed\n');
  });

  test('a depended-on snapshot cannot be deleted, nor the source of a fork destroyed: SNAPSHOT_IN_USE', async () => {
    await assert.rejects(svc.snapshotDelete(me, { workspace_id: 'src', snapshot: 'one' }), coded('SNAPSHOT_IN_USE'));
    await assert.rejects(svc.destroy(me, { workspace_id: 'src' }), coded('SNAPSHOT_IN_USE'));
    await assert.rejects(svc.snapshotDelete(me, { workspace_id: 'src', snapshot: 'nope' }), coded('SNAPSHOT_NOT_FOUND'));
    await assert.rejects(svc.snapshotCreate(me, { workspace_id: 'src', name: 'one' }), coded('INVALID_ARGUMENT'));
    await svc.destroy(me, { workspace_id: 'forky' });
    // src's own disk still builds on "one".
    await assert.rejects(svc.snapshotDelete(me, { workspace_id: 'src', snapshot: 'one' }), coded('SNAPSHOT_IN_USE'));
  });

  test('a chain of 10 snapshots (live and stopped) lists as a chain, restores to the middle, and prunes', async () => {
    const one = (await svc.snapshotList(me, { workspace_id: 'src' })).snapshots[0]!;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      await sh('src', `echo ${i} > /root/gen`);
      ids.push((await svc.snapshotCreate(me, { workspace_id: 'src', name: `c${i}` })).snapshot_id);
    }
    await svc.stop(me, { workspace_id: 'src' });
    for (let i = 5; i < 10; i++) {
      const s = await svc.snapshotCreate(me, { workspace_id: 'src', name: `c${i}` });
      assert.equal(s.live, false);
      ids.push(s.snapshot_id);
    }
    const list = await svc.snapshotList(me, { workspace_id: 'src' });
    assert.deepEqual(list.snapshots.map((s) => s.name), ['one', ...ids.map((_, i) => `c${i}`)]);
    assert.deepEqual(list.snapshots.map((s) => s.parent_id), [null, one.snapshot_id, ...ids.slice(0, 9)]);
    assert.equal(list.current_snapshot_id, ids[9]);
    assert.ok(list.snapshots.every((s) => s.size_bytes !== null));
    assert.equal(readdirSync(path.join(dataDir, 'snapshots', src.workspace_id)).length, 5, 'stopped snapshots moved into snapshots/');

    const r = await svc.snapshotRestore(me, { workspace_id: 'src', snapshot: 'c2' });
    assert.deepEqual([r.restarted, r.state], [false, 'stopped']);
    await svc.start(me, { workspace_id: 'src' });
    assert.equal(await sh('src', 'cat /root/gen'), '2\n');

    // Prune: newest first; an older one is still needed by c2 (the current disk's base).
    await assert.rejects(svc.snapshotDelete(me, { workspace_id: 'src', snapshot: 'c1' }), coded('SNAPSHOT_IN_USE'));
    await assert.rejects(svc.snapshotDelete(me, { workspace_id: 'src', snapshot: 'c8' }), coded('SNAPSHOT_IN_USE'));
    for (let i = 9; i >= 3; i--) await svc.snapshotDelete(me, { workspace_id: 'src', snapshot: `c${i}` });
    const left = await svc.snapshotList(me, { workspace_id: 'src' });
    assert.deepEqual(left.snapshots.map((s) => s.name), ['one', 'c0', 'c1', 'c2']);
    assert.equal(readdirSync(path.join(dataDir, 'snapshots', src.workspace_id)).length, 0, 'the stopped snapshots c5-c9 are gone');
    assert.equal(await sh('src', 'cat /root/gen'), '2\n');
    // Snapshot files are read-only.
    assert.equal(statSync(path.join(dataDir, 'disks', `${src.workspace_id}.qcow2`)).mode & 0o777, 0o444);
  });

  test('fork without a snapshot takes one of the running source first; destroy removes all of a workspace\'s files', async () => {
    await sh('src', 'echo live > /root/live.txt');
    const f = await svc.fork(me, { workspace_id: 'src', name: 'forky2' });
    assert.equal(await sh('forky2', 'cat /root/live.txt'), 'live\n');
    const snaps = (await svc.snapshotList(me, { workspace_id: 'src' })).snapshots;
    assert.match(snaps.at(-1)!.name, /^fork-/);
    assert.equal(f.current_snapshot_id, snaps.at(-1)!.snapshot_id);
    await svc.destroy(me, { workspace_id: 'forky2' });
    assert.ok(!readdirSync(path.join(dataDir, 'disks')).some((n) => n.startsWith(f.workspace_id)));
  });
});
