// Workspace lifetimes: a TTL (a running workspace stops ttl_minutes after it
// was created, started or resumed), an idle stop (it stops after
// idle_stop_minutes with no activity) and a retention (a stopped workspace
// is destroyed retention_minutes after it stopped). A stop keeps the disk.
//
// Each value is per workspace (NULL in the row: the [resources] default of
// the moment); 0 means never. The deadlines are in the database, so they
// survive a restart of the service: expires_at is stored when the workspace
// starts, the last activity is written every few seconds, and stopped_at is
// set with the state. One timer in the service (whichever process holds the
// data dir, normally the daemon) wakes at the nearest deadline.
//
// Activity is: a call that uses the running workspace (exec, files,
// processes, terminal keystrokes: WorkspaceContext.running), an exec still
// in flight (hold), and background process output. The output is checked
// when the idle deadline comes: the total bytes written by the agent's
// processes are compared with the total seen at the previous check; a
// change is activity now. With no previous check (first check, or after a
// restart) output already written counts once, so a restart never stops a
// busy workspace early. A silent process (sleep) is not activity, and
// reading workspace_info or listing workspaces is not either.
import type { Config } from '../core/config.js';
import { firstLine, InvalidArgumentError } from '../core/errors.js';
import type { SetLifetimeInput } from '../core/lifetime-schemas.js';
import type { WorkspaceRow } from './store.js';
import type { WorkspaceContext } from './workspace-context.js';

export interface LifetimeInfo {
  /** The values in force (the workspace's own, else the [resources] default); 0 = never. */
  ttl_minutes: number;
  idle_stop_minutes: number;
  retention_minutes: number;
  /** When the TTL stops it (running only). */
  expires_at: string | null;
  /** When it stops if nothing happens before (running only). */
  idle_stop_at: string | null;
  /** When the retention destroys it (stopped only). */
  destroy_at: string | null;
  last_active_at: string | null;
  /** "ttl" or "idle" when a lifetime rule stopped it. */
  stopped_by: 'ttl' | 'idle' | null;
}

type Defaults = Config['resources'];
const MIN = 60_000;
/** The timer wakes at least this often (to write the last activity) and at most this often (a busy loop guard). */
const MAX_SLEEP_MS = 30_000;
const MIN_SLEEP_MS = 250;
/** The last activity is written when it moved by more than this. */
const PERSIST_MS = 5_000;
/** A rule whose action failed (a destroy refused while forks use a snapshot) is retried after this. */
const RETRY_MS = 5 * MIN;
/** The agent's process list, asked at an idle deadline, must answer within this. */
const LIST_TIMEOUT_MS = 10_000;

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
const ms = (s: string | null | undefined) => (s ? Date.parse(s) : null);

/** The values in force for a row. */
export function effective(row: WorkspaceRow, d: Defaults): { ttl: number; idle: number; retention: number } {
  return {
    ttl: row.ttl_minutes ?? d.default_ttl_minutes,
    idle: row.idle_stop_minutes ?? d.default_idle_stop_minutes,
    retention: row.retention_minutes ?? d.default_retention_minutes,
  };
}

/** When each rule would act on this row, in ms (null: never); lastActive is the service's in-memory last activity. */
export function deadlines(row: WorkspaceRow, d: Defaults, lastActive?: number): { expires: number | null; idle: number | null; destroy: number | null; active: number } {
  const e = effective(row, d);
  // No activity recorded yet (a row from before lifetimes): count from its last change.
  const active = Math.max(lastActive ?? 0, ms(row.last_active_at) ?? ms(row.updated_at) ?? 0);
  const running = row.state === 'running';
  const stoppedAt = ms(row.stopped_at) ?? ms(row.updated_at);
  return {
    // No stored deadline (a default set while it ran): count from when it became running.
    expires: running && e.ttl > 0 ? ms(row.expires_at) ?? (ms(row.updated_at) ?? 0) + e.ttl * MIN : null,
    idle: running && e.idle > 0 ? active + e.idle * MIN : null,
    destroy: row.state === 'stopped' && e.retention > 0 && stoppedAt !== null ? stoppedAt + e.retention * MIN : null,
    active,
  };
}

