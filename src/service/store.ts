// Workspace state in SQLite (WAL). Every mutation is committed (synchronous
// = FULL) before the service acknowledges it, so kill -9 loses nothing; other
// processes (`islet status`) read while the daemon writes. Migrations are
// numbered, forward-only, and recorded in PRAGMA user_version.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { IsletError } from '../core/errors.js';
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
];

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
      throw new IsletError('STATE_CONFLICT', `state database ${file} is at schema ${version}, newer than this islet (${MIGRATIONS.length})`,
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
      throw new IsletError('INVALID_ARGUMENT', `the name "${ref}" is used by ${rows.length} owners' workspaces`, 'use the workspace id (ws-...) instead');
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
  insertChecked(row: WorkspaceRow, limits: { total: number; perOwner: number }): void {
    this.db.transaction(() => {
      const total = (this.db.prepare('SELECT count(*) AS n FROM workspaces').get() as { n: number }).n;
      if (total >= limits.total) {
        throw new IsletError('QUOTA_EXCEEDED', `this host already has ${total} workspaces (max ${limits.total})`,
          'destroy a workspace, or raise [resources] max_workspaces', { total, max: limits.total });
      }
      const mine = (this.db.prepare('SELECT count(*) AS n FROM workspaces WHERE owner = ?').get(row.owner) as { n: number }).n;
      if (mine >= limits.perOwner) {
        throw new IsletError('QUOTA_EXCEEDED', `you already have ${mine} workspaces (max ${limits.perOwner})`,
          'destroy one of yours, or raise [resources] max_workspaces_per_owner', { owned: mine, max: limits.perOwner });
      }
      // Names are per owner: another owner's names are neither visible nor in the way.
      if (this.db.prepare('SELECT 1 FROM workspaces WHERE (name = ? AND owner = ?) OR id = ?').get(row.name, row.owner, row.name)) {
        throw new IsletError('INVALID_ARGUMENT', `a workspace named "${row.name}" already exists`, 'choose another name', { name: row.name });
      }
      this.db.prepare(`INSERT INTO workspaces (id, name, owner, state, image, vcpus, memory_mb, disk_gb, allow_internet, pid, error, created_at, updated_at)
        VALUES (@id, @name, @owner, @state, @image, @vcpus, @memory_mb, @disk_gb, @allow_internet, @pid, @error, @created_at, @updated_at)`).run(row);
    })();
  }

  setState(id: string, state: WorkspaceState, fields: { pid?: number | null; error?: string | null } = {}): void {
    this.db.prepare('UPDATE workspaces SET state = ?, pid = ?, error = ?, updated_at = ? WHERE id = ?')
      .run(state, fields.pid ?? null, fields.error ?? null, new Date().toISOString(), id);
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

  delete(id: string): void {
    this.db.prepare('DELETE FROM workspaces WHERE id = ?').run(id);
  }
}
