// The sessions table (migration 7 in store.ts): one row per agent session,
// written before any side effect so a crash mid-create is found at startup.
import type Database from 'better-sqlite3';
import type { SessionState } from '../core/session-schemas.js';

export interface SessionRow {
  id: string;
  owner: string;
  /** NULL until the workspace row exists, and again after a failed create rolled it back. */
  workspace_id: string | null;
  repo_url: string;
  branch: string;
  image: string;
  state: SessionState;
  /** The host port forwarded to OpenCode's 4096. */
  host_port: number | null;
  error: string | null;
  created_at: string;
  updated_at: string;
  ready_at: string | null;
}

export class SessionStore {
  constructor(private readonly db: Database.Database) {}

  insert(row: SessionRow): void {
    this.db.prepare(`INSERT INTO sessions (id, owner, workspace_id, repo_url, branch, image, state, host_port, error, created_at, updated_at, ready_at)
      VALUES (@id, @owner, @workspace_id, @repo_url, @branch, @image, @state, @host_port, @error, @created_at, @updated_at, @ready_at)`).run(row);
  }

  get(id: string): SessionRow | undefined {
    return this.db.prepare('SELECT * FROM sessions WHERE id = ?').get(id) as SessionRow | undefined;
  }

  all(): SessionRow[] {
    return this.db.prepare('SELECT * FROM sessions ORDER BY created_at, id').all() as SessionRow[];
  }

  byOwner(owner: string): SessionRow[] {
    return this.db.prepare('SELECT * FROM sessions WHERE owner = ? ORDER BY created_at, id').all(owner) as SessionRow[];
  }

  update(id: string, f: Partial<Pick<SessionRow, 'workspace_id' | 'state' | 'host_port' | 'error' | 'ready_at'>>): void {
    const keys = Object.keys(f) as Array<keyof typeof f>;
    if (!keys.length) return;
    const set = keys.map((k) => `${k} = @${k}`).join(', ');
    this.db.prepare(`UPDATE sessions SET ${set}, updated_at = @updated_at WHERE id = @id`).run({ ...f, id, updated_at: new Date().toISOString() });
  }

  delete(id: string): void {
    this.db.prepare('DELETE FROM sessions WHERE id = ?').run(id);
  }
}
