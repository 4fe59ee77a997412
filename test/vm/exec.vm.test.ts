// Boots one real VM (TCG here, KVM where usable) and exercises exec and file
// transfer through the real agent over the one virtio-serial channel.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { IsletError } from '../../src/core/errors.js';
import type { Machine } from '../../src/service/machine.js';
import { vmSuite } from './harness.js';

const vm = vmSuite();
let m: Machine;
const text = (b: Buffer) => b.toString('utf8');
const code = (c: string) => (e: unknown) => e instanceof IsletError && e.code === c;

describe('exec and files in a real VM', { timeout: 600_000 }, () => {
  before(async () => { m = await vm.boot(); }, { timeout: 300_000 });

  test('stdout, stderr and exit code', () => vm.withEvidence(async () => {
    const r = await m.exec({ argv: ['sh', '-c', 'echo out; echo err >&2; exit 3'] });
    assert.equal(text(r.stdout), 'out\n');
    assert.equal(text(r.stderr), 'err\n');
    assert.equal(r.exitCode, 3);
    assert.equal(r.signal, null);
    assert.equal(r.timedOut, false);
  }));

  test('runs inside the guest, not on the host', () => vm.withEvidence(async () => {
    const r = await m.exec({ argv: ['cat', '/proc/sys/kernel/hostname'] });
    assert.equal(text(r.stdout).trim(), `islet-${m.id}`);
    const pid1 = await m.exec({ argv: ['cat', '/proc/1/comm'] });
    assert.equal(text(pid1.stdout).trim(), 'islet-agent');
  }));

  test('shell string, env and cwd', () => vm.withEvidence(async () => {
    const r = await m.exec({ shell: 'echo "$FOO:$(pwd)"', env: { FOO: 'bar baz' }, cwd: '/tmp' });
    assert.equal(text(r.stdout), 'bar baz:/tmp\n');
    const home = await m.exec({ argv: ['pwd'] });
    assert.equal(text(home.stdout), '/root\n');
  }));

  test('stdin is passed through, binary-safe', () => vm.withEvidence(async () => {
    const input = randomBytes(200_000);
    const r = await m.exec({ argv: ['sha256sum'], stdin: input });
    assert.equal(text(r.stdout).split(' ')[0], createHash('sha256').update(input).digest('hex'));
  }));

  test('timeout kills the whole process group', () => vm.withEvidence(async () => {
    const r = await m.exec({ shell: 'sleep 300 & echo $!; sleep 300', timeoutMs: 1_500 });
    assert.equal(r.timedOut, true);
    assert.equal(r.exitCode, null);
    assert.equal(r.signal, 'KILL');
    const bgPid = text(r.stdout).trim();
    assert.match(bgPid, /^\d+$/);
    const probe = await m.exec({ argv: ['sh', '-c', `kill -0 ${bgPid} 2>/dev/null && echo alive || echo gone`] });
    assert.equal(text(probe.stdout).trim(), 'gone');
  }));

  test('output cap truncates and flags it, and the process still finishes', () => vm.withEvidence(async () => {
    const r = await m.exec({ argv: ['head', '-c', '3000000', '/dev/zero'], maxOutputBytes: 1000 });
    assert.equal(r.stdout.length, 1000);
    assert.equal(r.truncated, true);
    assert.equal(r.exitCode, 0);
  }));

  test('5 concurrent execs share the one channel', () => vm.withEvidence(async () => {
    const t0 = Date.now();
    const rs = await Promise.all([0, 1, 2, 3, 4].map((i) =>
      m.exec({ shell: `sleep 1; for j in 1 2 3; do echo ${i}-$j; done; echo e${i} >&2` })));
    rs.forEach((r, i) => {
      assert.equal(text(r.stdout), `${i}-1\n${i}-2\n${i}-3\n`);
      assert.equal(text(r.stderr), `e${i}\n`);
      assert.equal(r.exitCode, 0);
    });
    // Sequential would take >= 5 s; concurrent ones overlap their sleeps.
    assert.ok(Date.now() - t0 < 5_000, `took ${Date.now() - t0} ms: execs did not run concurrently`);
  }));

  test('1 MiB of random bytes round-trips through file write and read', () => vm.withEvidence(async () => {
    const data = randomBytes(1 << 20);
    const sha = createHash('sha256').update(data).digest('hex');
    await m.writeFile('/root/data/blob.bin', data, { createParents: true, mode: 0o600 });
    const guestSum = await m.exec({ argv: ['sha256sum', '/root/data/blob.bin'] });
    assert.equal(text(guestSum.stdout).split(' ')[0], sha);
    const back = await m.readFile('/root/data/blob.bin', { maxBytes: 2 << 20 });
    assert.equal(createHash('sha256').update(back.data).digest('hex'), sha);
    assert.equal((back.mode ?? 0) & 0o777, 0o600);
  }));

  test('reading a file over the limit is refused', () => vm.withEvidence(async () => {
    await m.exec({ argv: ['sh', '-c', 'head -c 100000 /dev/zero > /tmp/big'] });
    await assert.rejects(m.readFile('/tmp/big', { maxBytes: 1000 }), code('FILE_TOO_LARGE'));
    await assert.rejects(m.readFile('/nonexistent', { maxBytes: 1000 }), code('FILE_NOT_FOUND'));
  }));

  test('an unknown command is a clear error', () => vm.withEvidence(async () => {
    await assert.rejects(m.exec({ argv: ['no-such-command-xyz'] }), code('COMMAND_NOT_FOUND'));
  }));

  test('a guest process killed mid-command reports its signal', () => vm.withEvidence(async () => {
    let onPid!: (pid: number) => void;
    const pidKnown = new Promise<number>((r) => { onPid = r; });
    const running = m.exec({ argv: ['sleep', '300'] }, { onStarted: (p) => onPid(p) });
    const kill = await m.exec({ shell: `kill -9 ${await pidKnown}` });
    assert.equal(kill.exitCode, 0, kill.stderr.toString());
    const result = await running;
    assert.equal(result.exitCode, null);
    assert.equal(result.signal, 'KILL');
    assert.equal(result.timedOut, false);
  }));

  test('cancelling an exec kills it in the guest', () => vm.withEvidence(async () => {
    const ac = new AbortController();
    let pid = 0;
    const p = m.exec({ argv: ['sleep', '300'] }, { signal: ac.signal, onStarted: (x) => { pid = x; ac.abort(); } });
    await assert.rejects(p, code('CANCELLED'));
    const probe = await m.exec({ shell: `kill -0 ${pid} 2>/dev/null && echo alive || echo gone` });
    assert.equal(text(probe.stdout).trim(), 'gone');
  }));

  test('the guest clock was synced from the host at boot', () => vm.withEvidence(async () => {
    const h = await m.health();
    assert.ok(typeof h.timeUnixMs === 'number');
    assert.ok(Math.abs((h.timeUnixMs as number) - Date.now()) < 5_000, `guest clock off by ${(h.timeUnixMs as number) - Date.now()} ms`);
  }));
});
