// What a timed-out workspace reports after its health probe (issue 12 #9).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { livenessNote } from '../../src/service/liveness.js';

test('no answer is unresponsive, a high load overloaded, a normal load nothing', () => {
  assert.match(livenessNote({ ok: false, why: 'GUEST_TIMEOUT' }, 1) ?? '', /^unresponsive: .*GUEST_TIMEOUT.*workspace_stop/);
  assert.match(livenessNote({ ok: true, load1: 250 }, 2) ?? '', /^overloaded: .*250\.0 on 2 vCPU/);
  assert.equal(livenessNote({ ok: true, load1: 3 }, 1), undefined);
  assert.equal(livenessNote({ ok: true, load1: undefined }, 1), undefined);
});
