// The warm pool with real VMs: a pool hit is a running workspace with its own
// identity, `islet status` sees the pool, close ends pool VMs, and after a
// kill -9 of the service the next start leaves no pool QEMU behind.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { WorkspaceService } from '../../src/service/workspaces.js';
import { vmEnv } from './factory.js';
import { qemuProcesses } from './procs.js';
import { readPool } from '../../src/surfaces/cli/status.js';

const env = vmEnv('pool', { pool: { enabled: true, target_free: 1, max_size: 2, max_memory_mb: 512 } });
const dataDir = env.dir;
const cfgFile = env.cfgFile;
const config = env.config;
const caller = { owner: 'pool-test' };
const child = path.resolve('dist/test/fixtures/service-child.js');
const messages: string[] = [];

/** QEMU processes of this data dir (workspaces and pool VMs alike), by id. */
const qemus = () => new Map(qemuProcesses(config.paths.runDir).map((q) => [q.id, q.pid]));

async function until(what: string, ok: () => boolean, ms = 300_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; progress:\n${messages.slice(-20).join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

let svc: WorkspaceService | undefined;

describe('warm pool', { timeout: 900_000 }, () => {
  test('a pool hit is a running workspace with its own identity; close ends the pool', async () => {
    svc = await env.open({ pool: config.pool.enabled, progress: (s) => messages.push(s) });
    const pool = svc.pool!;
    assert.ok(pool, 'enabled in the config: the pool runs');
    await until('a ready pool VM', () => pool.ready >= 1);
    const seen = readPool(config.paths.stateDb);
    assert.equal(seen.length, 1, 'target_free = 1: one pool VM, as status sees it');
    assert.equal(seen[0]!.state, 'ready');
    assert.equal(seen[0]!.pid_alive, true);

    const ids: string[] = [];
    for (const name of ['pool-a', 'pool-b']) {
      await until('a ready pool VM', () => pool.ready >= 1);
      const poolVm = readPool(config.paths.stateDb)[0]!.id;
      const w = await svc.create(caller, { name });
      assert.equal(w.workspace_id, poolVm, 'the workspace is the pool VM it was handed');
      assert.equal(w.state, 'running');
      const r = await svc.exec(caller, { workspace_id: name, command: 'hostname; cat /etc/machine-id; date +%s' });
      const [host, mid, now] = r.stdout.trim().split('\n');
      assert.equal(host, name);
      assert.match(mid!, /^[0-9a-f]{32}$/);
      assert.ok(Math.abs(Number(now) - Date.now() / 1000) < 30, `guest clock ${now}`);
      ids.push(mid!);
    }
    assert.equal(pool.stats.hits, 2);
    // A different shape misses, is booted (here: restored from its template), and becomes a shape the pool keeps warm.
    const other = await svc.create(caller, { name: 'pool-c', memory_mb: 320 });
    assert.equal(pool.stats.misses, 1);
    ids.push((await svc.exec(caller, { workspace_id: other.workspace_id, command: 'cat /etc/machine-id' })).stdout.trim());
    assert.equal(new Set(ids).size, 3, `every machine-id differs: ${ids.join(' ')}`);

    // The pool VMs are not workspaces: not listed, and they end with the service; workspaces keep running.
    await until('the pool refilled', () => pool.ready >= 1);
    const listed = new Set((await svc.list(caller)).map((w) => w.workspace_id));
    const poolIds = readPool(config.paths.stateDb).map((p) => p.id);
    assert.ok(poolIds.length >= 1 && poolIds.every((id) => !listed.has(id)));
    await svc.close();
    assert.deepEqual(readPool(config.paths.stateDb), []);
    assert.deepEqual([...qemus().keys()].sort(), [...listed].sort(), 'only the workspaces run on');
  });

  test('after kill -9 of the service no pool QEMU is orphaned', async () => {
    const before = new Set(qemus().keys());
    const p = env.track(spawn(process.execPath, [child], { env: { ...process.env, ISLET_TEST_CONFIG: cfgFile, ISLET_TEST_POOL: '1' }, stdio: ['ignore', 'pipe', 'pipe'] }));
    let err = '';
    p.stderr.on('data', (c: Buffer) => { err += c.toString(); });
    const exited = new Promise((r) => p.once('exit', r));
    try {
      await until('the child service\'s pool VM', () => readPool(config.paths.stateDb).some((r) => r.state === 'ready') || p.exitCode !== null);
      assert.equal(p.exitCode, null, `service child exited early: ${err}`);
    } finally {
      p.kill('SIGKILL');
      await exited;
    }
    const orphan = [...qemus().keys()].filter((id) => !before.has(id));
    assert.ok(orphan.length >= 1, 'the killed service left its pool VM running');

    svc = await env.open({ pool: false, progress: (s) => messages.push(s) });
    assert.deepEqual([...qemus().keys()].sort(), [...before].sort(), 'the next start ended the pool VM');
    assert.deepEqual(readPool(config.paths.stateDb), []);
    const disks = readdirSync(path.join(dataDir, 'disks')).filter((f) => f.startsWith('ws-')).map((f) => f.replace('.qcow2', ''));
    assert.deepEqual(disks.sort(), [...before].sort(), 'no pool disk is left');
    assert.deepEqual((await svc.list(caller)).map((w) => w.name).sort(), ['pool-a', 'pool-b', 'pool-c']);
  });
});
