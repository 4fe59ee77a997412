// Workspace state in SQLite (WAL). Every mutation is committed (synchronous
// = FULL) before the service acknowledges it, so kill -9 loses nothing; other
// processes (`islet status`) read while the daemon writes. Migrations are
// numbered, forward-only, and recorded in PRAGMA user_version.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { InternalError, InvalidArgumentError, QuotaExceededError, StateConflictError } from '../core/errors.js';
import type { WorkspaceState } from '../core/schemas.js';

export interface WorkspaceRow {
  id: string;
  name: string;
  owner: string;
  state: WorkspaceState;
  image: string;
  vcpus: number;
  memory_mb: number;
  disk_gb: number;
  allow_internet: number;
  pid: number | null;
  error: string | null;
  created_at: string;
  updated_at: string;
  /** The active disk overlay; NULL: the legacy <data_dir>/disks/<id>.qcow2. */
  disk_path: string | null;
  /** The snapshot whose file backs the active overlay (NULL: the base image). A fork's is its source snapshot. */
  backing_snapshot_id: string | null;
  // Lifetimes (lifetimes.ts): minutes, 0 = never, NULL = the [resources] default of the moment.
  ttl_minutes?: number | null;
  idle_stop_minutes?: number | null;
  retention_minutes?: number | null;
  /** While running: when the TTL stops it (set at create, start, resume and by a lifetime change). */
  expires_at?: string | null;
  /** The last exec, process output or client call seen (written at most every few seconds). */
  last_active_at?: string | null;
  /** When it last became stopped (retention counts from here). */
  stopped_at?: string | null;
  /** "ttl" or "idle" when a lifetime rule stopped it; cleared when it starts. */
  stopped_by?: string | null;
  /** 'run': the throwaway workspace of one `islet run` (run-ops.ts), destroyed when the run ends and by reconcile. */
  kind?: WorkspaceKind;
}

export type WorkspaceKind = 'workspace' | 'run';

/** A row to insert: a new workspace's disk is at the legacy path unless said otherwise. */
export type NewWorkspaceRow = Omit<WorkspaceRow, 'disk_path' | 'backing_snapshot_id'> & Partial<Pick<WorkspaceRow, 'disk_path' | 'backing_snapshot_id'>>;

export interface SnapshotRow {
  id: string;
  workspace_id: string;
  name: string;
  created_at: string;
  /** The snapshot this one's file is backed by (NULL: the base image); may be another workspace's (forks). */
  parent_id: string | null;
  /** The immutable qcow2 file holding the disk state. */
  file: string;
  description: string | null;
  size_bytes: number | null;
  has_memory: number;
  /** 'creating' until every side effect is done: startup finishes or rolls it back. */
  state: 'creating' | 'ready';
  /** While creating: the active overlay the workspace will have afterwards. */
  op_disk: string | null;
  qemu_version: string | null;
}

