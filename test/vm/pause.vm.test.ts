// Pause/resume with memory state against a real VM: a background counter
// survives pause -> resume and keeps counting, the QEMU process is gone while
// paused (host memory freed), and the guest clock is resynced on resume.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { IsletError } from '../../src/core/errors.js';
import type { WorkspaceService } from '../../src/service/workspaces.js';
import { destroyAll, vmEnv } from './factory.js';

const env = vmEnv('pause');
const dataDir = env.dir;
const me = { owner: 'pause-test' };
const coded = (c: string) => (e: unknown) => e instanceof IsletError && e.code === c;
let svc: WorkspaceService;

async function sh(command: string): Promise<string> {
  const r = await svc.exec(me, { workspace_id: 'p', command, timeout_ms: 60_000 });
  assert.equal(r.exit_code, 0, `${command}: ${r.stderr}`);
  return r.stdout;
}
const count = async () => Number((await sh('cat /tmp/count')).trim());

describe('pause and resume with memory state', { timeout: 600_000 }, () => {
  before(async () => {
    svc = await env.open();
    await svc.create(me, { name: 'p' });
  }, { timeout: 300_000 });
  after(async () => {
    assert.deepEqual(await destroyAll(svc), []);
    assert.deepEqual(readdirSync(path.join(dataDir, 'memory')), []);
  });

  test('a background counter survives pause -> resume and keeps counting; the clock is resynced', async () => {
    // A counter in shell memory (i), written every 100 ms: a reboot would restart it from 1.
    await sh("setsid sh -c 'i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done' >/dev/null 2>&1 < /dev/null &");
    await new Promise((r) => setTimeout(r, 1500));
    const before = await count();
    assert.ok(before > 3, `counting: ${before}`);
    const pid = (await svc.info(me, { workspace_id: 'p' })).pid!;
    const p = await svc.pause(me, { workspace_id: 'p' });
    assert.equal(p.state, 'paused');
    assert.equal(p.pid, null);
    // Gone, or a zombie not yet reaped by this process (its parent): either way its memory is freed.
    const st = existsSync(`/proc/${pid}`) ? readFileSync(`/proc/${pid}/status`, 'utf8') : '';
    assert.ok(st === '' || /^State:\s+Z/m.test(st), 'QEMU is gone while paused: its memory is freed');
    await assert.rejects(svc.exec(me, { workspace_id: 'p', command: 'true' }), coded('STATE_CONFLICT'));
    await new Promise((r) => setTimeout(r, 2000)); // the guest clock must catch up on resume

    const r = await svc.resume(me, { workspace_id: 'p' });
    assert.equal(r.state, 'running');
    const c1 = await count();
    assert.ok(c1 >= before, `the counter continued from ${before}, not restarted: ${c1}`);
    await new Promise((r) => setTimeout(r, 1000));
    const c2 = await count();
    assert.ok(c2 > c1, `still counting: ${c1} -> ${c2}`);
    const guest = Number((await sh('date +%s.%N')).trim()) * 1000;
    assert.ok(Math.abs(guest - Date.now()) < 1000, `guest clock off by ${guest - Date.now()} ms`);
  });

  test('a memory snapshot restores and forks with processes running, not rebooted', async () => {
    const s = await svc.snapshotCreate(me, { workspace_id: 'p', name: 'm1', include_memory: true });
    assert.equal(s.has_memory, true);
    const atSnap = await count();
    await sh('echo later > /root/after.txt; sync');
    // Let the counter move well past the snapshot (under TCG on a busy host it may be slower than 10/s).
    let beforeRestore = await count();
    for (const deadline = Date.now() + 20_000; beforeRestore <= atSnap + 5 && Date.now() < deadline; beforeRestore = await count()) {
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.ok(beforeRestore > atSnap + 5, `the counter moved on after the snapshot: ${atSnap} -> ${beforeRestore}`);

    const r = await svc.snapshotRestore(me, { workspace_id: 'p', snapshot: 'm1' });
    assert.deepEqual([r.memory_restored, r.state], [true, 'running']);
    const c1 = await count();
    assert.ok(c1 >= atSnap - 1 && c1 < beforeRestore, `counter resumed from the snapshot (${atSnap}), not from ${beforeRestore}: ${c1}`);
    assert.equal(await sh('test -e /root/after.txt && echo yes || echo no'), 'no\n');
    const guest = Number((await sh('date +%s.%N')).trim()) * 1000;
    assert.ok(Math.abs(guest - Date.now()) < 1000, `guest clock off by ${guest - Date.now()} ms after a memory restore`);

    const f = await svc.fork(me, { workspace_id: 'p', snapshot: 'm1', name: 'pf' });
    assert.equal(f.state, 'running');
    const fc = Number((await svc.exec(me, { workspace_id: 'pf', command: 'cat /tmp/count' })).stdout.trim());
    assert.ok(fc >= atSnap - 1, `the fork's counter resumed: ${fc}`);
    assert.equal((await svc.exec(me, { workspace_id: 'pf', command: 'hostname' })).stdout, 'pf\n');
    const ids = await Promise.all(['p', 'pf'].map((w) => svc.exec(me, { workspace_id: w, command: 'cat /etc/machine-id' }).then((x) => x.stdout)));
    assert.notEqual(ids[0], ids[1]);
    await svc.exec(me, { workspace_id: 'pf', command: 'echo fork > /root/f.txt' });
    assert.equal(await sh('test -e /root/f.txt && echo yes || echo no'), 'no\n');
    await svc.destroy(me, { workspace_id: 'pf' });
  });

  test('stop on a paused workspace discards the memory; start boots from the disk', async () => {
    await svc.pause(me, { workspace_id: 'p' });
    assert.equal((await svc.stop(me, { workspace_id: 'p' })).state, 'stopped');
    assert.deepEqual(readdirSync(path.join(dataDir, 'memory')), []);
    await svc.start(me, { workspace_id: 'p' });
    const [x, y] = (await sh('echo "$(cat /tmp/count 2>/dev/null)"; sleep 0.5; echo "$(cat /tmp/count 2>/dev/null)"')).split('\n');
    assert.equal(x, y, 'the counter process is gone: the workspace booted cold');
  });
});
