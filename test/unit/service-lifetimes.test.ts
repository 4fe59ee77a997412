// Workspace lifetimes (src/service/lifetimes.ts) on the fake drivers: the
// TTL stops a running workspace on time, the idle stop waits for a quiet
// period (exec in flight and process output count as activity), the
// retention destroys a stopped one, a stop keeps the disk, and the
// deadlines survive a restart of the service. Passes are driven with an
// explicit time (tick(now)); one test lets the real timer act.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { IsletError } from '../../src/core/errors.js';
import type { WorkspaceService } from '../../src/service/workspaces.js';
import { type FakeWorld, fakeService, fakeWorld } from '../fixtures/fake-drivers.js';

const alice = { owner: 'alice' };
const bob = { owner: 'bob' };
const MIN = 60_000;
const coded = (c: string) => (e: unknown) => e instanceof IsletError && e.code === c;

let w: FakeWorld;
let svc: WorkspaceService;
const disks = () => readdirSync(path.join(w.config.paths.dataDir, 'disks')).filter((f) => f.startsWith('ws-'));
const state = async (id: string) => (await svc.info(alice, { workspace_id: id })).state;

before(async () => {
  w = await fakeWorld({ resources: { default_idle_stop_minutes: 10 }, network: { mode: 'none' } }); // none: no egress helper to build
  svc = await fakeService(w);
});
after(async () => {
  await svc.close();
  await w.cleanup();
});

describe('ttl', () => {
  test('a workspace created with ttl_minutes stops on time, keeps its disk, and a start renews the deadline', async () => {
    const t0 = Date.now();
    const ws = await svc.create(alice, { name: 't1', ttl_minutes: 5 });
    const exp = Date.parse(ws.lifetime.expires_at!);
    assert.ok(exp >= t0 + 5 * MIN && exp <= Date.now() + 5 * MIN, `expires_at ${ws.lifetime.expires_at}`);
    assert.equal(ws.lifetime.ttl_minutes, 5);
    await svc.fileWrite(alice, { workspace_id: 't1', path: '/root/keep', content: 'kept' });
    svc.lifetimes.hold(ws.workspace_id)(); // activity: the idle rule (10 min) is not what stops it
    assert.deepEqual(await svc.lifetimes.tick(exp - 1_000), [], 'not before the deadline');
    assert.equal(await state('t1'), 'running');
    assert.deepEqual(await svc.lifetimes.tick(exp + 1), [`${ws.workspace_id}: stopped (ttl)`]);
    const stopped = await svc.info(alice, { workspace_id: 't1' });
    assert.equal(stopped.state, 'stopped');
    assert.equal(stopped.lifetime.stopped_by, 'ttl');
    assert.equal(stopped.lifetime.expires_at, null, 'a stopped workspace has no TTL deadline');
    assert.ok(disks().some((f) => f.startsWith(ws.workspace_id)), 'the disk is kept');
    const again = await svc.start(alice, { workspace_id: 't1' });
    assert.equal(again.lifetime.stopped_by, null);
    assert.ok(Date.parse(again.lifetime.expires_at!) > exp, 'the TTL counts from the new start');
    await svc.destroy(alice, { workspace_id: 't1' });
  });

  test('ttl 0 at create means never; workspace_set_lifetime sets a TTL from now, null goes back to the default', async () => {
    const ws = await svc.create(alice, { name: 't2', ttl_minutes: 0 });
    assert.equal(ws.lifetime.expires_at, null);
    const t = Date.now();
    const l = await svc.setLifetime(alice, { workspace_id: 't2', ttl_minutes: 2 });
    assert.ok(Math.abs(Date.parse(l.expires_at!) - (t + 2 * MIN)) < 5_000, `expires_at ${l.expires_at}`);
    const d = await svc.setLifetime(alice, { workspace_id: 't2', ttl_minutes: null, idle_stop_minutes: 0 });
    assert.equal(d.ttl_minutes, 0, 'the [resources] default (0)');
    assert.equal(d.expires_at, null);
    assert.equal(d.idle_stop_minutes, 0);
    assert.equal(d.idle_stop_at, null, 'idle stop off');
    assert.deepEqual(await svc.lifetimes.tick(Date.now() + 1000 * MIN), [], 'nothing is ever due');
    await assert.rejects(svc.setLifetime(alice, { workspace_id: 't2' }), coded('INVALID_ARGUMENT'));
    await assert.rejects(svc.setLifetime(bob, { workspace_id: 't2', ttl_minutes: 1 }), coded('WORKSPACE_NOT_FOUND'));
    await svc.destroy(alice, { workspace_id: 't2' });
  });
});

