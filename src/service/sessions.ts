// Agent sessions (docs/sessions.md): one workspace per session, booted from
// agent-ready (or the image asked for), with a repository at a branch checked
// out in /home/agent/workspaces/<sessionId> owned by the agent user, OpenCode
// started as that user's opencode@<sessionId> systemd service (the session id
// is its password, as the unit says), and guest port 4096 forwarded to a host
// port. States: creating → ready (OpenCode answers /global/health through the
// forward) or failed; stopped once its workspace no longer runs. The row is
// written before any side effect; a failed create undoes its workspace and
// keeps the row, state failed, with the reason, until it is deleted.
//
// Sessions compose the workspace operations (create, exec, files, forwards,
// destroy) through the same methods every surface calls, as the session's
// owner, so ownership, quotas and bounds are the workspace rules.
import { createReadStream } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { GuestStepError, InvalidArgumentError, IsletError, firstLine } from '../core/errors.js';
import type { CreateInput, ExecInput, PortForwardInput, WorkspaceRef } from '../core/schemas.js';
import { SESSION_ID, SessionCreateInput, type SessionListInput, type SessionRef, SessionState } from '../core/session-schemas.js';
import { SessionNotFoundError } from '../core/errors.js';
import { FORWARD_HOST } from '../host/ports.js';
import { ensureSessionFront, type SessionFront } from '../images/session-front-build.js';
import { fetchRepo, redactUrl, removeTree } from './repo-fetch.js';
import { FRONT_UNIT, SESSION_CONFIG, WARM_UNIT, asAgent, sessionWarmup } from './session-template.js';
import { type SessionRow, SessionStore } from './session-store.js';
import type { Caller, ExecOutput, ForwardInfo, OpOptions, SshInfo, WorkspaceInfo } from './types.js';
import type { TemplateSpec, TemplateWarmup, Templates } from './templates.js';
import type { WorkspaceContext } from './workspace-context.js';

export const DEFAULT_SESSION_IMAGE = 'agent-ready';
/** The port opencode@.service listens on (images/agent-ready/recipe.json). */
export const OPENCODE_PORT = 4096;
/** The agent user of agent-ready: uid 1000, home /home/agent, a lingering systemd user manager. */
const AGENT_UID = 1000;
const WORKSPACES_DIR = '/home/agent/workspaces';
/** OpenCode's Bun binary loads for minutes under TCG (371 s measured); with KVM it answers in about a second. */
const READY_TIMEOUT_MS = 15 * 60_000;
const PROBE_EVERY_MS = 2_000;
/** From a template OpenCode answers within seconds of the create: asked this often for the first PROBE_FAST_FOR_MS. */
const PROBE_FAST_MS = 200;
const PROBE_FAST_FOR_MS = 60_000;
// $1 the session directory, $2 the tar, $3 uid:gid. tar runs as root, so it keeps the archive's owners (1000:1000);
// the chown still makes everything the agent user's, whatever the archive said.
const CHECKOUT = 'mkdir -p "$1"; tar --extract --file "$2" --directory "$1"; rm -f "$2"; chown -R "$3" "$1"';
/** What a session VM gets: OpenCode (Bun) needs about 1 GiB; [resources] max_memory_mb caps it. */
const SESSION_MEMORY_MB = 1024;

/** What a session is made of; WorkspaceService has these methods (the ones surfaces call). */
export interface SessionHost {
  create(c: Caller, input: CreateInput, o?: OpOptions): Promise<WorkspaceInfo>;
  createWarm(c: Caller, input: CreateInput, warm: TemplateWarmup, o?: OpOptions): Promise<{ info: WorkspaceInfo; warmed: boolean }>;
  readonly templates: Templates | undefined;
  destroy(c: Caller, input: WorkspaceRef, o?: OpOptions): Promise<unknown>;
  info(c: Caller, input: WorkspaceRef): Promise<WorkspaceInfo>;
  exec(c: Caller, input: ExecInput, o?: OpOptions): Promise<ExecOutput>;
  writeStream(c: Caller, input: { workspace_id: string; path: string; mode?: number }, source: AsyncIterable<Uint8Array>, o?: OpOptions): Promise<{ bytes: number }>;
  portForward(c: Caller, input: PortForwardInput, o?: OpOptions): Promise<ForwardInfo & { workspace_id: string }>;
}

/** true when OpenCode answered its health endpoint at url with the password (HTTP basic auth, user "opencode"). */
export type HealthProbe = (url: string, password: string, signal: AbortSignal) => Promise<boolean>;

