// Snapshots, restores, forks and the network operations of WorkspaceService
// on the fake drivers (no QEMU): their state rules, ownership of forks, the
// rollback of a failed fork, and the forward and policy rules.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { IsletError } from '../../src/core/errors.js';
import type { WorkspaceService } from '../../src/service/workspaces.js';
import { type FakeWorld, fakeService, fakeWorld } from '../fixtures/fake-drivers.js';

const alice = { owner: 'alice' };
const bob = { owner: 'bob' };
const coded = (c: string) => (e: unknown) => e instanceof IsletError && e.code === c;

let w: FakeWorld;
let svc: WorkspaceService;
before(async () => {
  w = await fakeWorld();
  svc = await fakeService(w);
});
after(async () => {
  await svc.close();
  await w.cleanup();
});

describe('snapshots and forks', () => {
  test('live and stopped snapshots form a chain; restore of a running workspace restarts it', async () => {
    await svc.create(alice, { name: 's1' });
    const live = await svc.snapshotCreate(alice, { workspace_id: 's1', name: 'one' });
    assert.equal(live.live, true);
    assert.deepEqual(w.guest.freezes, ['freeze /', 'thaw /'], 'the guest root is frozen across the switch, then thawed');
    assert.ok(!w.guest.execs.some((e) => e.argv?.[0] === 'sync'), 'frozen, so no sync');
    await assert.rejects(svc.snapshotCreate(alice, { workspace_id: 's1', name: 'one' }), coded('INVALID_ARGUMENT'));
    await svc.stop(alice, { workspace_id: 's1' });
    const cold = await svc.snapshotCreate(alice, { workspace_id: 's1', name: 'two' });
    assert.equal(cold.live, false);
    assert.equal(cold.parent_id, live.snapshot_id);
    await svc.start(alice, { workspace_id: 's1' });
    const r = await svc.snapshotRestore(alice, { workspace_id: 's1', snapshot: 'one' });
    assert.equal(r.restarted, true);
    assert.equal(r.state, 'running');
    assert.equal((await svc.snapshotList(alice, { workspace_id: 's1' })).current_snapshot_id, live.snapshot_id);
    await assert.rejects(svc.snapshotRestore(alice, { workspace_id: 's1', snapshot: 'nope' }), coded('SNAPSHOT_NOT_FOUND'));
    await assert.rejects(svc.snapshotDelete(alice, { workspace_id: 's1', snapshot: 'one' }), coded('SNAPSHOT_IN_USE'));
  });

  test('a memory snapshot needs a running workspace, and restores its guest memory', async () => {
    await svc.fileWrite(alice, { workspace_id: 's1', path: '/tmp/m', content: 'at snapshot' });
    const frozenBefore = w.guest.freezes.length;
    const m = await svc.snapshotCreate(alice, { workspace_id: 's1', name: 'mem', include_memory: true });
    assert.equal(m.has_memory, true);
    assert.equal(w.guest.freezes.length, frozenBefore, 'never frozen with memory: the saved RAM would hold a frozen root');
    assert.ok(w.guest.execs.some((e) => e.argv?.[0] === 'sync'), 'synced instead');
    await svc.fileWrite(alice, { workspace_id: 's1', path: '/tmp/m', content: 'later' });
    const r = await svc.snapshotRestore(alice, { workspace_id: 's1', snapshot: 'mem' });
    assert.equal(r.memory_restored, true);
    assert.equal((await svc.fileRead(alice, { workspace_id: 's1', path: '/tmp/m' })).content, 'at snapshot');
    await svc.stop(alice, { workspace_id: 's1' });
    await assert.rejects(svc.snapshotCreate(alice, { workspace_id: 's1', name: 'x', include_memory: true }), coded('INVALID_ARGUMENT'));
    await svc.start(alice, { workspace_id: 's1' });
  });

  test('a fork belongs to its caller, keeps its source from being destroyed, and a failed fork leaves nothing', async () => {
    const f = await svc.fork(alice, { workspace_id: 's1', name: 'f1' });
    assert.equal(f.state, 'running');
    assert.equal(f.owner, 'alice');
    assert.ok(w.guest.execs.some((e) => e.argv?.[0] === 'sh' && e.argv.includes('f1')), 'the fork got its own identity');
    await assert.rejects(svc.destroy(alice, { workspace_id: 's1' }), coded('SNAPSHOT_IN_USE'));
    await assert.rejects(svc.fork(bob, { workspace_id: 's1' }), coded('WORKSPACE_NOT_FOUND'));
    const before = readdirSync(path.join(w.config.paths.dataDir, 'disks')).sort();
    w.vmm.failNext('launch');
    await assert.rejects(svc.fork(alice, { workspace_id: 's1', name: 'f2', snapshot: 'one' }), coded('VM_START_FAILED'));
    assert.deepEqual((await svc.list(alice)).map((x) => x.name).sort(), ['f1', 's1']);
    assert.deepEqual(readdirSync(path.join(w.config.paths.dataDir, 'disks')).sort(), before, 'the failed fork left no disk');
    await svc.destroy(alice, { workspace_id: 'f1' });
    await svc.destroy(alice, { workspace_id: 's1' });
    assert.deepEqual(readdirSync(path.join(w.config.paths.dataDir, 'disks')).filter((x) => x.startsWith('ws-')), []);
  });
});

describe('network operations (user mode)', () => {
  test('forwards: duplicates refused, busy ports refused, re-applied on start, removed on request', async () => {
    await svc.create(alice, { name: 'n1' });
    const f = await svc.portForward(alice, { workspace_id: 'n1', guest_port: 80 });
    assert.ok(f.host_port > 0);
    await assert.rejects(svc.portForward(alice, { workspace_id: 'n1', host_port: f.host_port, guest_port: 81 }), coded('PORT_IN_USE'));
    await assert.rejects(svc.portForward(alice, { workspace_id: 'n1', guest_port: 0 }), coded('INVALID_ARGUMENT'));
    await svc.stop(alice, { workspace_id: 'n1' });
    assert.equal(w.vmm.forwards.size, 0);
    await svc.start(alice, { workspace_id: 'n1' });
    assert.equal(w.vmm.forwards.has(f.host_port), true, 'the recorded forward is back after start');
    await svc.portForwardRemove(alice, { workspace_id: 'n1', host_port: f.host_port });
    assert.equal(w.vmm.forwards.size, 0);
    await assert.rejects(svc.portForwardRemove(alice, { workspace_id: 'n1', host_port: f.host_port }), coded('INVALID_ARGUMENT'));
  });

  test('policy: bridge-only fields refused; user mode applies allow_internet live, without a new VM', async () => {
    await assert.rejects(svc.networkPolicy(alice, { workspace_id: 'n1', allow_inter_vm: true }), coded('NOT_SUPPORTED'));
    const launches = w.vmm.vms.length;
    const r = await svc.networkPolicy(alice, { workspace_id: 'n1', allow_internet: true });
    assert.equal(r.applied, 'live');
    assert.equal(w.vmm.vms.length, launches, 'no restart: the egress proxy reads the policy at each connection');
    assert.deepEqual((w.vmm.vms.at(-1)!.spec.net as { restrict?: boolean }).restrict, true, 'slirp stays restricted: the proxy is the only way out');
    assert.equal((await svc.networkPolicy(alice, { workspace_id: 'n1', allow_internet: true })).applied, 'unchanged');
    await svc.stop(alice, { workspace_id: 'n1' });
    assert.equal((await svc.networkPolicy(alice, { workspace_id: 'n1', allow_internet: false })).applied, 'recorded');
    await svc.destroy(alice, { workspace_id: 'n1' });
  });
});