describe('idle stop', () => {
  test('the [resources] default applies; activity moves the deadline; an exec in flight holds it', async () => {
    const ws = await svc.create(alice, { name: 'i1' });
    const id = ws.workspace_id;
    assert.equal(ws.lifetime.idle_stop_minutes, 10);
    const at0 = Date.parse(ws.lifetime.idle_stop_at!);
    await delay(5);
    await svc.exec(alice, { workspace_id: 'i1', command: 'true' });
    const at1 = Date.parse((await svc.info(alice, { workspace_id: 'i1' })).lifetime.idle_stop_at!);
    assert.ok(at1 > at0, 'an exec moves the idle deadline');
    const release = svc.lifetimes.hold(id);
    assert.deepEqual(await svc.lifetimes.tick(at1 + MIN), [], 'an exec in flight is activity');
    release();
    const at2 = Date.parse((await svc.info(alice, { workspace_id: 'i1' })).lifetime.idle_stop_at!);
    assert.deepEqual(await svc.lifetimes.tick(at2 - 1_000), []);
    assert.deepEqual(await svc.lifetimes.tick(at2 + 1), [`${id}: stopped (idle)`]);
    const info = await svc.info(alice, { workspace_id: 'i1' });
    assert.equal(info.state, 'stopped');
    assert.equal(info.lifetime.stopped_by, 'idle');
    assert.equal(info.lifetime.idle_stop_at, null);
    await svc.destroy(alice, { workspace_id: 'i1' });
  });

  test('background process output counts as activity; a quiet process does not', async () => {
    const ws = await svc.create(alice, { name: 'i2' });
    const id = ws.workspace_id;
    let bytes = 100;
    const orig = svc.lifetimes.outputMark;
    svc.lifetimes.outputMark = async (x) => (x === id ? bytes : undefined);
    try {
      const at = Date.parse(ws.lifetime.idle_stop_at!);
      assert.deepEqual(await svc.lifetimes.tick(at + 1), [], 'first check: output already written counts once');
      const next = Date.parse((await svc.info(alice, { workspace_id: 'i2' })).lifetime.idle_stop_at!);
      assert.equal(next, at + 1 + 10 * MIN, 'the deadline moved a full window from the check');
      bytes = 250;
      assert.deepEqual(await svc.lifetimes.tick(next + 1), [], 'new output: still active');
      const last = Date.parse((await svc.info(alice, { workspace_id: 'i2' })).lifetime.idle_stop_at!);
      assert.deepEqual(await svc.lifetimes.tick(last + 1), [`${id}: stopped (idle)`], 'no new output for a window: stopped');
    } finally {
      svc.lifetimes.outputMark = orig;
    }
    await svc.destroy(alice, { workspace_id: 'i2' });
  });

  test('reading workspace_info or listing is not activity', async () => {
    const ws = await svc.create(alice, { name: 'i3' });
    const at = ws.lifetime.idle_stop_at;
    await delay(5);
    await svc.info(alice, { workspace_id: 'i3' });
    await svc.list(alice);
    assert.equal((await svc.info(alice, { workspace_id: 'i3' })).lifetime.idle_stop_at, at);
    await svc.destroy(alice, { workspace_id: 'i3' });
  });
});