const MIGRATIONS: string[] = [
  // 1: workspaces and (for the snapshot feature) their snapshots.
  `CREATE TABLE workspaces (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     owner TEXT NOT NULL,
     state TEXT NOT NULL,
     image TEXT NOT NULL,
     vcpus INTEGER NOT NULL,
     memory_mb INTEGER NOT NULL,
     disk_gb INTEGER NOT NULL,
     allow_internet INTEGER NOT NULL,
     pid INTEGER,
     error TEXT,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL
   );
   CREATE UNIQUE INDEX workspaces_owner_name ON workspaces(owner, name);
   CREATE TABLE snapshots (
     id TEXT PRIMARY KEY,
     workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
     name TEXT NOT NULL,
     created_at TEXT NOT NULL,
     UNIQUE (workspace_id, name)
   );`,
  // 2: port forwards (user-mode networking), re-applied when a workspace starts.
  `CREATE TABLE port_forwards (
     workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
     host_port INTEGER NOT NULL CHECK (host_port BETWEEN 1 AND 65535),
     guest_port INTEGER NOT NULL CHECK (guest_port BETWEEN 1 AND 65535),
     created_at TEXT NOT NULL,
     PRIMARY KEY (workspace_id, host_port)
   );
   CREATE UNIQUE INDEX port_forwards_host_port ON port_forwards(host_port);`,
  // 3: snapshots as qcow2 chains: where each workspace's active overlay is, and each snapshot's file and parent.
  `ALTER TABLE workspaces ADD COLUMN disk_path TEXT;
   ALTER TABLE workspaces ADD COLUMN backing_snapshot_id TEXT;
   ALTER TABLE snapshots ADD COLUMN parent_id TEXT;
   ALTER TABLE snapshots ADD COLUMN file TEXT NOT NULL DEFAULT '';
   ALTER TABLE snapshots ADD COLUMN description TEXT;
   ALTER TABLE snapshots ADD COLUMN size_bytes INTEGER;
   ALTER TABLE snapshots ADD COLUMN has_memory INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE snapshots ADD COLUMN state TEXT NOT NULL DEFAULT 'ready';
   ALTER TABLE snapshots ADD COLUMN op_disk TEXT;
   ALTER TABLE snapshots ADD COLUMN qemu_version TEXT;
   CREATE INDEX snapshots_parent ON snapshots(parent_id);
   CREATE INDEX workspaces_backing ON workspaces(backing_snapshot_id);`,
  // 4: the warm pool's unassigned VMs (src/service/pool.ts), so status sees them and a restart after kill -9 ends them.
  `CREATE TABLE pool_vms (
     id TEXT PRIMARY KEY,
     image TEXT NOT NULL,
     vcpus INTEGER NOT NULL,
     memory_mb INTEGER NOT NULL,
     disk_gb INTEGER NOT NULL,
     allow_internet INTEGER NOT NULL,
     state TEXT NOT NULL,
     pid INTEGER,
     source TEXT,
     created_at TEXT NOT NULL
   );`,
  // 5: bridge networking: each workspace's stable address (freed with the workspace, then reused) and its policy beyond allow_internet.
  `CREATE TABLE net_leases (
     workspace_id TEXT PRIMARY KEY REFERENCES workspaces(id) ON DELETE CASCADE,
     ip TEXT NOT NULL UNIQUE,
     created_at TEXT NOT NULL
   );
   CREATE TABLE net_policies (
     workspace_id TEXT PRIMARY KEY REFERENCES workspaces(id) ON DELETE CASCADE,
     allow_inter_vm INTEGER NOT NULL,
     allowed_ports TEXT NOT NULL,
     allowed_domains TEXT NOT NULL
   );`,
  // 6: lifetimes (src/service/lifetimes.ts): per-workspace TTL, idle stop and retention, and the deadlines they set.
  `ALTER TABLE workspaces ADD COLUMN ttl_minutes REAL;
   ALTER TABLE workspaces ADD COLUMN idle_stop_minutes REAL;
   ALTER TABLE workspaces ADD COLUMN retention_minutes REAL;
   ALTER TABLE workspaces ADD COLUMN expires_at TEXT;
   ALTER TABLE workspaces ADD COLUMN last_active_at TEXT;
   ALTER TABLE workspaces ADD COLUMN stopped_at TEXT;
   ALTER TABLE workspaces ADD COLUMN stopped_by TEXT;`,
  // 7: agent sessions (src/service/sessions.ts, session-store.ts). No foreign key to workspaces: a failed
  // session outlives its rolled-back workspace, so its error stays readable until it is deleted.
  `CREATE TABLE sessions (
     id TEXT PRIMARY KEY,
     owner TEXT NOT NULL,
     workspace_id TEXT,
     repo_url TEXT NOT NULL,
     branch TEXT NOT NULL,
     image TEXT NOT NULL,
     state TEXT NOT NULL,
     host_port INTEGER,
     error TEXT,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL,
     ready_at TEXT
   );
   CREATE INDEX sessions_owner ON sessions(owner);`,
  // 8: throwaway workspaces of `islet run` (run-ops.ts): a daemon that starts finds them orphaned and removes them.
  `ALTER TABLE workspaces ADD COLUMN kind TEXT NOT NULL DEFAULT 'workspace';`,
];

/** A workspace's network policy beyond allow_internet (bridge mode); the lists are JSON arrays. */
export interface NetPolicyRow {
  workspace_id: string;
  allow_inter_vm: number;
  allowed_ports: string;
  allowed_domains: string;
}

/** A pre-booted, unassigned VM of the warm pool; its id is the workspace id it will have. */
export interface PoolVmRow {
  id: string;
  image: string;
  vcpus: number;
  memory_mb: number;
  disk_gb: number;
  allow_internet: number;
  state: 'booting' | 'ready';
  pid: number | null;
  /** How it was started: 'template' or 'cold'. */
  source: string | null;
  created_at: string;
}

export interface ForwardRow {
  workspace_id: string;
  host_port: number;
  guest_port: number;
  created_at: string;
}

export class Store {
  private constructor(private readonly db: Database.Database) {}