export const probeOpenCode: HealthProbe = async (url, password, signal) => {
  try {
    const auth = Buffer.from(`opencode:${password}`).toString('base64');
    const res = await fetch(`${url}/global/health`, { headers: { authorization: `Basic ${auth}` }, signal: AbortSignal.any([signal, AbortSignal.timeout(10_000)]) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false; // not listening yet, or still loading: the next probe asks again
  }
};

export interface SessionInfo {
  sessionId: string;
  workspaceId: string | null;
  state: SessionState;
  /** OpenCode's base URL on the daemon's host (the forward of guest port 4096); null before the forward exists. */
  url: string | null;
  /** OpenCode's HTTP basic-auth password (user "opencode"): the session id, as opencode@.service sets it. */
  password: string;
  ssh: SshInfo | null;
  repoUrl: string;
  branch: string;
  imageRef: string;
  error: string | null;
  createdAt: string;
  readyAt: string | null;
}

export interface SessionOptions {
  /** false: every session starts OpenCode cold (the bench's baseline); default true, when [pool] template is on. */
  template?: boolean;
  /** The front binary to put in session templates; default: built from session-front/ (go build, cached). */
  front?: (signal?: AbortSignal) => Promise<SessionFront>;
  probe?: HealthProbe;
  readyTimeoutMs?: number;
  probeEveryMs?: number;
}

export function newSessionId(): string {
  // 20 base-32 characters (100 bits): it is also the password.
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  return `ses-${[...randomBytes(20)].map((b) => alphabet[b & 31]).join('')}`;
}

export class Sessions {
  readonly rows: SessionStore;
  private readonly watchers = new Map<string, AbortController>();
  private readonly background = new AbortController();
  private readonly probe: HealthProbe;
  private readonly readyTimeoutMs: number;
  private readonly probeEveryMs: number | undefined;
  private readonly useTemplate: boolean;
  private readonly front: (signal?: AbortSignal) => Promise<SessionFront>;

  constructor(private readonly ctx: WorkspaceContext, private readonly ws: SessionHost, o: SessionOptions = {}) {
    this.rows = new SessionStore(ctx.store.database);
    this.probe = o.probe ?? probeOpenCode;
    this.readyTimeoutMs = o.readyTimeoutMs ?? READY_TIMEOUT_MS;
    this.probeEveryMs = o.probeEveryMs;
    this.useTemplate = o.template ?? true;
    this.front = o.front ?? ((signal) => ensureSessionFront(ctx.config, ctx.progress, signal));
  }

  /** The shape of a session's workspace: what session creates ask for, so what its template is built for. */
  private shape(image: string): TemplateSpec {
    const r = this.ctx.config.resources;
    return { image, memoryMb: Math.min(SESSION_MEMORY_MB, r.max_memory_mb), vcpus: r.default_vcpus, diskGb: r.default_disk_gb, net: this.ctx.net.spareNetSpec() };
  }

  private async warmup(signal?: AbortSignal): Promise<TemplateWarmup> {
    return sessionWarmup(await this.front(signal), this.ctx.progress);
  }

  /**
   * The session template of an image, built now if there is none (a boot and
   * one cold OpenCode start: minutes under TCG). A server can call this ahead
   * of its first session; a create without a template starts the build in the
   * background and serves that session cold.
   */
  async prepareTemplate(image = DEFAULT_SESSION_IMAGE, signal?: AbortSignal): Promise<{ dir: string; builtMs: number }> {
    if (!this.ws.templates) throw new InvalidArgumentError('templates are off ([pool] template = false): sessions start OpenCode cold', 'set [pool] template = true');
    await this.ctx.rt.artifacts(image);
    const t = await this.ws.templates.ensure(this.shape(image), signal, await this.warmup(signal));
    return { dir: t.dir, builtMs: t.builtMs };
  }

  /**
   * A server's start: the session templates of these images, built one after
   * the other in the background (minutes each under TCG), so no first session
   * is cold. An image not built, or templates off, is skipped with a word.
   * Nothing waits for it; close() abandons a build in progress.
   */
  prepareInBackground(images: readonly string[]): void {
    if (images.length === 0 || !this.useTemplate || !this.ws.templates || this.ctx.closed) return;
    const signal = this.background.signal;
    void (async () => {
      for (const image of images) {
        if (signal.aborted) return;
        const t0 = performance.now();
        try {
          const t = await this.prepareTemplate(image, signal);
          this.ctx.progress(`sessions: session template of ${image} ready (${path.basename(t.dir)}, ${Math.round((performance.now() - t0) / 1000)} s here)`);
        } catch (e) {
          if (!signal.aborted) this.ctx.progress(`sessions: no session template of ${image} at start: ${firstLine(e)}`);
        }
      }
    })();
  }

  /** The warm-up to restore from when its template is built; undefined (and the build started in the background) when not. */
  private async warmIfReady(image: string, signal?: AbortSignal): Promise<TemplateWarmup | undefined> {
    const templates = this.ws.templates;
    if (!this.useTemplate || !templates) return undefined;
    let warm: TemplateWarmup;
    try {
      warm = await this.warmup(signal);
    } catch (e) {
      this.ctx.progress(`sessions: no session front (${firstLine(e)}); OpenCode starts cold`);
      return undefined;
    }
    if (await templates.find(this.shape(image), warm)) return warm;
    if (!this.ctx.closed) {
      this.ctx.progress(`sessions: no session template of ${image} yet; this session starts OpenCode cold while the template is built`);
      void templates.ensure(this.shape(image), undefined, warm).catch((e: unknown) => this.ctx.progress(`sessions: session template of ${image} failed: ${firstLine(e)}`));
    }
    return undefined;
  }

  private workDir(id: string): string {
    return path.join(this.ctx.config.paths.dataDir, 'sessions', id);
  }

  async create(c: Caller, input0: SessionCreateInput, o: OpOptions = {}): Promise<SessionInfo> {
    const parsed = SessionCreateInput.safeParse(input0);
    if (!parsed.success) {
      throw new InvalidArgumentError(parsed.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; '), 'see session_create\'s input schema');
    }
    const input = parsed.data;
    const image = input.imageRef ?? DEFAULT_SESSION_IMAGE;
    await this.ctx.rt.artifacts(image); // IMAGE_NOT_FOUND before any row exists
    const id = newSessionId();
    const now = new Date().toISOString();
    this.rows.insert({
      id, owner: c.owner, workspace_id: null, repo_url: redactUrl(input.repoUrl), branch: input.branch, image, state: 'creating',
      host_port: null, error: null, created_at: now, updated_at: now, ready_at: null,
    });
    const as: Caller = { owner: c.owner };
    let workspaceId: string | undefined;
    const t0 = performance.now();
    const phases: string[] = [];
    const lap = async <T>(name: string, p: Promise<T>): Promise<T> => {
      const t = performance.now();
      const v = await p;
      phases.push(`${name} ${Math.round(performance.now() - t)} ms`);
      return v;
    };
    try {
      // The repository first: a wrong URL or branch costs no VM.
      const repo = await lap('fetch', fetchRepo({
        url: input.repoUrl, branch: input.branch, workDir: this.workDir(id), transferDir: this.ctx.config.paths.transferDir,
        maxBytes: this.ctx.config.server.max_transfer_bytes, signal: o.signal,
      }));
      this.ctx.progress(`session ${id}: fetched ${redactUrl(input.repoUrl)} ${input.branch} (${repo.commit.slice(0, 12)}, ${repo.bytes} bytes as tar)`);
      const spec: CreateInput = { name: id, image, memory_mb: this.shape(image).memoryMb };
      const warm = await lap('template lookup', this.warmIfReady(image, o.signal));
      const { info: w, warmed } = await lap('workspace', warm ? this.ws.createWarm(as, spec, warm, o) : this.ws.create(as, spec, o).then((info) => ({ info, warmed: false })));
      const wsId = w.workspace_id;
      workspaceId = wsId;
      this.rows.update(id, { workspace_id: wsId });
      // At once: the front needs no checkout to be configured (it names the directory per request, and readiness is
      // asked only after this create returns, so never before the checkout is in place), and the forward is the host's.
      const [, , fwd] = await Promise.all([
        lap('checkout', this.checkout(as, wsId, id, repo.tarPath, o).then(() => removeTree(this.workDir(id)))),
        warmed ? lap('front', this.configureFront(as, wsId, id, o)) : undefined,
        lap('forward', this.ws.portForward(as, { workspace_id: wsId, guest_port: OPENCODE_PORT }, o)),
      ]);
      // Cold, OpenCode starts in the checkout (its unit's working directory), so after it.
      if (!warmed) await lap('opencode start', this.startCold(as, wsId, id, o));
      this.ctx.progress(`session ${id}: ${warmed ? 'restored with OpenCode and its front running (session template); the front configured' : 'OpenCode started cold'}`);
      this.rows.update(id, { host_port: fwd.host_port });
    } catch (e) {
      if (workspaceId) await this.ws.destroy(as, { workspace_id: workspaceId }).catch(() => undefined);
      await removeTree(this.workDir(id)).catch(() => undefined);
      this.rows.update(id, { state: 'failed', workspace_id: null, host_port: null, error: firstLine(e) });
      throw e;
    }
    this.ctx.progress(`session ${id}: created in ${Math.round(performance.now() - t0)} ms (${phases.join(', ')})`);
    this.watch(id);
    return this.infoOf(this.rows.get(id)!);
  }

  /**
   * The tar into the guest through the agent's file stream, extracted there,
   * owned by the agent user. One exec for the four steps, the paths as
   * arguments: each exec is a round trip and a shell started in the guest.
   */
  private async checkout(as: Caller, wsId: string, id: string, tarPath: string, o: OpOptions): Promise<void> {
    const dir = `${WORKSPACES_DIR}/${id}`;
    const guestTar = `/var/tmp/islet-session-${id}.tar`;
    await this.ws.writeStream(as, { workspace_id: wsId, path: guestTar, mode: 0o600 }, createReadStream(tarPath), o);
    await this.guest(as, wsId, ['sh', '-ec', CHECKOUT, 'islet-checkout', dir, guestTar, `${AGENT_UID}:${AGENT_UID}`], 'extract the repository', o);
  }

  /** The cold path: OpenCode's own unit, opencode@<id>, whose password is its instance name. */
  private async startCold(as: Caller, wsId: string, id: string, o: OpOptions): Promise<void> {
    await this.guest(as, wsId, ['systemctl', 'start', `user@${AGENT_UID}.service`], 'start the agent user\'s systemd manager', o);
    await this.guest(as, wsId, [...asAgent(), 'systemctl', '--user', 'start', '--no-block', `opencode@${id}.service`], `start opencode@${id}`, o);
  }

  /**
   * The template path: OpenCode and the front already run (the template
   * started both); the front answers 503 until this file holds the session's
   * password and directory, and then serves this session only. One file write,
   * no program started in the guest: the agent writes it whole (a rename), as
   * root, 0644 in the agent user's runtime directory, which is 0700 the
   * user's, so only that user (the front's) and root can read it.
   */
  private async configureFront(as: Caller, wsId: string, id: string, o: OpOptions): Promise<void> {
    const config = Buffer.from(`${id}\n${WORKSPACES_DIR}/${id}\n`);
    await this.ws.writeStream(as, { workspace_id: wsId, path: SESSION_CONFIG, mode: 0o644 }, (async function* () { yield config; })(), o);
  }

  /** One argv run as root in the guest; a non-zero exit is this step's failure. */
  private async guest(as: Caller, wsId: string, argv: string[], what: string, o: OpOptions): Promise<ExecOutput> {
    const r = await this.ws.exec(as, { workspace_id: wsId, command: argv, timeout_ms: 120_000 }, o);
    if (r.exit_code !== 0) {
      throw new GuestStepError(`session: could not ${what} (exit ${r.exit_code}): ${firstLine(r.stderr.trim() || r.stdout.trim())}`,
        'the image must have the agent user (uid 1000) with a lingering systemd user manager and opencode@.service, as agent-ready does',
        { argv, exit_code: r.exit_code });
    }
    return r;
  }

  /** Polls OpenCode's health through the forward until it answers (ready) or the deadline passes (failed). */
  private watch(id: string): void {
    if (this.watchers.has(id) || this.ctx.closed) return;
    const ac = new AbortController();
    this.watchers.set(id, ac);
    const row0 = this.rows.get(id);
    const deadline = Date.parse(row0?.created_at ?? new Date().toISOString()) + this.readyTimeoutMs;
    const fastUntil = Date.now() + PROBE_FAST_FOR_MS;
    void (async () => {
      while (!ac.signal.aborted) {
        const row = this.rows.get(id);
        if (!row || row.state !== 'creating' || !row.host_port) return;
        if (await this.probe(urlOf(row.host_port), row.id, ac.signal)) {
          if (!ac.signal.aborted && this.rows.get(id)?.state === 'creating') {
            this.rows.update(id, { state: 'ready', ready_at: new Date().toISOString() });
            this.ctx.progress(`session ${id}: ready (OpenCode answers ${urlOf(row.host_port)}/global/health)`);
          }
          return;
        }
        if (Date.now() > deadline) {
          this.rows.update(id, { state: 'failed', error: `OpenCode did not answer /global/health within ${Math.round(this.readyTimeoutMs / 1000)} s` });
          return;
        }
        const every = this.probeEveryMs ?? (Date.now() < fastUntil ? PROBE_FAST_MS : PROBE_EVERY_MS);
        await new Promise((r) => setTimeout(r, every).unref());
      }
    })().catch((e: unknown) => this.ctx.progress(`session ${id}: readiness watch failed: ${firstLine(e)}`))
      .finally(() => { if (this.watchers.get(id) === ac) this.watchers.delete(id); });
  }

  /** After a restart: creating sessions whose workspace runs are watched again; those cut short mid-create fail. */
  resume(): void {
    for (const row of this.rows.all()) {
      if (row.state !== 'creating') continue;
      const ws = row.workspace_id ? this.ctx.store.get(row.workspace_id) : undefined;
      if (ws?.state === 'running' && row.host_port) this.watch(row.id);
      else this.rows.update(row.id, { state: 'failed', error: 'the create was interrupted (the daemon stopped before it finished)' });
    }
  }

  close(): void {
    this.background.abort();
    for (const ac of this.watchers.values()) ac.abort();
    this.watchers.clear();
  }

  /** Unknown and foreign sessions look the same, as for workspaces. */
  private resolve(c: Caller, ref: SessionRef | string): SessionRow {
    const id = typeof ref === 'string' ? ref : ref.sessionId;
    const row = SESSION_ID.test(id) ? this.rows.get(id) : undefined;
    if (!row || (!c.admin && row.owner !== c.owner)) throw new SessionNotFoundError(id);
    return row;
  }

  /** A live session whose workspace stopped or went away is stopped, recorded as such. */
  private settle(row: SessionRow): SessionRow {
    if (row.state !== 'creating' && row.state !== 'ready') return row;
    if (!row.workspace_id) return row; // creating: the workspace is not there yet
    const ws = this.ctx.store.get(row.workspace_id);
    if (ws?.state === 'running' || ws?.state === 'creating') return row;
    this.watchers.get(row.id)?.abort();
    this.rows.update(row.id, { state: 'stopped', error: ws ? `its workspace is ${ws.state}` : 'its workspace was destroyed' });
    return this.rows.get(row.id)!;
  }

  async get(c: Caller, ref: SessionRef): Promise<SessionInfo> {
    return this.infoOf(this.settle(this.resolve(c, ref)));
  }

  async list(c: Caller, input: SessionListInput = {}): Promise<SessionInfo[]> {
    const rows = (c.admin ? this.rows.all() : this.rows.byOwner(c.owner)).map((r) => this.settle(r));
    return Promise.all(rows.filter((r) => !input.state || r.state === input.state).map((r) => this.infoOf(r)));
  }

  /** Stops OpenCode, destroys the workspace (its disk, forwards and key with it), and forgets the session. */
  async destroy(c: Caller, ref: SessionRef, o: OpOptions = {}): Promise<{ sessionId: string; deleted: true }> {
    const row = this.resolve(c, ref);
    this.watchers.get(row.id)?.abort();
    const as: Caller = { owner: row.owner };
    const ws = row.workspace_id ? this.ctx.store.get(row.workspace_id) : undefined;
    if (ws) {
      // A clean stop first, so OpenCode can flush its state; the workspace goes either way.
      if (ws.state === 'running') {
        // Whichever path started it: opencode@<id> (cold), or the template's OpenCode and this session's front.
        await this.ws.exec(as, { workspace_id: ws.id, command: [...asAgent(), 'systemctl', '--user', 'stop', `opencode@${row.id}.service`, FRONT_UNIT, WARM_UNIT], timeout_ms: 30_000 }, o)
          .catch((e: unknown) => this.ctx.progress(`session ${row.id}: stopping OpenCode failed (${firstLine(e)}); destroying the workspace anyway`));
      }
      await this.ws.destroy(as, { workspace_id: ws.id }, o).catch((e: unknown) => {
        if (!(e instanceof IsletError && e.code === 'WORKSPACE_NOT_FOUND')) throw e;
      });
    }
    await removeTree(this.workDir(row.id));
    this.rows.delete(row.id);
    return { sessionId: row.id, deleted: true as const };
  }

  private async infoOf(row: SessionRow): Promise<SessionInfo> {
    const ws = row.workspace_id ? this.ctx.store.get(row.workspace_id) : undefined;
    const ssh = ws ? (await this.ws.info({ owner: row.owner }, { workspace_id: ws.id }).catch(() => undefined))?.ssh ?? null : null;
    return {
      sessionId: row.id, workspaceId: row.workspace_id, state: row.state, url: row.host_port ? urlOf(row.host_port) : null, password: row.id, ssh,
      repoUrl: row.repo_url, branch: row.branch, imageRef: row.image, error: row.error, createdAt: row.created_at, readyAt: row.ready_at,
    };
  }
}

const urlOf = (port: number) => `http://${FORWARD_HOST}:${port}`;