describe('retention', () => {
  test('a stopped workspace is destroyed retention_minutes after it stopped; a running one never', async () => {
    const ws = await svc.create(alice, { name: 'r1' });
    const id = ws.workspace_id;
    await svc.setLifetime(alice, { workspace_id: 'r1', retention_minutes: 60, idle_stop_minutes: 0 });
    assert.deepEqual(await svc.lifetimes.tick(Date.now() + 120 * MIN), [], 'running: retention does not apply');
    const s = await svc.stop(alice, { workspace_id: 'r1' });
    const at = Date.parse(s.lifetime.destroy_at!);
    assert.ok(Math.abs(at - (Date.now() + 60 * MIN)) < 5_000, `destroy_at ${s.lifetime.destroy_at}`);
    assert.deepEqual(await svc.lifetimes.tick(at - 1_000), []);
    assert.ok(disks().some((f) => f.startsWith(id)));
    assert.deepEqual(await svc.lifetimes.tick(at + 1), [`${id}: destroyed (retention)`]);
    await assert.rejects(svc.info(alice, { workspace_id: 'r1' }), coded('WORKSPACE_NOT_FOUND'));
    assert.ok(!disks().some((f) => f.startsWith(id)), 'the disk went with it');
  });

  test('a destroy the service refuses (a fork uses a snapshot) is not retried at once and breaks nothing', async () => {
    const src = await svc.create(alice, { name: 'r2' });
    await svc.snapshotCreate(alice, { workspace_id: 'r2', name: 's' });
    await svc.fork(alice, { workspace_id: 'r2', snapshot: 's', name: 'r2-fork' });
    await svc.setLifetime(alice, { workspace_id: 'r2', retention_minutes: 1 });
    await svc.stop(alice, { workspace_id: 'r2' });
    const t = Date.now() + 2 * MIN;
    assert.deepEqual(await svc.lifetimes.tick(t), []);
    assert.equal(await state('r2'), 'stopped');
    assert.deepEqual(await svc.lifetimes.tick(t + 1_000), [], 'not retried on the next pass');
    await svc.destroy(alice, { workspace_id: 'r2-fork' });
    await svc.destroy(alice, { workspace_id: src.workspace_id });
  });
});

describe('persistence and the timer', () => {
  test('deadlines and the last activity survive a restart of the service', async () => {
    const ws = await svc.create(alice, { name: 'p1', ttl_minutes: 30 });
    await svc.exec(alice, { workspace_id: 'p1', command: 'true' });
    const before = (await svc.info(alice, { workspace_id: 'p1' })).lifetime;
    await svc.close();
    svc = await fakeService(w);
    const afterRestart = (await svc.info(alice, { workspace_id: 'p1' })).lifetime;
    assert.equal(afterRestart.expires_at, before.expires_at);
    assert.equal(afterRestart.last_active_at, before.last_active_at);
    assert.equal(afterRestart.idle_stop_at, before.idle_stop_at);
    assert.deepEqual(await svc.lifetimes.tick(Date.parse(before.expires_at!) + 1), [`${ws.workspace_id}: stopped (ttl)`]);
    await svc.destroy(alice, { workspace_id: 'p1' });
  });

  test('the service\'s own timer stops a workspace whose TTL passed (fractional config minutes)', async () => {
    const w2 = await fakeWorld({ resources: { default_ttl_minutes: 0.01 }, network: { mode: 'none' } }); // 0.6 s
    const s2 = await fakeService(w2);
    try {
      const ws = await s2.create(alice, { name: 'timer' });
      assert.ok(ws.lifetime.expires_at);
      const end = Date.now() + 10_000;
      while ((await s2.info(alice, { workspace_id: 'timer' })).state !== 'stopped') {
        assert.ok(Date.now() < end, 'the timer did not stop it within 10 s');
        await delay(100);
      }
      const info = await s2.info(alice, { workspace_id: 'timer' });
      assert.equal(info.lifetime.stopped_by, 'ttl');
      assert.ok(existsSync(path.join(w2.config.paths.dataDir, 'disks')) && readdirSync(path.join(w2.config.paths.dataDir, 'disks')).some((f) => f.startsWith(ws.workspace_id)));
    } finally {
      await s2.close();
      await w2.cleanup();
    }
  });
});