export function lifetimeOf(row: WorkspaceRow, d: Defaults, lastActive?: number): LifetimeInfo {
  const e = effective(row, d);
  const t = deadlines(row, d, lastActive);
  return {
    ttl_minutes: e.ttl, idle_stop_minutes: e.idle, retention_minutes: e.retention,
    expires_at: iso(t.expires), idle_stop_at: iso(t.idle), destroy_at: iso(t.destroy),
    last_active_at: t.active > 0 ? iso(t.active) : null,
    stopped_by: row.stopped_by === 'ttl' || row.stopped_by === 'idle' ? row.stopped_by : null,
  };
}

/** What the rules do, given by WorkspaceService: each re-checks `due` inside the workspace's queue before acting. */
export interface LifetimeActions {
  stop(id: string, why: 'ttl' | 'idle', due: (row: WorkspaceRow) => boolean): Promise<boolean>;
  destroy(id: string, due: (row: WorkspaceRow) => boolean): Promise<boolean>;
}

export class Lifetimes {
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private closed = false;
  private readonly holds = new Map<string, number>();
  private readonly marks = new Map<string, number>();
  private readonly persisted = new Map<string, number>();
  private readonly retryAfter = new Map<string, number>();
  /**
   * The total output bytes of the workspace's background processes (undefined: cannot tell). Replaceable so the
   * rules can be tested on the fake agent, which has no processes.
   */
  outputMark: (id: string) => Promise<number | undefined> = (id) => this.agentOutputMark(id);

  constructor(private readonly ctx: WorkspaceContext, private readonly act: LifetimeActions, private readonly clock: () => number = Date.now) {
    ctx.onUse = (id) => this.touch(id);
  }

  private get defaults(): Defaults { return this.ctx.config.resources; }

