// `islet status` against a state database written the way the service
// writes it (WAL, writer connection still open), with no VMs involved.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import { age, table } from '../../src/surfaces/cli/format.js';

const bin = path.resolve('bin/islet.js');
const islet = (args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 30_000 });

function tempConfig(): { dir: string; cfg: string; db: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'islet-status-'));
  const cfg = path.join(dir, 'islet.toml');
  writeFileSync(cfg, `[storage]\ndata_dir = "${dir}/data"\nrun_dir = "${dir}/run"\n`);
  return { dir, cfg, db: path.join(dir, 'data', 'state.db') };
}

const ago = (ms: number) => new Date(Date.now() - ms).toISOString();
const DEAD_PID = 2_147_483_646; // above any pid_max, so never alive

const { cfg, db: dbFile } = tempConfig();
mkdirSync(path.dirname(dbFile));
const db = new Database(dbFile);
db.pragma('journal_mode = WAL');
db.exec(`CREATE TABLE workspaces (id TEXT PRIMARY KEY, name TEXT UNIQUE, owner TEXT, state TEXT, image TEXT, vcpus INT,
  memory_mb INT, disk_gb INT, allow_internet INT, pid INT NULL, error TEXT NULL, created_at TEXT, updated_at TEXT)`);
const insert = db.prepare(`INSERT INTO workspaces VALUES (@id, @name, @owner, @state, @image, @vcpus, @memory_mb, @disk_gb,
  @allow_internet, @pid, @error, @created_at, @updated_at)`);
const base = { image: 'base', vcpus: 1, memory_mb: 256, disk_gb: 2, allow_internet: 0, pid: null, error: null };
insert.run({ ...base, id: 'ws-aaaa', name: 'alpha', owner: 'local', state: 'running', pid: process.pid, vcpus: 2, memory_mb: 1024,
  created_at: ago(3 * 60_000 + 5_000), updated_at: ago(60_000) });
insert.run({ ...base, id: 'ws-bbbb', name: 'beta', owner: 'bob', state: 'stopped', created_at: ago(2 * 3_600_000 + 60_000), updated_at: ago(0) });
insert.run({ ...base, id: 'ws-gone', name: 'gone', owner: 'bob', state: 'destroyed', created_at: ago(9e6), updated_at: ago(0) });
after(() => db.close());

interface Row { workspace_id: string; name: string; state: string; snapshot_count: number; pid: number | null; pid_alive: boolean | null;
  ip: string | null; allow_internet: boolean; memory_mb: number; owner: string }

test('status --json lists the rows while the writer holds the WAL database open (no snapshots table yet)', () => {
  const r = islet(['status', '--config', cfg, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const rows = JSON.parse(r.stdout) as Row[];
  assert.deepEqual(rows.map((w) => [w.name, w.workspace_id, w.state, w.owner, w.snapshot_count]), [
    ['beta', 'ws-bbbb', 'stopped', 'bob', 0],
    ['alpha', 'ws-aaaa', 'running', 'local', 0],
  ]);
  const alpha = rows.find((w) => w.name === 'alpha')!;
  assert.equal(alpha.pid, process.pid);
  assert.equal(alpha.pid_alive, true);
  assert.equal(alpha.ip, '10.0.2.15'); // user-mode networking is the default
  assert.equal(alpha.allow_internet, false);
  assert.equal(alpha.memory_mb, 1024);
  assert.equal(rows.find((w) => w.name === 'beta')!.pid_alive, null);
});

test('status counts snapshots and flags a running row whose pid is gone', () => {
  db.exec('CREATE TABLE snapshots (id TEXT PRIMARY KEY, workspace_id TEXT, name TEXT, created_at TEXT)');
  const snap = db.prepare('INSERT INTO snapshots VALUES (?, ?, ?, ?)');
  snap.run('sn-1', 'ws-aaaa', 's1', ago(0));
  snap.run('sn-2', 'ws-aaaa', 's2', ago(0));
  insert.run({ ...base, id: 'ws-cccc', name: 'gamma', owner: 'local', state: 'running', pid: DEAD_PID, created_at: ago(10_000), updated_at: ago(0) });
  try {
    const rows = JSON.parse(islet(['status', '--config', cfg, '--json']).stdout) as Row[];
    assert.equal(rows.find((w) => w.name === 'alpha')!.snapshot_count, 2);
    assert.equal(rows.find((w) => w.name === 'gamma')!.pid_alive, false);
  } finally {
    db.exec("DELETE FROM workspaces WHERE id = 'ws-cccc'");
  }
});

test('status prints a table', () => {
  const r = islet(['status', '--config', cfg]);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 3, r.stdout);
  assert.deepEqual(lines[0]!.split(/\s+/), ['NAME', 'ID', 'STATE', 'IMAGE', 'IP', 'VCPUS', 'MEM', 'SNAPS', 'AGE', 'OWNER']);
  assert.deepEqual(lines[1]!.split(/\s+/), ['beta', 'ws-bbbb', 'stopped', 'base', '10.0.2.15', '1', '256M', '0', '2h', 'bob']);
  assert.deepEqual(lines[2]!.split(/\s+/), ['alpha', 'ws-aaaa', 'running', 'base', '10.0.2.15', '2', '1G', '2', '3m', 'local']);
  // Columns line up: every row's ID starts where the header's does.
  const at = lines[0]!.indexOf('ID');
  for (const l of lines.slice(1)) assert.equal(l.indexOf('ws-'), at);
});

test('status without a database says so and exits 0', () => {
  const { cfg: empty, db: missing } = tempConfig();
  const r = islet(['status', '--config', empty]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `no workspaces (state database ${missing} does not exist yet)\n`);
  const j = islet(['status', '--config', empty, '--json']);
  assert.equal(j.status, 0);
  assert.deepEqual(JSON.parse(j.stdout), []);
});

test('status with a bad config is a usage error', () => {
  const { dir } = tempConfig();
  const bad = path.join(dir, 'bad.toml');
  writeFileSync(bad, '[storage]\ndata_dri = "/x"\n');
  const r = islet(['status', '--config', bad]);
  assert.equal(r.status, 64);
  assert.match(r.stderr, /error\[CONFIG_INVALID\]/);
});

test('format helpers', () => {
  const now = Date.parse('2025-01-01T12:00:00Z');
  assert.equal(age('2025-01-01T11:59:15Z', now), '45s');
  assert.equal(age('2025-01-01T11:57:00Z', now), '3m');
  assert.equal(age('2025-01-01T10:00:00Z', now), '2h');
  assert.equal(age('2024-12-27T12:00:00Z', now), '5d');
  assert.equal(age('garbage', now), '?');
  assert.equal(table(['A', 'LONG'], [['xyz', '1'], ['q', '22']]), 'A    LONG\nxyz  1\nq    22\n');
});
