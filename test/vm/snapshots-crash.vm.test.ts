// kill -9 of the service during snapshot_create or workspace_fork leaves the
// old state or the new one: never a half-made snapshot or workspace, never a
// file that nothing references, and listing always works.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Store } from '../../src/service/store.js';
import type { WorkspaceService } from '../../src/service/workspaces.js';
import { createChildOverlay } from '../../src/storage/overlay.js';
import { vmEnv } from './factory.js';
import { qemuProcesses } from './procs.js';

const env = vmEnv('snapcrash');
const dataDir = env.dir;
const cfgFile = env.cfgFile;
const config = env.config;
const caller = { owner: 'crash-test' };
const child = path.resolve('dist/test/fixtures/service-child.js');
const disksDir = path.join(dataDir, 'disks');

/** Runs the child service; once `until` matches it waits `delayMs` (or until `also` holds), then kill -9s it. */
async function runAndKill(steps: string[], until: RegExp, o: { delayMs?: number; also?: () => boolean } = {}): Promise<string> {
  const p = env.track(spawn(process.execPath, [child, ...steps], { env: { ...process.env, ISLET_TEST_CONFIG: cfgFile }, stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  let err = '';
  let seen = 0;
  p.stderr.on('data', (c: Buffer) => { err += c.toString(); });
  p.stdout.on('data', (c: Buffer) => { out += c.toString(); });
  await new Promise<void>((resolve, reject) => {
    const poll = setInterval(() => {
      if (!seen && until.test(out)) seen = Date.now();
      if (seen && Date.now() - seen >= (o.delayMs ?? 0) && (o.also ?? (() => true))()) { clearInterval(poll); resolve(); }
    }, 5);
    p.once('exit', (code) => { clearInterval(poll); reject(new Error(`service child exited ${code} early: ${err}`)); });
  });
  p.kill('SIGKILL');
  await new Promise((r) => p.once('exit', r));
  return out;
}

/** QEMU processes of this data dir, by workspace id. */
const qemus = () => new Set(qemuProcesses(config.paths.runDir).map((q) => q.id));

/** The invariant after any crash: rows and files agree, nothing is half-made, and every running workspace answers. */
async function checkConsistent(svc: WorkspaceService): Promise<void> {
  const list = await svc.list(caller);
  const store = Store.open(config.paths.stateDb);
  try {
    assert.deepEqual(store.allSnapshots().filter((s) => s.state !== 'ready').map((s) => s.name), [], 'no snapshot left creating');
    const referenced = new Set([...store.all().map((w) => w.disk_path ?? path.join(disksDir, `${w.id}.qcow2`)), ...store.allSnapshots().map((s) => s.file)]);
    const files = readdirSync(disksDir).filter((f) => f.startsWith('ws-')).map((f) => path.join(disksDir, f));
    const snapRoot = path.join(dataDir, 'snapshots');
    for (const d of readdirSync(snapRoot, { withFileTypes: true })) {
      if (d.isDirectory()) for (const f of readdirSync(path.join(snapRoot, d.name))) files.push(path.join(snapRoot, d.name, f));
    }
    for (const f of files) assert.ok(referenced.has(f), `unreferenced file ${f}`);
    for (const f of referenced) assert.ok(files.includes(f), `missing file ${f}`);
  } finally {
    store.close();
  }
  for (const w of list) {
    assert.ok(w.state === 'running' || w.state === 'stopped', `${w.name} is ${w.state}`);
    if (w.state === 'running') {
      const r = await svc.exec(caller, { workspace_id: w.workspace_id, command: 'cat /root/marker', timeout_ms: 60_000 });
      assert.equal(r.stdout, 'kept\n', `${w.name} keeps its data`);
    }
  }
  const ids = new Set(list.map((w) => w.workspace_id));
  for (const id of qemus()) assert.ok(ids.has(id), `orphan QEMU for ${id}`);
}

let svc: WorkspaceService | undefined;

describe('service crash during snapshots and forks', { timeout: 900_000 }, () => {
  test('kill -9 at several points of a live snapshot_create: the snapshot exists and is ready, or does not exist', async () => {
    mkdirSync(path.join(dataDir, 'snapshots'), { recursive: true });
    await runAndKill(['create:alpha'], /ready/);
    svc = await env.open();
    await svc.exec(caller, { workspace_id: 'alpha', command: 'echo kept > /root/marker; sync' });
    await svc.snapshotCreate(caller, { workspace_id: 'alpha', name: 'base' });
    await svc.close();
    const outcomes: string[] = [];
    for (const [i, delayMs] of [0, 30, 80, 150, 300, 800].entries()) {
      const out = await runAndKill([`snapshot-async:alpha:k${i}`], /snapshotting/, { delayMs });
      svc = await env.open();
      await checkConsistent(svc);
      const names = (await svc.snapshotList(caller, { workspace_id: 'alpha' })).snapshots.map((s) => s.name);
      outcomes.push(`${delayMs}ms:${names.includes(`k${i}`) ? 'new' : 'old'}${/snapshot snap-/.test(out) ? '(acked)' : ''}`);
      if (/snapshot snap-/.test(out)) assert.ok(names.includes(`k${i}`), 'an acknowledged snapshot survives');
      await svc.close();
      svc = undefined;
    }
    console.log(`# snapshot crash outcomes: ${outcomes.join(' ')}`);
    // The chain is intact: roll back to the first snapshot (a restart) and the data is there.
    svc = await env.open();
    await svc.snapshotRestore(caller, { workspace_id: 'alpha', snapshot: 'base' });
    await checkConsistent(svc);
    await svc.close();
    svc = undefined;
  });

  test('kill -9 mid-fork: the fork is finished and usable, or gone without a trace', async () => {
    const known = qemus();
    await runAndKill(['fork-async:alpha:fk'], /forking/, { also: () => [...qemus()].some((id) => !known.has(id)) });
    svc = await env.open();
    await checkConsistent(svc);
    const fk = (await svc.list(caller)).find((w) => w.name === 'fk');
    console.log(`# fork crash outcome: ${fk ? `fork kept (${fk.state})` : 'fork undone'}`);
    if (fk) await svc.destroy(caller, { workspace_id: 'fk' });
    await checkConsistent(svc);
    await svc.close();
    svc = undefined;
  });

  test('a stopped snapshot interrupted after the move is rolled back; after the new overlay, finished', async () => {
    svc = await env.open();
    await svc.stop(caller, { workspace_id: 'alpha' });
    const id = (await svc.info(caller, { workspace_id: 'alpha' })).workspace_id;
    await svc.close();
    svc = undefined;
    const half = async (snapId: string, overlay: boolean) => {
      const store = Store.open(config.paths.stateDb);
      const row = store.get(id)!;
      const active = row.disk_path ?? path.join(disksDir, `${id}.qcow2`);
      const file = path.join(dataDir, 'snapshots', id, `${snapId}.qcow2`);
      mkdirSync(path.dirname(file), { recursive: true });
      store.insertSnapshot({ id: snapId, workspace_id: id, name: snapId, created_at: new Date().toISOString(), parent_id: row.backing_snapshot_id,
        file, description: null, size_bytes: null, has_memory: 0, state: 'creating', op_disk: active, qemu_version: null });
      store.close();
      renameSync(active, file);
      if (overlay) await createChildOverlay(file, active);
    };
    await half('snap-0dead001', false);
    svc = await env.open();
    assert.ok(!(await svc.snapshotList(caller, { workspace_id: 'alpha' })).snapshots.some((s) => s.snapshot_id === 'snap-0dead001'));
    await svc.close();
    await half('snap-0dead002', true);
    svc = await env.open();
    const l = await svc.snapshotList(caller, { workspace_id: 'alpha' });
    assert.equal(l.snapshots.at(-1)?.snapshot_id, 'snap-0dead002');
    assert.equal(l.current_snapshot_id, 'snap-0dead002');
    await svc.start(caller, { workspace_id: 'alpha' });
    await checkConsistent(svc);
  });
});
