// Lifetimes on real VMs (src/service/lifetimes.ts): a workspace with a short
// TTL stops on time; an idle one stays up while commands run and stops once
// they stop; neither loses its disk (a file written before the stop is read
// back after a start). Sub-minute windows come from the config, which takes
// fractional minutes; the per-workspace values are set through the service
// operation (whole minutes, 0 = never).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { WorkspaceInfo } from '../../src/service/types.js';
import type { WorkspaceService } from '../../src/service/workspaces.js';
import { vmEnv } from './factory.js';

const TTL_MIN = 0.75; // 45 s
const IDLE_MIN = 0.5; // 30 s
const env = vmEnv('lifetimes', { resources: { default_ttl_minutes: TTL_MIN, default_idle_stop_minutes: IDLE_MIN }, pool: { enabled: false } });
const me = { owner: 'lifetimes-test' };
let svc: WorkspaceService;

before(async () => { svc = await env.open(); });
after(async () => { /* the factory destroys what is left */ });

/** Polls the workspace's state until it is `want` (the rule acts in the service's own timer). */
async function until(ref: string, want: string, ms: number): Promise<{ info: WorkspaceInfo; at: number }> {
  const end = Date.now() + ms;
  for (;;) {
    const info = await svc.info(me, { workspace_id: ref });
    if (info.state === want) return { info, at: Date.now() };
    assert.ok(Date.now() < end, `${ref} still ${info.state} after ${ms} ms; lifetime ${JSON.stringify(info.lifetime)}`);
    await delay(500);
  }
}

describe('lifetimes on real VMs', { timeout: 900_000 }, () => {
  test('a TTL stops the workspace on time and the disk is kept', async () => {
    const w = await svc.create(me, { name: 'ttl' });
    await svc.setLifetime(me, { workspace_id: 'ttl', idle_stop_minutes: 0 }); // only the TTL may stop it
    const expires = Date.parse((await svc.info(me, { workspace_id: 'ttl' })).lifetime.expires_at!);
    assert.ok(expires > Date.now(), 'the deadline is ahead');
    await svc.fileWrite(me, { workspace_id: 'ttl', path: '/root/kept.txt', content: 'written before the TTL\n' });
    await svc.exec(me, { workspace_id: 'ttl', command: 'sync' });
    const { info, at } = await until('ttl', 'stopped', 180_000);
    assert.equal(info.lifetime.stopped_by, 'ttl');
    assert.ok(at >= expires, 'not before the deadline');
    const late = at - expires;
    process.stderr.write(`[lifetimes] TTL stop seen ${late} ms after expires_at\n`);
    assert.ok(late < 60_000, `stopped ${late} ms late`);
    await svc.start(me, { workspace_id: w.workspace_id });
    assert.equal((await svc.fileRead(me, { workspace_id: 'ttl', path: '/root/kept.txt' })).content, 'written before the TTL\n');
    assert.equal((await svc.info(me, { workspace_id: 'ttl' })).lifetime.stopped_by, null, 'a start clears stopped_by');
  });

  test('an idle workspace stays up while commands run, then stops; the disk is kept', async () => {
    await svc.create(me, { name: 'idle' });
    await svc.setLifetime(me, { workspace_id: 'idle', ttl_minutes: 0 }); // only idleness may stop it
    await svc.fileWrite(me, { workspace_id: 'idle', path: '/root/kept.txt', content: 'written before idling\n' });
    await svc.exec(me, { workspace_id: 'idle', command: 'sync' });
    // Activity for longer than the idle window: an exec every 5 s.
    const busyUntil = Date.now() + IDLE_MIN * 60_000 + 15_000;
    let quietFrom = Date.now();
    while (Date.now() < busyUntil) {
      await delay(5_000);
      await svc.exec(me, { workspace_id: 'idle', command: 'true' });
      quietFrom = Date.now(); // the last activity
    }
    assert.equal((await svc.info(me, { workspace_id: 'idle' })).state, 'running', 'commands kept it up past the idle window');
    const { info, at } = await until('idle', 'stopped', 180_000);
    assert.equal(info.lifetime.stopped_by, 'idle');
    assert.ok(at - quietFrom >= IDLE_MIN * 60_000 - 1_000, `stopped ${at - quietFrom} ms after the last command`);
    process.stderr.write(`[lifetimes] idle stop seen ${at - quietFrom} ms after the last command (window ${IDLE_MIN * 60_000} ms)\n`);
    await svc.start(me, { workspace_id: 'idle' });
    assert.equal((await svc.fileRead(me, { workspace_id: 'idle', path: '/root/kept.txt' })).content, 'written before idling\n');
  });
});
