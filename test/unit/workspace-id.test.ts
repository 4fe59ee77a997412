// Workspace ids are meant to be unique across hosts without coordination:
// 64 random bits in a fixed form that every consumer (reconcile, TAP names,
// the REST path parameter, names' reserved prefix) accepts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newWorkspaceId, WORKSPACE_ID_FORM, WorkspaceId, WorkspaceName } from '../../src/core/schemas.js';

test('new ids carry 64 random bits in the ws-<16 hex> form, and the 8-hex form of earlier hosts is still recognised', () => {
  const ids = new Set<string>();
  for (let i = 0; i < 10_000; i++) {
    const id = newWorkspaceId();
    assert.match(id, /^ws-[0-9a-f]{16}$/);
    assert.ok(WORKSPACE_ID_FORM.test(id));
    assert.ok(WorkspaceId.safeParse(id).success, 'an id is accepted where a workspace is named');
    assert.equal(WorkspaceName.safeParse(id).success, false, 'no name can look like an id');
    ids.add(id);
  }
  assert.equal(ids.size, 10_000);
  // Every hex digit position varies: the bits are random, not a counter or a host prefix.
  for (let pos = 3; pos < 19; pos++) assert.ok(new Set([...ids].map((id) => id[pos])).size > 8, `position ${pos}`);
  assert.ok(WORKSPACE_ID_FORM.test('ws-0a1b2c3d'));
  for (const bad of ['ws-0a1b2c3', 'ws-0123456789abcdeF', 'ws-0123456789abcdef0', 'ws-0a1b2c3d;']) assert.equal(WORKSPACE_ID_FORM.test(bad), false, bad);
});