  /** Starts the timer. */
  start(): void { this.schedule(); }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.ticking;
    this.persist(0);
  }

  /** Activity on a workspace now. */
  touch(id: string): void { this.ctx.lastActive.set(id, this.clock()); }

  /** Marks the workspace busy (an exec in flight) until the returned function is called. */
  hold(id: string): () => void {
    this.holds.set(id, (this.holds.get(id) ?? 0) + 1);
    this.touch(id);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const n = (this.holds.get(id) ?? 1) - 1;
      if (n > 0) this.holds.set(id, n); else this.holds.delete(id);
      this.touch(id);
    };
  }

  /** The workspace just began running (create, start, fork, resume): its TTL counts from now. */
  started(id: string): void {
    const row = this.ctx.store.get(id);
    if (!row) return;
    const now = this.clock();
    const ttl = effective(row, this.defaults).ttl;
    this.ctx.lastActive.set(id, now);
    this.marks.delete(id);
    this.ctx.store.setLifetime(id, { expires_at: ttl > 0 ? iso(now + ttl * MIN) : null, last_active_at: iso(now), stopped_by: null });
    this.persisted.set(id, now);
    this.schedule();
  }

  /** Changes a workspace's values (null: back to the [resources] default); a new TTL on a running workspace counts from now. */
  set(row: WorkspaceRow, input: Omit<SetLifetimeInput, 'workspace_id'>): LifetimeInfo & { workspace_id: string } {
    const keys = ['ttl_minutes', 'idle_stop_minutes', 'retention_minutes'] as const;
    if (!keys.some((k) => k in input && input[k] !== undefined)) {
      throw new InvalidArgumentError('nothing to change', 'give ttl_minutes, idle_stop_minutes or retention_minutes (0 = never, null = the default)');
    }
    const f: Parameters<typeof this.ctx.store.setLifetime>[1] = {};
    for (const k of keys) if (input[k] !== undefined) f[k] = input[k];
    this.ctx.store.setLifetime(row.id, f);
    if (input.ttl_minutes !== undefined && row.state === 'running') {
      const ttl = effective(this.ctx.mustGet(row.id), this.defaults).ttl;
      this.ctx.store.setLifetime(row.id, { expires_at: ttl > 0 ? iso(this.clock() + ttl * MIN) : null });
    }
    this.schedule();
    return this.info(this.ctx.mustGet(row.id));
  }

  info(row: WorkspaceRow): LifetimeInfo & { workspace_id: string } {
    return { workspace_id: row.id, ...lifetimeOf(row, this.defaults, this.ctx.lastActive.get(row.id)) };
  }

  /** One pass over every workspace: applies each rule that is due at `now`. Returns what it did, for tests and logs. */
  tick(now = this.clock()): Promise<string[]> {
    const run = (async () => {
      await this.ticking;
      return this.pass(now);
    })();
    this.ticking = run.then(() => undefined, () => undefined);
    return run;
  }

  private async pass(now: number): Promise<string[]> {
    const done: string[] = [];
    for (const row of this.ctx.store.all()) {
      if (this.closed) break;
      if ((this.retryAfter.get(row.id) ?? 0) > now) continue;
      const t = deadlines(row, this.defaults, this.ctx.lastActive.get(row.id));
      try {
        if (t.expires !== null && now >= t.expires) {
          const due = (r: WorkspaceRow) => r.state === 'running' && deadlines(r, this.defaults).expires !== null && now >= deadlines(r, this.defaults).expires!;
          if (await this.act.stop(row.id, 'ttl', due)) done.push(`${row.id}: stopped (ttl)`);
        } else if (t.idle !== null && now >= t.idle && !this.holds.has(row.id)) {
          if (await this.producedOutput(row.id)) {
            this.ctx.lastActive.set(row.id, now);
            continue;
          }
          const due = (r: WorkspaceRow) => r.state === 'running' && !this.holds.has(r.id)
            && (deadlines(r, this.defaults, this.ctx.lastActive.get(r.id)).idle ?? Infinity) <= now;
          if (await this.act.stop(row.id, 'idle', due)) done.push(`${row.id}: stopped (idle)`);
        } else if (t.destroy !== null && now >= t.destroy) {
          const due = (r: WorkspaceRow) => r.state === 'stopped' && (deadlines(r, this.defaults).destroy ?? Infinity) <= now;
          if (await this.act.destroy(row.id, due)) {
            done.push(`${row.id}: destroyed (retention)`);
            this.forget(row.id);
          }
        }
      } catch (e) {
        this.retryAfter.set(row.id, now + RETRY_MS);
        this.ctx.progress(`workspace ${row.name}: lifetime rule failed (${firstLine(e)}); retrying in ${RETRY_MS / MIN} min`);
      }
    }
    this.persist(PERSIST_MS);
    for (const d of done) this.ctx.progress(`lifetimes: ${d}`);
    return done;
  }

  private forget(id: string): void {
    for (const m of [this.ctx.lastActive, this.marks, this.persisted, this.retryAfter, this.holds]) m.delete(id);
  }

  /** Writes the in-memory last activity of workspaces where it moved by more than `slack` ms. */
  private persist(slack: number): void {
    for (const [id, at] of this.ctx.lastActive) {
      if (at - (this.persisted.get(id) ?? 0) <= slack) continue;
      if (!this.ctx.store.get(id)) { this.forget(id); continue; }
      this.ctx.store.setLifetime(id, { last_active_at: iso(at) });
      this.persisted.set(id, at);
    }
  }

  private async producedOutput(id: string): Promise<boolean> {
    const mark = await this.outputMark(id).catch(() => undefined);
    if (mark === undefined) return false;
    const prev = this.marks.get(id);
    this.marks.set(id, mark);
    return prev === undefined ? mark > 0 : mark !== prev;
  }

  private async agentOutputMark(id: string): Promise<number | undefined> {
    const agent = this.ctx.live.get(id)?.agent;
    if (!agent || agent.isClosed || !agent.processes.supports('proc')) return undefined;
    const procs = await agent.processes.list(AbortSignal.timeout(LIST_TIMEOUT_MS));
    return procs.reduce((n, p) => n + p.outputBytes, 0);
  }

  /** Sleeps until the nearest deadline (within [MIN_SLEEP_MS, MAX_SLEEP_MS]), runs a pass, and again. */
  private schedule(): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    const now = this.clock();
    let next = now + MAX_SLEEP_MS;
    for (const row of this.ctx.store.all()) {
      if ((this.retryAfter.get(row.id) ?? 0) > now) continue;
      const t = deadlines(row, this.defaults, this.ctx.lastActive.get(row.id));
      for (const at of [t.expires, this.holds.has(row.id) ? null : t.idle, t.destroy]) if (at !== null) next = Math.min(next, at);
    }
    this.timer = setTimeout(() => {
      void this.tick().catch(() => undefined).finally(() => this.schedule());
    }, Math.max(MIN_SLEEP_MS, next - now));
    this.timer.unref();
  }
}
