// `islet run` as a client of the daemon: real CLI processes, a real daemon,
// real VMs. The daemon makes the throwaway workspace and destroys it when the
// command ends or the client's connection closes, so neither Ctrl-C nor
// SIGKILL of the CLI leaves a workspace or a QEMU behind; a daemon killed
// mid-run gives the client a coded error and the next daemon removes the
// run's workspace.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { vmEnv } from './factory.js';
import { daemonProcesses, qemuProcesses } from './procs.js';

// No warm pool: every run here restores the template of its shape (built by the first).
const env = vmEnv('run', { pool: { enabled: false }, server: { daemon_idle_exit_s: 0 } });
const cfg = env.cfgFile;
const runDir = env.config.paths.runDir;
const bin = path.resolve('bin/islet.js');

const islet = (args: string[], input?: Buffer) => {
  const r = spawnSync(process.execPath, [bin, ...args], { input, timeout: 300_000, maxBuffer: 64 << 20, env: env.childEnv() });
  return { status: r.status, out: r.stdout, err: r.stderr.toString('utf8') };
};
const islAsync = (args: string[], input?: Buffer) => new Promise<{ status: number | null; out: Buffer; err: string }>((resolve) => {
  const p = env.spawn(process.execPath, [bin, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let err = '';
  p.stdout!.on('data', (c: Buffer) => out.push(c));
  p.stderr!.on('data', (c: Buffer) => { err += c; });
  p.stdin!.end(input);
  p.on('close', (status) => resolve({ status, out: Buffer.concat(out), err }));
});

const daemons = () => daemonProcesses(cfg);
const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };
type Ws = { workspace_id: string; name: string; owner: string; kind?: string };
const listAll = (): Ws[] => {
  const r = islet(['ws', 'list', '--all', '--json', '-q']);
  assert.equal(r.status, 0, r.err);
  return JSON.parse(r.out.toString('utf8')) as Ws[];
};

/** Starts `islet run -- sleep 300` and waits until the command runs in its workspace: the child, the workspace and its QEMU. */
async function sleeper(): Promise<{ child: ChildProcess; err: () => string; ws: Ws; qemu: number }> {
  const child = env.spawn(process.execPath, [bin, 'run', '--', 'sleep', '300'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => { err += c; });
  for (let i = 0; i < 3000 && !/islet: running in (run-\w+)/.test(err) && child.exitCode === null; i++) await delay(100);
  const name = /islet: running in (run-\w+)/.exec(err)?.[1];
  assert.ok(name, `no "running in" line: ${err}`);
  const ws = listAll().find((w) => w.name === name);
  assert.ok(ws, `run workspace ${name} not listed`);
  const q = qemuProcesses(runDir).find((p) => p.id === ws.workspace_id);
  assert.ok(q, `no QEMU for ${ws.workspace_id}`);
  return { child, err: () => err, ws, qemu: q.pid };
}

/** Nothing of the run is left, within a deadline: no workspace of any owner (listing starts a daemon if none runs), no QEMU of this data dir. */
async function gone(ws: Ws, qemu: number): Promise<void> {
  let left: Ws[] = [];
  for (let i = 0; i < 120; i++) {
    left = listAll();
    if (!left.length && !alive(qemu) && qemuProcesses(runDir).length === 0) break;
    await delay(500);
  }
  assert.equal(alive(qemu), false, `QEMU ${qemu} of ${ws.workspace_id} outlived the run`);
  assert.deepEqual(qemuProcesses(runDir), []);
  assert.deepEqual(left.map((w) => w.workspace_id), [], 'a workspace outlived the run');
}

describe('islet run through the daemon', { timeout: 1_500_000 }, () => {
  test('output and exit code through the daemon; the workspace goes when the command ends', () => {
    const r = islet(['run', '--', 'sh', '-c', 'uname -s; echo to-stderr >&2; ip -o link | grep -vc " lo:" ; exit 7']);
    assert.equal(r.status, 7, r.err);
    // No network device besides lo, as `islet run` always had.
    assert.equal(r.out.toString('utf8'), 'Linux\n0\n');
    assert.match(r.err, /to-stderr/);
    assert.match(r.err, /islet: running in run-\w+ \((restored from a template|booted|a warm pool VM), \d+ ms\)/);
    assert.equal(daemons().length, 1, 'islet run did not go through one daemon');
    assert.deepEqual(listAll(), []);
    assert.deepEqual(qemuProcesses(runDir), []);
  });

  test('stdin and stdout are byte-exact (binary, several MiB)', () => {
    const data = randomBytes(3 << 20);
    const r = islet(['run', '-q', '-i', '--', 'cat'], data);
    assert.equal(r.status, 0, r.err);
    assert.ok(r.out.equals(data), `stdout differs: ${r.out.length} bytes back of ${data.length}`);
    assert.equal(r.err, '');
  });

  test('an unknown image is IMAGE_NOT_FOUND, before any VM', () => {
    const r = islet(['run', '--image', 'no-such-image', '--', 'true']);
    assert.equal(r.status, 66, r.err);
    assert.match(r.err, /error\[IMAGE_NOT_FOUND\]: image "no-such-image"/);
    assert.deepEqual(listAll(), []);
  });

  test('several islet runs at once on a cold data dir: one daemon serves them all', async () => {
    assert.equal(islet(['daemon', 'stop']).status, 0);
    assert.deepEqual(daemons(), []);
    const rs = await Promise.all([1, 2, 3].map((n) => islAsync(['run', '-q', '--sh', `echo run ${n}; exit ${n}`])));
    rs.forEach((r, i) => {
      assert.equal(r.status, i + 1, r.err);
      assert.equal(r.out.toString('utf8'), `run ${i + 1}\n`);
    });
    assert.equal(daemons().length, 1);
    assert.deepEqual(listAll(), []);
  });

  test('SIGKILL of islet run mid-command: the daemon destroys the workspace and its QEMU; other owners never saw it', async () => {
    const s = await sleeper();
    assert.equal(s.ws.kind, 'run');
    assert.equal(s.ws.owner, 'local');
    const other = islet(['ws', 'list', '--owner', 'someone-else', '--json', '-q']);
    assert.deepEqual(JSON.parse(other.out.toString('utf8')), []);
    s.child.kill('SIGKILL');
    await new Promise((r) => s.child.once('exit', r));
    await gone(s.ws, s.qemu);
  });

  test('Ctrl-C (SIGINT): exit 130, and the workspace and QEMU are gone', async () => {
    const s = await sleeper();
    s.child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => s.child.once('exit', (c) => r(c)));
    assert.equal(code, 130, s.err());
    assert.match(s.err(), /error\[CANCELLED\]/);
    await gone(s.ws, s.qemu);
  });

  test('the daemon killed mid-run: the client gets a coded error; the next daemon removes the run\'s workspace and QEMU', async () => {
    const s = await sleeper();
    const [d] = daemons();
    assert.ok(d);
    process.kill(d, 'SIGKILL');
    const code = await new Promise<number | null>((r) => s.child.once('exit', (c) => r(c)));
    assert.equal(code, 69, s.err());
    assert.match(s.err(), /error\[HOST_PREREQUISITE\]: the islet daemon is unreachable/);
    // The QEMU outlives its daemon (VMs always do); the next daemon's reconcile ends it, as the run ended.
    await gone(s.ws, s.qemu); // its listing starts that daemon
  });
});
