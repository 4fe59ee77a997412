// CLI exit statuses: 70 (EX_SOFTWARE) means a bug or a failed VM; refusals a
// caller can act on (conflicts, quotas, ports, unsupported modes) must not use it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ERROR_CODES, exitCodeFor, firstLine, StateConflictError, WorkspaceNotFoundError } from '../../src/core/errors.js';

test('conflicts, quotas, busy ports and unsupported modes do not exit 70', () => {
  for (const c of ['STATE_CONFLICT', 'SNAPSHOT_IN_USE', 'PORT_IN_USE', 'QUOTA_EXCEEDED', 'NOT_OWNER', 'NOT_SUPPORTED'] as const) {
    assert.notEqual(exitCodeFor(c), 70, c);
  }
  assert.equal(exitCodeFor('STATE_CONFLICT'), 75);
  assert.equal(exitCodeFor('QUOTA_EXCEEDED'), 77);
  assert.equal(exitCodeFor('INTERNAL'), 70);
  for (const c of ERROR_CODES) assert.ok(exitCodeFor(c) >= 64 && exitCodeFor(c) <= 130, c);
});

test('leaf errors carry their code and the states involved', () => {
  const e = StateConflictError.of({ id: 'ws-1', name: 'web', state: 'paused' }, 'stop', ['running'], 'start it');
  assert.equal(e.code, 'STATE_CONFLICT');
  assert.equal(e.message, 'cannot stop workspace "web": it is paused (allowed: running)');
  assert.deepEqual(e.details, { workspace: 'ws-1', state: 'paused', allowed: ['running'] });
  assert.equal(new WorkspaceNotFoundError('x').code, 'WORKSPACE_NOT_FOUND');
  assert.equal(firstLine(new Error('one\ntwo')), 'one');
  assert.equal(firstLine('plain'), 'plain');
});