  static open(file: string): Store {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > MIGRATIONS.length) {
      db.close();
      throw new StateConflictError(`state database ${file} is at schema ${version}, newer than this islet (${MIGRATIONS.length})`,
        'upgrade islet, or point [storage] data_dir elsewhere');
    }
    for (let v = version; v < MIGRATIONS.length; v++) {
      db.transaction(() => {
        db.exec(MIGRATIONS[v]!);
        db.pragma(`user_version = ${v + 1}`);
      })();
    }
    return new Store(db);
  }

  close(): void {
    this.db.close();
  }

  /** The connection, for collaborators that keep their own tables here (session-store.ts); its migrations are above. */
  get database(): Database.Database {
    return this.db;
  }

  all(): WorkspaceRow[] {
    return this.db.prepare('SELECT * FROM workspaces ORDER BY created_at, id').all() as WorkspaceRow[];
  }

  byOwner(owner: string): WorkspaceRow[] {
    return this.db.prepare('SELECT * FROM workspaces WHERE owner = ? ORDER BY created_at, id').all(owner) as WorkspaceRow[];
  }

  get(id: string): WorkspaceRow | undefined {
    return this.db.prepare('SELECT * FROM workspaces WHERE id = ?').get(id) as WorkspaceRow | undefined;
  }

  /**
   * By id, else by name. Names are unique per owner, so a name is looked up
   * among the owner's workspaces (or, for an admin, must be unambiguous).
   */
  find(ref: string, owner?: string): WorkspaceRow | undefined {
    const byId = this.get(ref);
    if (byId) return byId;
    const rows = (owner === undefined
      ? this.db.prepare('SELECT * FROM workspaces WHERE name = ?').all(ref)
      : this.db.prepare('SELECT * FROM workspaces WHERE name = ? AND owner = ?').all(ref, owner)) as WorkspaceRow[];
    if (rows.length > 1) {
      throw new InvalidArgumentError(`the name "${ref}" is used by ${rows.length} owners' workspaces`, 'use the workspace id (ws-...) instead');
    }
    return rows[0];
  }

  snapshotCount(id: string): number {
    return (this.db.prepare('SELECT count(*) AS n FROM snapshots WHERE workspace_id = ?').get(id) as { n: number }).n;
  }

  /**
   * Inserts a new workspace after checking quotas and the name, atomically:
   * two concurrent creates cannot both take the last slot or the same name.
   */
  insertChecked(row0: NewWorkspaceRow, limits: { total: number; perOwner: number }): void {
    const row: WorkspaceRow = { disk_path: null, backing_snapshot_id: null, kind: 'workspace', ...row0 };
    this.db.transaction(() => {
      const total = (this.db.prepare('SELECT count(*) AS n FROM workspaces').get() as { n: number }).n;
      if (total >= limits.total) {
        throw new QuotaExceededError(`this host already has ${total} workspaces (max ${limits.total})`,
          'destroy a workspace, or raise [resources] max_workspaces', { total, max: limits.total });
      }
      const mine = (this.db.prepare('SELECT count(*) AS n FROM workspaces WHERE owner = ?').get(row.owner) as { n: number }).n;
      if (mine >= limits.perOwner) {
        throw new QuotaExceededError(`you already have ${mine} workspaces (max ${limits.perOwner})`,
          'destroy one of yours, or raise [resources] max_workspaces_per_owner', { owned: mine, max: limits.perOwner });
      }
      // Names are per owner: another owner's names are neither visible nor in the way.
      if (this.db.prepare('SELECT 1 FROM workspaces WHERE (name = ? AND owner = ?) OR id = ?').get(row.name, row.owner, row.name)) {
        throw new InvalidArgumentError(`a workspace named "${row.name}" already exists`, 'choose another name', { name: row.name });
      }
      this.db.prepare(`INSERT INTO workspaces (id, name, owner, state, image, vcpus, memory_mb, disk_gb, allow_internet, pid, error,
          created_at, updated_at, disk_path, backing_snapshot_id, kind)
        VALUES (@id, @name, @owner, @state, @image, @vcpus, @memory_mb, @disk_gb, @allow_internet, @pid, @error,
          @created_at, @updated_at, @disk_path, @backing_snapshot_id, @kind)`).run(row);
    })();
  }

  // --- warm pool ---

  poolVms(): PoolVmRow[] {
    return this.db.prepare('SELECT * FROM pool_vms ORDER BY created_at, id').all() as PoolVmRow[];
  }

  insertPoolVm(row: PoolVmRow): void {
    this.db.prepare(`INSERT INTO pool_vms (id, image, vcpus, memory_mb, disk_gb, allow_internet, state, pid, source, created_at)
      VALUES (@id, @image, @vcpus, @memory_mb, @disk_gb, @allow_internet, @state, @pid, @source, @created_at)`).run(row);
  }

  setPoolVm(id: string, fields: { state: PoolVmRow['state']; pid: number | null; source: string | null }): void {
    this.db.prepare('UPDATE pool_vms SET state = ?, pid = ?, source = ? WHERE id = ?').run(fields.state, fields.pid, fields.source, id);
  }

  deletePoolVm(id: string): void {
    this.db.prepare('DELETE FROM pool_vms WHERE id = ?').run(id);
  }

  /**
   * Hands a pool VM to a new workspace: the workspace row (checked as by
   * insertChecked) appears and the pool row disappears in one transaction, so
   * after a crash the VM is either the workspace's or the pool's, never both.
   */
  claimPoolVm(poolId: string, row: NewWorkspaceRow, limits: { total: number; perOwner: number }): void {
    this.db.transaction(() => {
      if (this.db.prepare('DELETE FROM pool_vms WHERE id = ?').run(poolId).changes !== 1) {
        throw new InternalError(`pool VM ${poolId} is no longer in the pool`);
      }
      this.insertChecked(row, limits);
    })();
  }

  setState(id: string, state: WorkspaceState, fields: { pid?: number | null; error?: string | null } = {}): void {
    const now = new Date().toISOString();
    // stopped_at: the first moment of this stop (retention counts from it); any other state clears it.
    this.db.prepare(`UPDATE workspaces SET state = ?, pid = ?, error = ?, updated_at = ?,
        stopped_at = CASE WHEN ? = 'stopped' THEN COALESCE(stopped_at, ?) ELSE NULL END WHERE id = ?`)
      .run(state, fields.pid ?? null, fields.error ?? null, now, state, now, id);
  }

  /** Writes lifetime columns (lifetimes.ts); keys left out are kept. */
  setLifetime(id: string, f: Partial<Pick<WorkspaceRow, 'ttl_minutes' | 'idle_stop_minutes' | 'retention_minutes' | 'expires_at' | 'last_active_at' | 'stopped_by'>>): void {
    const keys = (['ttl_minutes', 'idle_stop_minutes', 'retention_minutes', 'expires_at', 'last_active_at', 'stopped_by'] as const).filter((k) => k in f);
    if (!keys.length) return;
    this.db.prepare(`UPDATE workspaces SET ${keys.map((k) => `${k} = @${k}`).join(', ')} WHERE id = @id`)
      .run({ id, ...Object.fromEntries(keys.map((k) => [k, f[k] ?? null])) });
  }

  setAllowInternet(id: string, allow: boolean): void {
    this.db.prepare('UPDATE workspaces SET allow_internet = ?, updated_at = ? WHERE id = ?').run(allow ? 1 : 0, new Date().toISOString(), id);
  }

  forwards(id: string): ForwardRow[] {
    return this.db.prepare('SELECT * FROM port_forwards WHERE workspace_id = ? ORDER BY host_port').all(id) as ForwardRow[];
  }

  /** The forward recorded on this host port, by any workspace. */
  forwardOnHostPort(hostPort: number): ForwardRow | undefined {
    return this.db.prepare('SELECT * FROM port_forwards WHERE host_port = ?').get(hostPort) as ForwardRow | undefined;
  }

  addForward(row: ForwardRow): void {
    this.db.prepare('INSERT INTO port_forwards (workspace_id, host_port, guest_port, created_at) VALUES (@workspace_id, @host_port, @guest_port, @created_at)')
      .run(row);
  }

  removeForward(id: string, hostPort: number): boolean {
    return this.db.prepare('DELETE FROM port_forwards WHERE workspace_id = ? AND host_port = ?').run(id, hostPort).changes > 0;
  }

  // --- bridge networking ---

  lease(id: string): string | undefined {
    return (this.db.prepare('SELECT ip FROM net_leases WHERE workspace_id = ?').get(id) as { ip: string } | undefined)?.ip;
  }

  /** Gives the workspace a new address picked among the free ones (its old lease, if any, is dropped first); undefined when none is free. */
  allocateLease(id: string, pick: (used: string[]) => string | undefined): string | undefined {
    return this.db.transaction(() => {
      this.db.prepare('DELETE FROM net_leases WHERE workspace_id = ?').run(id);
      const used = (this.db.prepare('SELECT ip FROM net_leases').all() as Array<{ ip: string }>).map((r) => r.ip);
      const ip = pick(used);
      if (ip) this.db.prepare('INSERT INTO net_leases (workspace_id, ip, created_at) VALUES (?, ?, ?)').run(id, ip, new Date().toISOString());
      return ip;
    })();
  }

  netPolicy(id: string): NetPolicyRow | undefined {
    return this.db.prepare('SELECT * FROM net_policies WHERE workspace_id = ?').get(id) as NetPolicyRow | undefined;
  }

  setNetPolicy(row: NetPolicyRow): void {
    this.db.prepare(`INSERT INTO net_policies (workspace_id, allow_inter_vm, allowed_ports, allowed_domains)
      VALUES (@workspace_id, @allow_inter_vm, @allowed_ports, @allowed_domains)
      ON CONFLICT(workspace_id) DO UPDATE SET allow_inter_vm = excluded.allow_inter_vm, allowed_ports = excluded.allowed_ports,
        allowed_domains = excluded.allowed_domains`).run(row);
  }

  // --- snapshots ---

  snapshots(workspaceId: string): SnapshotRow[] {
    return this.db.prepare('SELECT * FROM snapshots WHERE workspace_id = ? ORDER BY created_at, rowid').all(workspaceId) as SnapshotRow[];
  }

  allSnapshots(): SnapshotRow[] {
    return this.db.prepare('SELECT * FROM snapshots ORDER BY created_at, rowid').all() as SnapshotRow[];
  }

  /** A workspace's snapshot by id or name. */
  findSnapshot(workspaceId: string, ref: string): SnapshotRow | undefined {
    return this.db.prepare('SELECT * FROM snapshots WHERE workspace_id = ? AND (id = ? OR name = ?) ORDER BY id = ? DESC')
      .get(workspaceId, ref, ref, ref) as SnapshotRow | undefined;
  }

  getSnapshot(id: string): SnapshotRow | undefined {
    return this.db.prepare('SELECT * FROM snapshots WHERE id = ?').get(id) as SnapshotRow | undefined;
  }

  /** What depends on the given snapshots' files: snapshots backed by them, and workspaces whose active overlay is. */
  dependentsOf(ids: string[]): { snapshots: SnapshotRow[]; workspaces: WorkspaceRow[] } {
    if (!ids.length) return { snapshots: [], workspaces: [] };
    const q = ids.map(() => '?').join(',');
    return {
      snapshots: this.db.prepare(`SELECT * FROM snapshots WHERE parent_id IN (${q})`).all(...ids) as SnapshotRow[],
      workspaces: this.db.prepare(`SELECT * FROM workspaces WHERE backing_snapshot_id IN (${q})`).all(...ids) as WorkspaceRow[],
    };
  }

  /** Records intent: the snapshot row exists (state 'creating') before any file is touched. */
  insertSnapshot(row: SnapshotRow): void {
    this.db.transaction(() => {
      if (this.db.prepare('SELECT 1 FROM snapshots WHERE workspace_id = ? AND name = ?').get(row.workspace_id, row.name)) {
        throw new InvalidArgumentError(`workspace already has a snapshot named "${row.name}"`, 'choose another name, or delete the old one',
          { name: row.name });
      }
      this.db.prepare(`INSERT INTO snapshots (id, workspace_id, name, created_at, parent_id, file, description, size_bytes, has_memory, state, op_disk, qemu_version)
        VALUES (@id, @workspace_id, @name, @created_at, @parent_id, @file, @description, @size_bytes, @has_memory, @state, @op_disk, @qemu_version)`).run(row);
    })();
  }

  /** The commit point of snapshot_create: the snapshot is ready and the workspace's disk is its new overlay, in one transaction. */
  finishSnapshot(id: string, workspaceId: string, diskPath: string, sizeBytes: number | null): void {
    this.db.transaction(() => {
      this.db.prepare("UPDATE snapshots SET state = 'ready', op_disk = NULL, size_bytes = ? WHERE id = ?").run(sizeBytes, id);
      this.setDisk(workspaceId, diskPath, id);
    })();
  }

  setDisk(id: string, diskPath: string | null, backingSnapshotId: string | null): void {
    this.db.prepare('UPDATE workspaces SET disk_path = ?, backing_snapshot_id = ?, updated_at = ? WHERE id = ?')
      .run(diskPath, backingSnapshotId, new Date().toISOString(), id);
  }

  clearMemory(id: string): void {
    this.db.prepare('UPDATE snapshots SET has_memory = 0 WHERE id = ?').run(id);
  }

  deleteSnapshot(id: string): void {
    this.db.prepare('DELETE FROM snapshots WHERE id = ?').run(id);
  }

  delete(id: string): void {
    this.db.prepare('DELETE FROM workspaces WHERE id = ?').run(id);
  }
}
