// WorkspaceService rules against real VMs: state machine, quotas, disk size,
// per-owner names, and a VM that dies behind the service's back.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { IsletError } from '../../src/core/errors.js';
import type { WorkspaceInfo } from '../../src/service/types.js';
import type { WorkspaceService } from '../../src/service/workspaces.js';
import { vmEnv } from './factory.js';

const env = vmEnv('ws', { resources: { max_workspaces: 2, max_workspaces_per_owner: 2, max_vcpus: 2, max_disk_gb: 8 } });
const alice = { owner: 'alice' };
const bob = { owner: 'bob' };
const code = (c: string) => (e: unknown) => e instanceof IsletError && e.code === c;
let svc: WorkspaceService;
let a: WorkspaceInfo;

describe('workspace service rules', { timeout: 600_000 }, () => {
  before(async () => {
    svc = await env.open();
    a = await svc.create(alice, { name: 'same', disk_gb: 3 });
  }, { timeout: 300_000 });

  test('disk_gb sizes the overlay and the guest grows its filesystem to it', async () => {
    const r = await svc.exec(alice, { workspace_id: 'same', command: "df -B1M / | awk 'NR==2{print $2}'" });
    const mb = Number(r.stdout.trim());
    assert.ok(mb > 2800 && mb <= 3072, `root filesystem is ${mb} MiB, expected ~3 GiB`);
  });

  test('illegal transitions are STATE_CONFLICT', async () => {
    await assert.rejects(svc.start(alice, { workspace_id: 'same' }), code('STATE_CONFLICT'));
    await svc.stop(alice, { workspace_id: 'same' });
    await assert.rejects(svc.stop(alice, { workspace_id: 'same' }), code('STATE_CONFLICT'));
    await assert.rejects(svc.exec(alice, { workspace_id: 'same', command: 'true' }), code('STATE_CONFLICT'));
    await assert.rejects(svc.fileRead(alice, { workspace_id: 'same', path: '/etc/hostname' }), code('STATE_CONFLICT'));
    assert.equal((await svc.start(alice, { workspace_id: 'same' })).state, 'running');
  });

  test('limits per workspace and per host are QUOTA_EXCEEDED, and nothing is left behind', async () => {
    await assert.rejects(svc.create(alice, { vcpus: 3 }), code('QUOTA_EXCEEDED'));
    await assert.rejects(svc.create(alice, { disk_gb: 9 }), code('QUOTA_EXCEEDED'));
    await assert.rejects(svc.create(alice, { image: 'no-such-image' }), code('IMAGE_NOT_FOUND'));
    const b = await svc.create(bob, { name: 'same' }); // names are per owner
    assert.equal(b.name, 'same');
    await assert.rejects(svc.create(bob, { name: 'third' }), code('QUOTA_EXCEEDED'));
    assert.deepEqual((await svc.list({ owner: 'x', admin: true })).map((w) => w.owner).sort(), ['alice', 'bob']);
    assert.equal((await svc.info(bob, { workspace_id: 'same' })).workspace_id, b.workspace_id);
    assert.equal((await svc.info(alice, { workspace_id: 'same' })).workspace_id, a.workspace_id);
    await assert.rejects(svc.info(bob, { workspace_id: a.workspace_id }), code('WORKSPACE_NOT_FOUND'));
    await assert.rejects(svc.destroy(bob, { workspace_id: a.workspace_id }), code('WORKSPACE_NOT_FOUND'));
  });

  test('a VM killed behind the service\'s back leaves the workspace stopped, with the reason', async () => {
    const info = await svc.info(alice, { workspace_id: 'same' });
    assert.ok(info.pid);
    process.kill(info.pid, 'SIGKILL');
    for (let i = 0; i < 100 && (await svc.info(alice, { workspace_id: 'same' })).state === 'running'; i++) await new Promise((r) => setTimeout(r, 50));
    const after = await svc.info(alice, { workspace_id: 'same' });
    assert.equal(after.state, 'stopped');
    assert.match(after.error ?? '', /exited unexpectedly/);
    assert.equal((await svc.start(alice, { workspace_id: 'same' })).state, 'running');
  });
});
