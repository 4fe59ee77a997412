// WorkspaceService's own rules on the fake drivers (no QEMU): the state
// table, quotas, ownership, and the rollback of failed creates and boots.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GuestDisconnectedError, IsletError } from '../../src/core/errors.js';
import type { WorkspaceService } from '../../src/service/workspaces.js';
import { TRANSITIONS } from '../../src/service/transitions.js';
import { type FakeWorld, fakeService, fakeWorld } from '../fixtures/fake-drivers.js';

const alice = { owner: 'alice' };
const bob = { owner: 'bob' };
const admin = { owner: 'root', admin: true };
const coded = (c: string) => (e: unknown) => e instanceof IsletError && e.code === c;

let w: FakeWorld;
let svc: WorkspaceService;
const disks = () => readdirSync(path.join(w.config.paths.dataDir, 'disks')).filter((f) => f.startsWith('ws-'));

before(async () => {
  w = await fakeWorld({ resources: { max_workspaces: 6, max_workspaces_per_owner: 4, max_vcpus: 2, max_memory_mb: 1024, max_disk_gb: 4 } });
  svc = await fakeService(w);
});
after(async () => {
  await svc.close();
  await w.cleanup();
});

describe('the state table', () => {
  test('create boots a running workspace; stop, start, pause, resume move it as the table says', async () => {
    const ws = await svc.create(alice, { name: 'a1' });
    assert.equal(ws.state, 'running');
    assert.equal(w.vmm.running().length, 1);
    assert.ok(w.guest.clockSyncs >= 1, 'the clock is synced after boot');
    assert.equal((await svc.stop(alice, { workspace_id: 'a1' })).state, 'stopped');
    assert.equal(w.vmm.running().length, 0);
    assert.equal((await svc.start(alice, { workspace_id: 'a1' })).state, 'running');
    await svc.fileWrite(alice, { workspace_id: 'a1', path: '/tmp/x', content: 'kept in memory' });
    const p = await svc.pause(alice, { workspace_id: 'a1' });
    assert.equal(p.state, 'paused');
    assert.equal(w.vmm.running().length, 0, 'a paused workspace has no VM');
    assert.equal((await svc.resume(alice, { workspace_id: 'a1' })).state, 'running');
    assert.equal((await svc.fileRead(alice, { workspace_id: 'a1', path: '/tmp/x' })).content, 'kept in memory', 'memory came back');
    await svc.pause(alice, { workspace_id: 'a1' });
    assert.equal((await svc.start(alice, { workspace_id: 'a1' })).state, 'running', 'start resumes a paused workspace');
    await svc.pause(alice, { workspace_id: 'a1' });
    assert.equal((await svc.stop(alice, { workspace_id: 'a1' })).state, 'stopped', 'stop discards the saved memory');
    assert.deepEqual(readdirSync(path.join(w.config.paths.dataDir, 'memory')), []);
    await svc.destroy(alice, { workspace_id: 'a1' });
  });

  test('every operation refused in a state the table does not allow, with current and allowed states', async () => {
    await svc.create(alice, { name: 'a2' });
    const checks: Array<[string, () => Promise<unknown>, keyof typeof TRANSITIONS]> = [
      ['start running', () => svc.start(alice, { workspace_id: 'a2' }), 'start'],
      ['resume running', () => svc.resume(alice, { workspace_id: 'a2' }), 'resume'],
    ];
    for (const [what, call, op] of checks) {
      const e = await call().then(() => undefined, (x: unknown) => x);
      assert.ok(e instanceof IsletError && e.code === 'STATE_CONFLICT', `${what}: ${String(e)}`);
      assert.equal(e.details?.state, 'running', what);
      assert.deepEqual(e.details?.allowed, [...TRANSITIONS[op].allowed], what);
    }
    await svc.stop(alice, { workspace_id: 'a2' });
    for (const [what, call, op] of [
      ['stop stopped', () => svc.stop(alice, { workspace_id: 'a2' }), 'stop'],
      ['pause stopped', () => svc.pause(alice, { workspace_id: 'a2' }), 'pause'],
      ['resume stopped', () => svc.resume(alice, { workspace_id: 'a2' }), 'resume'],
      ['exec stopped', () => svc.exec(alice, { workspace_id: 'a2', command: 'true' }), 'use'],
      ['read stopped', () => svc.fileRead(alice, { workspace_id: 'a2', path: '/x' }), 'use'],
      ['forward stopped', () => svc.portForward(alice, { workspace_id: 'a2', guest_port: 80 }), 'use'],
    ] as Array<[string, () => Promise<unknown>, keyof typeof TRANSITIONS]>) {
      const e = await call().then(() => undefined, (x: unknown) => x);
      assert.ok(e instanceof IsletError && e.code === 'STATE_CONFLICT', `${what}: ${String(e)}`);
      assert.equal(e.details?.state, 'stopped', what);
      assert.deepEqual(e.details?.allowed, [...TRANSITIONS[op].allowed], what);
    }
    await svc.destroy(alice, { workspace_id: 'a2' });
  });

  test('a VM that dies on its own leaves the workspace stopped with the reason', async () => {
    await svc.create(alice, { name: 'a3' });
    w.vmm.running()[0]!.exit({ code: 1, signal: null });
    await new Promise((r) => setImmediate(r));
    const info = await svc.info(alice, { workspace_id: 'a3' });
    assert.equal(info.state, 'stopped');
    assert.match(info.error ?? '', /exited unexpectedly \(code 1/);
    await svc.destroy(alice, { workspace_id: 'a3' });
  });
});

describe('rollback', () => {
  test('a create whose VM fails to launch leaves no row, disk or VM', async () => {
    w.vmm.failNext('launch');
    await assert.rejects(svc.create(alice, { name: 'r1' }), coded('VM_START_FAILED'));
    assert.deepEqual(await svc.list(alice), []);
    assert.deepEqual(disks(), []);
    assert.equal(w.vmm.running().length, 0);
  });

  test('a create whose guest never answers times out and is undone', async () => {
    w.vmm.failNext('boot');
    await assert.rejects(svc.create(alice, { name: 'r2' }), coded('GUEST_TIMEOUT'));
    assert.deepEqual(await svc.list(alice), []);
    assert.deepEqual(disks(), []);
    assert.equal(w.vmm.running().length, 0, 'the hung VM was killed');
  });

  test('a failed start marks the workspace failed with the reason; a later start recovers', async () => {
    await svc.create(alice, { name: 'r3' });
    await svc.stop(alice, { workspace_id: 'r3' });
    w.vmm.failNext('launch');
    await assert.rejects(svc.start(alice, { workspace_id: 'r3' }), coded('VM_START_FAILED'));
    const info = await svc.info(alice, { workspace_id: 'r3' });
    assert.equal(info.state, 'failed');
    assert.match(info.error ?? '', /fake launch failure/);
    assert.equal((await svc.start(alice, { workspace_id: 'r3' })).state, 'running');
    await svc.destroy(alice, { workspace_id: 'r3' });
  });

  test('a failed resume keeps the workspace paused, with its memory, and the reason', async () => {
    await svc.create(alice, { name: 'r4' });
    await svc.pause(alice, { workspace_id: 'r4' });
    w.vmm.failNext('launch');
    await assert.rejects(svc.resume(alice, { workspace_id: 'r4' }), coded('VM_START_FAILED'));
    const info = await svc.info(alice, { workspace_id: 'r4' });
    assert.equal(info.state, 'paused');
    assert.equal(readdirSync(path.join(w.config.paths.dataDir, 'memory')).length, 1);
    assert.equal((await svc.resume(alice, { workspace_id: 'r4' })).state, 'running');
    await svc.destroy(alice, { workspace_id: 'r4' });
  });

  test('a failed pause (the save fails) leaves the workspace running on its VM', async () => {
    await svc.create(alice, { name: 'r5' });
    w.vmm.failNext('saveState', new GuestDisconnectedError('fake save failure'));
    await assert.rejects(svc.pause(alice, { workspace_id: 'r5' }), coded('GUEST_DISCONNECTED'));
    assert.equal((await svc.info(alice, { workspace_id: 'r5' })).state, 'running');
    assert.equal((await svc.exec(alice, { workspace_id: 'r5', command: 'true' })).exit_code, 0);
    assert.deepEqual(readdirSync(path.join(w.config.paths.dataDir, 'memory')), []);
    await svc.destroy(alice, { workspace_id: 'r5' });
  });
});

describe('quotas', () => {
  test('resource limits are checked before any row or VM exists', async () => {
    await assert.rejects(svc.create(alice, { vcpus: 3 }), coded('QUOTA_EXCEEDED'));
    await assert.rejects(svc.create(alice, { memory_mb: 2048 }), coded('QUOTA_EXCEEDED'));
    await assert.rejects(svc.create(alice, { disk_gb: 5 }), coded('QUOTA_EXCEEDED'));
    assert.deepEqual(await svc.list(admin), []);
    assert.equal(w.vmm.running().length, 0);
  });

  test('per-owner and host workspace counts; names are unique per owner', async () => {
    for (let i = 0; i < 4; i++) await svc.create(alice, { name: `q${i}` });
    await assert.rejects(svc.create(alice, { name: 'q4' }), coded('QUOTA_EXCEEDED'));
    await assert.rejects(svc.create(bob, { name: 'q0' }).then(() => svc.create(bob, { name: 'q0' })), coded('INVALID_ARGUMENT'));
    await svc.create(bob, { name: 'b1' });
    await assert.rejects(svc.create(bob, { name: 'b2' }), coded('QUOTA_EXCEEDED'), 'the host holds at most 6');
    assert.equal(w.vmm.running().length, 6, 'refused creates booted nothing');
    for (const ws of await svc.list(admin)) await svc.destroy(admin, { workspace_id: ws.workspace_id });
  });
});

describe('ownership', () => {
  test('another owner\'s workspace reads as not found for every operation; an admin reaches it', async () => {
    const ws = await svc.create(alice, { name: 'mine' });
    const calls: Array<() => Promise<unknown>> = [
      () => svc.info(bob, { workspace_id: ws.workspace_id }),
      () => svc.info(bob, { workspace_id: 'mine' }),
      () => svc.exec(bob, { workspace_id: ws.workspace_id, command: 'true' }),
      () => svc.stop(bob, { workspace_id: ws.workspace_id }),
      () => svc.start(bob, { workspace_id: ws.workspace_id }),
      () => svc.destroy(bob, { workspace_id: ws.workspace_id }),
      () => svc.pause(bob, { workspace_id: ws.workspace_id }),
      () => svc.snapshotCreate(bob, { workspace_id: ws.workspace_id, name: 's' }),
      () => svc.snapshotList(bob, { workspace_id: ws.workspace_id }),
      () => svc.fork(bob, { workspace_id: ws.workspace_id }),
      () => svc.portForward(bob, { workspace_id: ws.workspace_id, guest_port: 80 }),
      () => svc.networkPolicy(bob, { workspace_id: ws.workspace_id }),
      () => svc.fileWrite(bob, { workspace_id: ws.workspace_id, path: '/x', content: 'y' }),
    ];
    for (const call of calls) await assert.rejects(call(), coded('WORKSPACE_NOT_FOUND'));
    assert.deepEqual(await svc.list(bob), []);
    assert.equal((await svc.info(admin, { workspace_id: ws.workspace_id })).owner, 'alice');
    assert.equal((await svc.list(admin)).length, 1);
    await svc.destroy(admin, { workspace_id: ws.workspace_id });
    assert.equal(existsSync(path.join(w.config.paths.dataDir, 'disks', `${ws.workspace_id}.qcow2`)), false);
  });
});

describe('reopening the service', () => {
  test('running VMs are re-attached; one that died meanwhile is marked stopped', async () => {
    await svc.create(alice, { name: 'keep' });
    await svc.create(alice, { name: 'dies' });
    await svc.close();
    assert.equal(w.vmm.running().length, 2, 'closing the service leaves the VMs running');
    const dying = w.vmm.running().find((v) => v.spec.hostname === 'dies')!;
    dying.exit({ code: null, signal: 'SIGKILL' });
    svc = await fakeService(w);
    assert.equal((await svc.info(alice, { workspace_id: 'keep' })).state, 'running');
    assert.equal((await svc.exec(alice, { workspace_id: 'keep', command: 'true' })).exit_code, 0, 'the re-attached agent answers');
    const gone = await svc.info(alice, { workspace_id: 'dies' });
    assert.equal(gone.state, 'stopped');
    assert.match(gone.error ?? '', /gone when islet started/);
    await svc.destroy(alice, { workspace_id: 'keep' });
    await svc.destroy(alice, { workspace_id: 'dies' });
  });
});
