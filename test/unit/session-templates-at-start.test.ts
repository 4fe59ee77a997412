// [pool] session_templates (docs/config.md): a server opened with its pool
// (as `islet serve` does) builds those images' session templates in the
// background, without holding up its open; a library or test that opens the
// service without the pool builds none. Fake drivers.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { FRONT_IN_GUEST } from '../../src/service/session-template.js';
import { WorkspaceService } from '../../src/service/workspaces.js';
import { type FakeWorld, fakeWorld } from '../fixtures/fake-drivers.js';

const sessionTemplates = (w: FakeWorld) => w.vmm.vms.filter((v) => v.spec.hostname === 'islet-template' && FRONT_IN_GUEST in ((v.guest.files ?? {}) as object));

async function world(): Promise<{ w: FakeWorld; front: () => Promise<{ path: string; key: string }> }> {
  // No pool VMs (max_size 0): only the session template boots.
  const w = await fakeWorld({ resources: { max_memory_mb: 2048 }, pool: { template: true, session_templates: ['agent-ready'], max_size: 0, target_free: 0 } });
  const file = path.join(w.dir, 'front');
  await writeFile(file, Buffer.from('\x7fELF a stand-in front binary'));
  return { w, front: async () => ({ path: file, key: 'front-1' }) };
}

test('a service opened with its pool builds the configured session templates in the background', async () => {
  const { w, front } = await world();
  const progress: string[] = [];
  const svc = await WorkspaceService.open(w.config, { runtime: w.deps, pool: true, progress: (m) => progress.push(m), sessions: { front } });
  try {
    for (let i = 0; i < 250 && !progress.some((m) => m.includes('session template of agent-ready ready')); i++) await delay(20);
    assert.ok(progress.some((m) => m.includes('session template of agent-ready ready')), progress.join('\n'));
    assert.equal(sessionTemplates(w).length, 1);
    const t = await svc.sessionPrepareTemplate('agent-ready');
    assert.match(path.basename(t.dir), /^agent-ready-opencode-/);
    assert.equal(sessionTemplates(w).length, 1, 'found in the cache, not built again');
  } finally {
    await svc.close();
    await w.cleanup();
  }
});

test('a service opened without its pool (a library, a test, one-shot commands) builds none', async () => {
  const { w, front } = await world();
  const svc = await WorkspaceService.open(w.config, { runtime: w.deps, sessions: { front } });
  try {
    await delay(300);
    assert.equal(sessionTemplates(w).length, 0);
  } finally {
    await svc.close();
    await w.cleanup();
  }
});
