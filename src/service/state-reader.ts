// The state database read without the service: `islet status` and the
// "image in use" rule must work next to a live `islet serve`, and opening
// the service reconciles state and takes the data dir's lock. The database
// is in WAL mode, so a read-only connection sees committed rows without
// blocking the writer. Nothing here repairs state; a recorded "running"
// whose QEMU pid is gone is flagged, and the next service open fixes it.
// Tables may be missing (a database a server is still initialising): that
// reads as no rows.
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Config } from '../core/config.js';
import { InternalError, StateConflictError } from '../core/errors.js';
import { pidAlive } from '../host/pid.js';
import { removeImageBuilds } from '../images/catalog.js';

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

/**
 * Rows of the state database, oldest first; undefined when the database does not exist yet.
 * guestIp: the address every workspace has on its own network (user mode: 10.0.2.15), null without a network,
 * or 'bridge': each workspace's own leased address.
 */
export function readStatus(dbFile: string, guestIp: string | null = null): StatusRow[] | undefined {
  if (!existsSync(dbFile)) return undefined;
  let db: Database.Database;
  try {
    db = new Database(dbFile, { readonly: true, fileMustExist: true, timeout: 5_000 });
  } catch (e) {
    throw new InternalError(`cannot open state database ${dbFile} read-only: ${(e as Error).message}`,
      { hint: 'check the file\'s permissions; status needs read access to it and its -wal/-shm files', details: { file: dbFile }, cause: e });
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

/** Workspaces (not destroyed) whose disks are overlays on this image, from the state DB read-only (see the top of this file for why). */
export function workspacesUsing(dbFile: string, image: string): Array<{ id: string; name: string; state: string }> {
  if (!existsSync(dbFile)) return [];
  const db = new Database(dbFile, { readonly: true, fileMustExist: true, timeout: 5_000 });
  try {
    const hasTable = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'workspaces'").get();
    if (!hasTable) return [];
    return db.prepare("SELECT id, name, state FROM workspaces WHERE image = ? AND state != 'destroyed' ORDER BY created_at")
      .all(image) as Array<{ id: string; name: string; state: string }>;
  } finally {
    db.close();
  }
}

/** Removes every build of an image, refused (STATE_CONFLICT) while a workspace's disk is an overlay on it. */
export async function removeImage(config: Config, name: string): Promise<{ builds: number; bytes: number }> {
  const users = workspacesUsing(config.paths.stateDb, name);
  if (users.length) {
    const names = users.slice(0, 5).map((w) => `${w.name} (${w.id}, ${w.state})`).join(', ');
    throw new StateConflictError(`image "${name}" is used by ${users.length} workspace(s): ${names}${users.length > 5 ? ', ...' : ''}`,
      'destroy them first (islet ws destroy <id>); their disks are overlays on this image', { image: name, workspaces: users.map((w) => w.id) });
  }
  return removeImageBuilds(config, name);
}
