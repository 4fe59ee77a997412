// `islet status`: what the state database says, read-only. It deliberately
// bypasses WorkspaceService: opening the service reconciles state and takes
// locks, and status must be safe to run next to a live `islet serve` (the DB
// is in WAL mode, so a read-only connection sees committed rows without
// blocking the writer). Nothing here repairs state; a recorded "running"
// whose QEMU pid is gone is flagged, and the next service open fixes it.
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { Command } from 'commander';
import { loadConfig } from '../../core/config.js';
import { IsletError } from '../../core/errors.js';
import { age, json, mib, table } from './format.js';
import { pidAlive } from '../../host/pid.js';

export interface StatusRow {
  workspace_id: string;
  name: string;
  state: string;
  image: string;
  vcpus: number;
  memory_mb: number;
  disk_gb: number;
  allow_internet: boolean;
  owner: string;
  pid: number | null;
  /** false when the row says running but no process has that pid: the server died or has not reconciled yet. */
  pid_alive: boolean | null;
  ip: string | null;
  snapshot_count: number;
  error: string | null;
  created_at: string;
  updated_at: string;
}

interface DbRow {
  id: string; name: string; owner: string; state: string; image: string;
  vcpus: number; memory_mb: number; disk_gb: number; allow_internet: number;
  pid: number | null; error: string | null; created_at: string; updated_at: string; snaps: number;
}

/** Rows of the state database, oldest first; undefined when the database does not exist yet. */
/**
 * guestIp: the address every workspace has on its own network (user mode: 10.0.2.15), null without a network,
 * or 'bridge': each workspace's own leased address.
 */
export function readStatus(dbFile: string, guestIp: string | null = null): StatusRow[] | undefined {
  if (!existsSync(dbFile)) return undefined;
  let db: Database.Database;
  try {
    db = new Database(dbFile, { readonly: true, fileMustExist: true, timeout: 5_000 });
  } catch (e) {
    throw new IsletError('INTERNAL', `cannot open state database ${dbFile} read-only: ${(e as Error).message}`,
      'check the file\'s permissions; status needs read access to it and its -wal/-shm files', { file: dbFile }, { cause: e });
  }
  try {
    const tables = new Set((db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string }>).map((r) => r.name));
    // A database a server is still initialising may lack tables: that is "no rows", not an error.
    if (!tables.has('workspaces')) return [];
    const snaps = tables.has('snapshots') ? '(SELECT COUNT(*) FROM snapshots s WHERE s.workspace_id = w.id)' : '0';
    const rows = db.prepare(`SELECT w.*, ${snaps} AS snaps FROM workspaces w WHERE w.state != 'destroyed' ORDER BY w.created_at, w.name`).all() as DbRow[];
    const leases = new Map(guestIp === 'bridge' && tables.has('net_leases')
      ? (db.prepare('SELECT workspace_id, ip FROM net_leases').all() as Array<{ workspace_id: string; ip: string }>).map((l) => [l.workspace_id, l.ip])
      : []);
    return rows.map((r) => ({
      workspace_id: r.id,
      name: r.name,
      state: r.state,
      image: r.image,
      vcpus: r.vcpus,
      memory_mb: r.memory_mb,
      disk_gb: r.disk_gb,
      allow_internet: r.allow_internet !== 0,
      owner: r.owner,
      pid: r.pid ?? null,
      pid_alive: r.state === 'running' ? r.pid != null && pidAlive(r.pid) : null,
      ip: guestIp === 'bridge' ? leases.get(r.id) ?? null : guestIp,
      snapshot_count: Number(r.snaps),
      error: r.error ?? null,
      created_at: r.created_at,
      updated_at: r.updated_at,
    }));
  } finally {
    db.close();
  }
}

export interface PoolStatusRow {
  id: string;
  state: string;
  image: string;
  vcpus: number;
  memory_mb: number;
  disk_gb: number;
  allow_internet: boolean;
  /** 'template' (restored from a template snapshot) or 'cold' (booted); null while booting. */
  source: string | null;
  pid: number | null;
  pid_alive: boolean | null;
  created_at: string;
}

/** The warm pool's unassigned VMs (src/service/pool.ts); [] when the database or the table does not exist. */
export function readPool(dbFile: string): PoolStatusRow[] {
  if (!existsSync(dbFile)) return [];
  const db = new Database(dbFile, { readonly: true, fileMustExist: true, timeout: 5_000 });
  try {
    if (!db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'pool_vms'").get()) return [];
    const rows = db.prepare('SELECT * FROM pool_vms ORDER BY created_at, id').all() as Array<Omit<PoolStatusRow, 'allow_internet' | 'pid_alive'> & { allow_internet: number }>;
    return rows.map((r) => ({ ...r, allow_internet: r.allow_internet !== 0, pid_alive: r.pid != null ? pidAlive(r.pid) : null }));
  } finally {
    db.close();
  }
}

export function poolTable(rows: readonly PoolStatusRow[], now = Date.now()): string {
  return table(
    ['POOL VM', 'STATE', 'IMAGE', 'VCPUS', 'MEM', 'DISK', 'INTERNET', 'SOURCE', 'AGE'],
    rows.map((r) => [
      r.id, r.pid_alive === false ? `${r.state}(no pid)` : r.state, r.image, String(r.vcpus), mib(r.memory_mb), `${r.disk_gb} GiB`,
      r.allow_internet ? 'yes' : 'no', r.source ?? '-', age(r.created_at, now),
    ]),
  );
}

export function statusTable(rows: readonly StatusRow[], now = Date.now()): string {
  return table(
    ['NAME', 'ID', 'STATE', 'IMAGE', 'IP', 'VCPUS', 'MEM', 'SNAPS', 'AGE', 'OWNER'],
    rows.map((r) => [
      r.name, r.workspace_id, r.pid_alive === false ? `${r.state}(no pid)` : r.state, r.image, r.ip ?? '-',
      String(r.vcpus), mib(r.memory_mb), String(r.snapshot_count), age(r.created_at, now), r.owner,
    ]),
  );
}

export function registerStatus(program: Command): void {
  program.command('status')
    .description('list every workspace recorded in the state database (read-only; safe while a server runs)')
    .option('-c, --config <file>', 'config file (TOML)')
    .option('--json', 'print an array of workspaces as JSON')
    .option('--pool', 'only the warm pool\'s unassigned VMs (with --json: an array of them)')
    .action((flags: { config?: string; json?: boolean; pool?: boolean }) => {
      const config = loadConfig(flags.config);
      const pool = readPool(config.paths.stateDb);
      if (flags.pool) {
        if (flags.json) return json(pool);
        process.stdout.write(pool.length ? poolTable(pool) : 'the warm pool is empty\n');
        return;
      }
      // In user mode each workspace has its own private network with the same guest address.
      const rows = readStatus(config.paths.stateDb, config.network.mode === 'user' ? '10.0.2.15' : config.network.mode === 'bridge' ? 'bridge' : null);
      if (flags.json) return json(rows ?? []);
      if (rows === undefined) {
        process.stdout.write(`no workspaces (state database ${config.paths.stateDb} does not exist yet)\n`);
      } else if (rows.length === 0) {
        process.stdout.write('no workspaces\n');
      } else {
        process.stdout.write(statusTable(rows));
      }
      if (pool.length) process.stdout.write(`\nwarm pool: ${pool.filter((p) => p.state === 'ready').length} ready, ${pool.filter((p) => p.state !== 'ready').length} booting\n${poolTable(pool)}`);
    });
}
