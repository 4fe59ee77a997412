// kill -9 of the service at any moment loses no workspace and leaks no VM:
// the next service re-attaches to running VMs, marks the rest, and undoes
// an interrupted create.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Store } from '../../src/service/store.js';
import type { WorkspaceService } from '../../src/service/workspaces.js';
import { vmEnv } from './factory.js';
import { qemuProcesses } from './procs.js';

const env = vmEnv('restart');
const cfgFile = env.cfgFile;
const config = env.config;
const caller = { owner: 'crash-test' };
const child = path.resolve('dist/test/fixtures/service-child.js');

/** QEMU processes of this data dir's workspaces, by id; two for one id fails the test. */
function qemus(): Map<string, number> {
  const out = new Map<string, number>();
  for (const q of qemuProcesses(config.paths.runDir)) {
    assert.ok(!out.has(q.id), `two QEMU processes for ${q.id}`);
    out.set(q.id, q.pid);
  }
  return out;
}

/** Runs the child service until it prints `until` (and `also` holds), then kill -9s it. */
async function runAndKill(steps: string[], until: RegExp, also: () => boolean = () => true): Promise<string> {
  const p = env.track(spawn(process.execPath, [child, ...steps], { env: { ...process.env, ISLET_TEST_CONFIG: cfgFile }, stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  let err = '';
  p.stderr.on('data', (c: Buffer) => { err += c.toString(); });
  await new Promise<void>((resolve, reject) => {
    const poll = setInterval(() => { if (until.test(out) && also()) { clearInterval(poll); resolve(); } }, 20);
    p.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    p.once('exit', (code) => { clearInterval(poll); reject(new Error(`service child exited ${code} early: ${err}`)); });
  });
  p.kill('SIGKILL');
  await new Promise((r) => p.once('exit', r));
  return out;
}

let svc: WorkspaceService | undefined;

describe('service crash and restart', { timeout: 600_000 }, () => {
  test('after kill -9 every workspace is listed in its state and running ones still answer', async () => {
    const out = await runAndKill(['create:alpha', 'create:beta', 'stop:beta'], /ready/);
    const alpha = /created (ws-\w+)/.exec(out)![1]!;
    const before = qemus();
    assert.equal(before.size, 1, 'alpha runs, beta is stopped');
    assert.ok(before.has(alpha), 'the VM outlived its killed service');

    svc = await env.open();
    const list = await svc.list(caller);
    assert.deepEqual(list.map((w) => [w.name, w.state]), [['alpha', 'running'], ['beta', 'stopped']]);
    const r = await svc.exec(caller, { workspace_id: 'alpha', command: ['hostname'] });
    assert.equal(r.stdout, 'alpha\n');
    const afterOpen = qemus();
    assert.deepEqual([...afterOpen], [...before], 're-attached to the same QEMU, none started or orphaned');
    const b = await svc.start(caller, { workspace_id: 'beta' });
    assert.equal(b.state, 'running');
    await svc.close();
    svc = undefined;
  });

  test('a create killed mid-boot is finished or undone, never half-made', async () => {
    // Kill it once gamma's QEMU is up but before the agent answered: mid-create.
    const known = new Set(qemus().keys());
    await runAndKill(['create-async:gamma'], /ready/, () => [...qemus().keys()].some((id) => !known.has(id)));
    svc = await env.open();
    // Either the old state (no gamma) or the new one (gamma finished and usable): never half-made.
    const gamma = (await svc.list(caller)).find((w) => w.name === 'gamma');
    if (gamma) {
      assert.equal(gamma.state, 'running');
      assert.equal((await svc.exec(caller, { workspace_id: 'gamma', command: 'echo ok' })).stdout, 'ok\n');
    }
    const ids = new Set((await svc.list(caller)).map((w) => w.workspace_id));
    for (const id of qemus().keys()) assert.ok(ids.has(id), `orphan QEMU for ${id}`);
    const disks = readdirSync(path.join(config.paths.dataDir, 'disks')).filter((f) => f.startsWith('ws-'));
    for (const f of disks) assert.ok(ids.has(f.replace('.qcow2', '')), `orphan disk ${f}`);
    assert.ok(existsSync(config.paths.stateDb));
    await svc.close();
    svc = undefined;
  });

  test('a create that died before its VM started is rolled back', async () => {
    // The state a kill -9 leaves between writing the intent and starting QEMU.
    const store = Store.open(config.paths.stateDb);
    const now = new Date().toISOString();
    store.insertChecked({ id: 'ws-0badc0de', name: 'delta', owner: caller.owner, state: 'creating', image: 'base', vcpus: 1, memory_mb: 256,
      disk_gb: 2, allow_internet: 0, pid: null, error: null, created_at: now, updated_at: now }, { total: 100, perOwner: 100 });
    store.close();
    writeFileSync(path.join(config.paths.dataDir, 'disks', 'ws-0badc0de.qcow2'), 'half-made');
    svc = await env.open();
    assert.ok(!(await svc.list(caller)).some((w) => w.name === 'delta'));
    assert.equal(existsSync(path.join(config.paths.dataDir, 'disks', 'ws-0badc0de.qcow2')), false);
  });
});
