import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { AccelProbe, chooseAccel, tscKhz } from '../../src/vmm/accel.js';

function probe(over: Partial<AccelProbe> & { canaryOk?: boolean } = {}): AccelProbe & { canaryRuns: number } {
  const p = {
    configured: 'auto' as const,
    kvmDevice: async () => true,
    cacheKey: 'k1',
    canaryRuns: 0,
    canary: async () => {
      p.canaryRuns++;
      return { ok: over.canaryOk ?? false, detail: 'no hello', ms: 5 };
    },
    ...over,
  };
  return p;
}

test('configured accelerator wins without a canary', async () => {
  const p = probe({ configured: 'tcg' });
  assert.equal((await chooseAccel(p)).accel, 'tcg');
  assert.equal(p.canaryRuns, 0);
});

test('no usable /dev/kvm means TCG without a canary', async () => {
  const p = probe({ kvmDevice: async () => false, canaryOk: true });
  const c = await chooseAccel(p);
  assert.equal(c.accel, 'tcg');
  assert.match(c.reason, /\/dev\/kvm/);
  assert.equal(p.canaryRuns, 0);
});

test('a failed KVM canary falls back to TCG; a good one picks KVM', async () => {
  assert.equal((await chooseAccel(probe({ canaryOk: false }))).accel, 'tcg');
  assert.equal((await chooseAccel(probe({ canaryOk: true }))).accel, 'kvm');
});

test('the verdict is cached per key and re-probed when the key changes', async () => {
  const cacheFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'islet-accel-')), 'accel.json');
  const p1 = probe({ canaryOk: true, cacheFile });
  assert.equal((await chooseAccel(p1)).cached, false);
  const p2 = probe({ canaryOk: false, cacheFile });
  const c2 = await chooseAccel(p2);
  assert.equal(c2.accel, 'kvm');
  assert.equal(c2.cached, true);
  assert.equal(p2.canaryRuns, 0);
  const p3 = probe({ canaryOk: false, cacheFile, cacheKey: 'k2' });
  assert.equal((await chooseAccel(p3)).accel, 'tcg');
  assert.equal(p3.canaryRuns, 1);
});

test('tsc_early_khz comes from cpu MHz', () => {
  assert.equal(tscKhz('processor\t: 0\ncpu MHz\t\t: 2399.998\n'), 2399998);
  assert.equal(tscKhz('nothing here'), undefined);
});
