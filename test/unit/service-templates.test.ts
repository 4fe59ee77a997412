// Template snapshots and the warm pool on the fake drivers (no QEMU): a
// create is served by restoring the shape's template, each restored guest
// gets its own identity, a failed restore falls back to a boot, and a pool
// VM is handed over to a create.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { WorkspaceService } from '../../src/service/workspaces.js';
import { type FakeWorld, fakeService, fakeWorld } from '../fixtures/fake-drivers.js';

const alice = { owner: 'alice' };
let w: FakeWorld;
let svc: WorkspaceService;
before(async () => {
  w = await fakeWorld({ pool: { template: true } });
  svc = await fakeService(w);
});
after(async () => {
  await svc.close();
  await w.cleanup();
});

test('creates restore the shape\'s template (built once, its RAM in a file), each with its own identity', async () => {
  await svc.create(alice, { name: 't1' });
  await svc.create(alice, { name: 't2' });
  const launched = w.vmm.vms.map((v) => ({ host: v.spec.hostname, incoming: v.spec.incoming === true, ram: v.spec.ramFile }));
  assert.equal(launched.filter((l) => l.host === 'islet-template').length, 1, 'one template build');
  assert.deepEqual(launched.filter((l) => l.host !== 'islet-template').map((l) => [l.host, l.incoming, l.ram?.shared]), [['t1', true, false], ['t2', true, false]]);
  const identity = w.guest.execs.filter((e) => e.argv?.[0] === 'sh' && e.argv[4] !== undefined).map((e) => e.argv![4]);
  assert.deepEqual(identity, ['t1', 't2'], 'each restored guest was given its hostname');
});

test('a failed restore falls back to a cold boot', async () => {
  w.vmm.failNext('loadState');
  const ws = await svc.create(alice, { name: 't3' });
  assert.equal(ws.state, 'running');
  assert.equal(w.vmm.vms.at(-1)!.spec.incoming, false, 'booted, not restored');
  for (const x of await svc.list(alice)) await svc.destroy(alice, { workspace_id: x.workspace_id });
});
