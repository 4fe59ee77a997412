// WorkspaceService: the one place that orchestrates workspace lifecycle —
// ownership, quotas, state transitions, persistence, cleanup. Surfaces (MCP,
// CLI, HTTP) only parse, call one of these methods, and render. It is built
// by composition: the shared state and rules (WorkspaceContext, with the
// state table in transitions.ts), and collaborators for the network
// (network-ops.ts) and snapshot (snapshot-ops.ts) operations, which the
// methods at the bottom hand their calls to.
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../core/config.js';
import { execStreams } from '../core/encoding.js';
import { FileTooLargeError, firstLine, IsletError, QuotaExceededError, WorkspaceNotFoundError } from '../core/errors.js';
import { phase } from '../core/phases.js';
import { Progress, silent } from '../core/progress.js';
import type {
  CreateInput, ExecInput, FileDownloadInput, FileReadInput, FileUploadInput, FileWriteInput, ForkInput, ListInput, NetworkPolicyInput,
  PortForwardInput, PortForwardRemoveInput, SnapshotCreateInput, SnapshotRefInput, WorkspaceRef,
} from '../core/schemas.js';
import { newWorkspaceId } from '../core/schemas.js';
import { guestProxyEnv } from '../net/egress.js';
import { ensureEgressHelper } from '../net/egress-build.js';
import type {
  ProcessKillInput, ProcessOutputInput, ProcessRef, ProcessStartInput, ProcessWaitInput, ProcessWriteInput,
} from '../core/process-schemas.js';
import { acquireLock, Lock } from './lock.js';
import { FileOps } from './file-ops.js';
import { type SessionInfo, type SessionOptions, Sessions } from './sessions.js';
import type { SessionCreateInput, SessionListInput, SessionRef } from '../core/session-schemas.js';
import { NetworkOps } from './network-ops.js';
import { ProcessInfo, ProcessListOutput, ProcessOps, ProcessOutputOutput, ProcessWriteOutput, RawOutput } from './process-ops.js';
import type { Machine } from './machine.js';
import type { FileStream } from '../guest/agent.js';
import { WarmPool } from './pool.js';
import { reconcile } from './reconcile.js';
import { Liveness } from './liveness.js';
import { type LifetimeInfo, Lifetimes } from './lifetimes.js';
import type { SetLifetimeInput } from '../core/lifetime-schemas.js';
import { type PoolStatusRow, readPool, readStatus, type StatusRow } from './state-reader.js';
import { type CatalogRow, listImages } from '../images/catalog.js';
import { Runtime, type RuntimeDeps } from './runtime.js';
import { SnapshotOps } from './snapshot-ops.js';
import * as snaps from './snapshots.js';
import { ensureWorkspaceKey, removeWorkspaceKey, sweepKeys } from './ssh.js';
import { assertState } from './transitions.js';
import { WorkspaceContext } from './workspace-context.js';
import { SnapshotRow, Store, WorkspaceRow } from './store.js';
import { freshIdentity } from './identity.js';
import { type TemplateWarmup, Templates } from './templates.js';
import { PrerootTemplates } from './preroot.js';
import type {
  Caller, ExecHooks, ExecOutput, ForwardInfo, NetworkPolicyOutput, OpOptions, SnapshotCreateOutput, SnapshotDeleteOutput,
  SnapshotListOutput, SnapshotRestoreOutput, WorkspaceInfo, WorkspaceIpOutput,
} from './types.js';


const DEFAULT_EXEC_TIMEOUT_MS = 30_000;

export class WorkspaceService {
  private readonly ctx: WorkspaceContext;
  private readonly net: NetworkOps;
  private readonly snapshots: SnapshotOps;
  private readonly procs: ProcessOps;
  private readonly files: FileOps;
  private readonly sessions: Sessions;
  private readonly liveness = new Liveness();
  /** TTL, idle stop and retention (lifetimes.ts); its timer runs while the service is open. */
  readonly lifetimes: Lifetimes;
  /** Template snapshots ([pool] template); undefined when off. Under bridge networking a restored guest is re-addressed (identity.ts). */
  readonly templates: Templates | undefined;
  /** The warm pool, in processes that asked for it (see open). */
  pool: WarmPool | undefined;

  private constructor(config: Config, rt: Runtime, store: Store, private readonly lock: Lock, progress: Progress, sessionOpts?: SessionOptions) {
    this.ctx = new WorkspaceContext(config, rt, store, progress);
    this.net = new NetworkOps(this.ctx);
    this.snapshots = new SnapshotOps(this.ctx);
    this.procs = new ProcessOps(this.ctx);
    this.files = new FileOps(this.ctx);
    this.sessions = new Sessions(this.ctx, this, sessionOpts);
    this.lifetimes = new Lifetimes(this.ctx, {
      stop: (id, why, due) => this.lifetimeStop(id, why, due),
      destroy: (id, due) => this.ctx.serial(id, async () => {
        const row = this.store.get(id);
        if (!row || !due(row)) return false;
        await this.destroyNow(row);
        return true;
      }),
    });
    this.templates = config.pool.template ? new Templates(rt, progress) : undefined;
    this.ctx.preroot = config.pool.template ? new PrerootTemplates(rt, progress) : undefined;
  }

  get config(): Config { return this.ctx.config; }
  /** Pre-root templates (preroot.ts): starts restore them; undefined when [pool] template is off. */
  get preroot(): PrerootTemplates | undefined { return this.ctx.preroot; }
  get rt(): Runtime { return this.ctx.rt; }
  /** true once close() ran. */
  get closed(): boolean { return this.ctx.closed; }
  private get store(): Store { return this.ctx.store; }
  private get progress(): Progress { return this.ctx.progress; }

  /**
   * Opens the state database, reconciles it with live VMs, and returns the
   * service. pool: true starts the warm pool ([pool] settings). Only a
   * long-lived server asks for it (`islet serve` passes [pool] enabled): the
   * pool of a one-shot process would die with it, and libraries and tests
   * should not pay for idle VMs they did not ask for.
   */
  static async open(config: Config, o: { progress?: Progress; pool?: boolean; runtime?: RuntimeDeps; sessions?: SessionOptions } = {}): Promise<WorkspaceService> {
    const progress = o.progress ?? silent;
    const lock = acquireLock(config.paths.dataDir);
    let store: Store | undefined;
    try {
      const rt = await Runtime.open(config, { progress, ...o.runtime });
      store = Store.open(config.paths.stateDb);
      const svc = new WorkspaceService(config, rt, store, lock, progress, o.sessions);
      const ctx = svc.ctx;
      if (config.network.mode === 'user') ctx.net.egressHelper = await ensureEgressHelper(config, progress);
      await snaps.recover(ctx.snap);
      const attached = await reconcile(rt, store, ctx.diskPath.bind(ctx), progress);
      for (const [id, m] of attached) ctx.adopt(id, m);
      await ctx.net.open(attached);
      await snaps.sweep(ctx.snap);
      await sweepKeys(config.paths.dataDir, new Set(store.all().map((r) => r.id)));
      svc.lifetimes.start();
      svc.sessions.resume();
      if (o.pool === true) {
        const r = config.resources;
        svc.pool = new WarmPool(ctx, svc.templates, config.pool, {
          image: r.default_image, vcpus: r.default_vcpus, memory_mb: r.default_memory_mb, disk_gb: r.default_disk_gb,
          allow_internet: config.network.default_allow_internet,
        });
        svc.pool.kick();
        svc.sessions.prepareInBackground(config.pool.session_templates);
      }
      return svc;
    } catch (e) {
      store?.close();
      lock.release();
      throw e;
    }
  }

  /** Detaches from every VM (they keep running) and closes the database. */
  async close(): Promise<void> {
    const ctx = this.ctx;
    if (ctx.closed) return;
    ctx.closed = true;
    this.sessions.close();
    await this.lifetimes.close();
    await this.pool?.close(); // pool VMs hold no user state: they end with the service
    await ctx.preroot?.close(); // a pre-root template being taken is abandoned; the next start takes it again
    await Promise.allSettled([...ctx.queues.values()]);
    await ctx.net.close(ctx.live.values());
    for (const m of ctx.live.values()) m.detach();
    ctx.live.clear();
    this.store.close();
    this.lock.release();
  }

  async create(c: Caller, input: CreateInput, o: OpOptions = {}): Promise<WorkspaceInfo> {
    return (await this.createFrom(c, input, o)).info;
  }

  /**
   * create, restored from the template of this shape that `warm` prepared
   * (built on first use; sessions.ts's OpenCode warm-up). `warmed` false: no
   * such template could be used (templates off, or its build or restore
   * failed), so the workspace booted, and the caller does the warm-up's work
   * itself. Never a pool VM: those are plain boots.
   */
  createWarm(c: Caller, input: CreateInput, warm: TemplateWarmup, o: OpOptions = {}): Promise<{ info: WorkspaceInfo; warmed: boolean }> {
    return this.createFrom(c, input, o, warm);
  }

  private async createFrom(c: Caller, input: CreateInput, o: OpOptions, warm?: TemplateWarmup): Promise<{ info: WorkspaceInfo; warmed: boolean }> {
    const r = this.config.resources;
    const spec = {
      image: input.image ?? r.default_image,
      vcpus: input.vcpus ?? r.default_vcpus,
      memory_mb: input.memory_mb ?? r.default_memory_mb,
      disk_gb: input.disk_gb ?? r.default_disk_gb,
    };
    const over = (what: string, v: number, max: number, key: string) =>
      new QuotaExceededError(`${what} ${v} is over this host's limit of ${max}`, `ask for less, or raise [resources] ${key}`, { [what]: v, max });
    if (spec.vcpus > r.max_vcpus) throw over('vcpus', spec.vcpus, r.max_vcpus, 'max_vcpus');
    if (spec.memory_mb > r.max_memory_mb) throw over('memory_mb', spec.memory_mb, r.max_memory_mb, 'max_memory_mb');
    if (spec.disk_gb > r.max_disk_gb) throw over('disk_gb', spec.disk_gb, r.max_disk_gb, 'max_disk_gb');
    const ctx = this.ctx;
    ctx.net.netSpec(false); // NOT_SUPPORTED (bridge mode) before any row exists
    await ctx.rt.artifacts(spec.image); // IMAGE_NOT_FOUND before any row exists

    const now = new Date().toISOString();
    const allow = input.allow_internet ?? this.config.network.default_allow_internet;
    const rowOf = (id: string): WorkspaceRow => ({
      id, name: input.name ?? id, owner: c.owner, state: 'creating', ...spec, allow_internet: allow ? 1 : 0, pid: null, error: null,
      created_at: now, updated_at: now, disk_path: null, backing_snapshot_id: null,
    });
    const limits = { total: r.max_workspaces, perOwner: r.max_workspaces_per_owner };
    // Fastest: a pre-booted VM of this shape from the warm pool (its row is written when it is handed over).
    const hit = warm ? undefined : await this.pool?.assign({ ...spec, allow_internet: allow }, rowOf, limits, o.signal);
    if (hit) {
      if (input.ttl_minutes !== undefined) this.store.setLifetime(hit.id, { ttl_minutes: input.ttl_minutes });
      this.lifetimes.started(hit.id);
      ctx.net.writeEgress(hit.id);
      await ctx.net.guestProxyEnv(ctx.mustGet(hit.id), hit.m);
      ctx.adopt(hit.id, hit.m);
      this.pool!.kick();
      this.progress(`workspace ${ctx.mustGet(hit.id).name}: assigned a warm pool VM`);
      return { info: await ctx.infoOf(ctx.mustGet(hit.id)), warmed: false };
    }
    const id = newWorkspaceId();
    const row = rowOf(id);
    // Intent first: the row exists before the VM, so a crash mid-create is found and undone by reconcile.
    this.store.insertChecked(row, limits);
    if (input.ttl_minutes !== undefined) this.store.setLifetime(id, { ttl_minutes: input.ttl_minutes });
    return ctx.serial(id, async () => {
      let warmed = false;
      try {
        warmed = await this.bootFromTemplate(row, o.signal, warm);
        if (!warmed) await ctx.bootInto(row, true, o.signal);
        this.lifetimes.started(id);
        this.pool?.kick(); // refill only once this create is done, so it never competes with it
      } catch (e) {
        await ctx.rollbackCreate(id);
        throw e;
      }
      return { info: await ctx.infoOf(ctx.mustGet(id)), warmed: warmed && warm !== undefined };
    });
  }

  /** Restores a new workspace from its shape's template (built on first use); false: no template, so boot it. */
  private async bootFromTemplate(row: WorkspaceRow, signal?: AbortSignal, warm?: TemplateWarmup): Promise<boolean> {
    if (!this.templates) return false;
    const t0 = performance.now();
    const ctx = this.ctx;
    let m: Machine | undefined;
    let phases = '';
    try {
      // The template is built on the spare network (bridge: no lease, a TAP off the bridge); the restore gets the workspace's own.
      const t = await this.templates.ensure({ image: row.image, vcpus: row.vcpus, memoryMb: row.memory_mb, diskGb: row.disk_gb, net: ctx.net.spareNetSpec() }, signal, warm);
      const net = ctx.net.netSpec(row.allow_internet === 1, row.id);
      const t1 = performance.now();
      m = await this.templates.restore(t, { id: row.id, disk: ctx.diskPath(row.id), hostname: row.name, net, detached: true, signal });
      const restored = m;
      const t2 = performance.now();
      const took = (a: number) => Math.round(performance.now() - a);
      // bridge: the guest takes its lease (while the host writes its rules) before its TAP joins the bridge. The login
      // key goes in meanwhile: neither step waits for the other, and the identity reset's wait is sshd's re-exec.
      const [identityMs, keyMs] = await Promise.all([
        ctx.net.attach(row, m, () => freshIdentity(restored, row.name, signal, net)).then(() => took(t2)),
        ensureWorkspaceKey(this.config, row, m, signal).then(() => took(t2)),
      ]);
      phase('identity+ssh.key');
      await ctx.net.guestProxyEnv(row, m);
      phase('proxy.env');
      phases = `template ${Math.round(t1 - t0)} ms, restore ${Math.round(t2 - t1)} ms, identity ${identityMs} ms, ssh key ${keyMs} ms`;
    } catch (e) {
      await m?.destroy({ graceMs: 0 }).catch(() => undefined);
      if (signal?.aborted) throw e;
      this.progress(`workspace ${row.name}: template restore failed (${firstLine(e)}); booting instead`);
      return false;
    }
    ctx.adopt(row.id, m);
    this.store.setState(row.id, 'running', { pid: m.vm.pid });
    this.progress(`workspace ${row.name}: restored from template in ${Math.round(performance.now() - t0)} ms (${phases})`);
    return true;
  }

  async start(c: Caller, input: WorkspaceRef, o: OpOptions = {}): Promise<WorkspaceInfo> {
    const ctx = this.ctx;
    const row0 = ctx.resolve(c, input.workspace_id);
    return ctx.serial(row0.id, async () => {
      const row = ctx.mustGet(row0.id);
      assertState(row, 'start');
      if (row.state === 'paused') {
        await this.snapshots.resumeNow(row, o.signal);
      } else {
        ctx.net.netSpec(false);
        await ctx.bootInto(row, false, o.signal);
      }
      this.lifetimes.started(row.id);
      return ctx.infoOf(ctx.mustGet(row.id));
    });
  }

  async stop(c: Caller, input: WorkspaceRef, _o: OpOptions = {}): Promise<WorkspaceInfo> {
    const ctx = this.ctx;
    const row0 = ctx.resolve(c, input.workspace_id);
    return ctx.serial(row0.id, async () => {
      const row = ctx.mustGet(row0.id);
      assertState(row, 'stop');
      // Paused: the saved memory is discarded; the disk is what remains, as after a power cut.
      if (row.state === 'paused') await rm(snaps.memoryFile(ctx.snap, row.id), { force: true });
      this.liveness.forget(row.id);
      await ctx.stopLive(row.id);
      return ctx.infoOf(ctx.mustGet(row.id));
    });
  }

  async destroy(c: Caller, input: WorkspaceRef, _o: OpOptions = {}): Promise<{ workspace_id: string; destroyed: true }> {
    const ctx = this.ctx;
    const row0 = ctx.resolve(c, input.workspace_id);
    return ctx.serial(row0.id, async () => {
      const row = this.store.get(row0.id);
      if (!row) throw new WorkspaceNotFoundError(input.workspace_id);
      await this.destroyNow(row);
      return { workspace_id: row.id, destroyed: true as const };
    });
  }

  /** destroy, inside the workspace's queue. */
  private async destroyNow(row: WorkspaceRow): Promise<void> {
    const ctx = this.ctx;
    snaps.checkDestroy(ctx.snap, row); // SNAPSHOT_IN_USE while a fork builds on its snapshots
    await ctx.stopLive(row.id);
    const own = this.store.snapshots(row.id);
    this.store.delete(row.id); // then the files: a crash in between leaves only unreferenced files, swept at startup
    await Promise.all([
      snaps.removeFiles(ctx.snap, row, own),
      rm(path.join(this.config.paths.runDir, 'vm', row.id), { recursive: true, force: true }),
      removeWorkspaceKey(this.config.paths.dataDir, row.id),
    ]);
  }

  /** A lifetime rule's stop (lifetimes.ts): as stop, if the rule is still due once the workspace's queue is ours. */
  private lifetimeStop(id: string, why: 'ttl' | 'idle', due: (row: WorkspaceRow) => boolean): Promise<boolean> {
    return this.ctx.serial(id, async () => {
      const row = this.store.get(id);
      if (!row || !due(row)) return false;
      this.liveness.forget(id);
      await this.ctx.stopLive(id);
      this.store.setLifetime(id, { stopped_by: why });
      this.progress(`workspace ${row.name}: stopped by its ${why === 'ttl' ? 'TTL' : 'idle stop'} (the disk is kept)`);
      return true;
    });
  }

  /** Changes a workspace's TTL, idle stop or retention (null: back to the [resources] default). */
  async setLifetime(c: Caller, input: SetLifetimeInput): Promise<LifetimeInfo & { workspace_id: string }> {
    const row = this.ctx.resolve(c, input.workspace_id);
    const { workspace_id: _w, ...rest } = input;
    return this.lifetimes.set(row, rest);
  }

  /** A new, independent workspace whose disk starts as the snapshot (taken now if none is named); booted with its own identity. */
  async fork(c: Caller, input: ForkInput, o: OpOptions = {}): Promise<WorkspaceInfo> {
    const ctx = this.ctx;
    const src0 = ctx.resolve(c, input.workspace_id);
    ctx.net.netSpec(false);
    const r = ctx.config.resources;
    const id = newWorkspaceId();
    // In the source's queue, so the snapshot cannot be deleted before the fork's row (which depends on it) exists.
    const { row, snap } = await ctx.serial(src0.id, async () => {
      const src = ctx.mustGet(src0.id);
      let snap: SnapshotRow;
      if (input.snapshot) snap = snaps.findSnapshot(ctx.store, src, input.snapshot);
      else {
        const name = `fork-${new Date().toISOString().replace(/[-:.TZ]/g, '')}-${randomBytes(2).toString('hex')}`;
        snap = ctx.store.getSnapshot((await this.snapshots.snapshotNow(src.id, { name, description: `taken for fork ${input.name ?? id}` }, o.signal)).snapshot_id)!;
      }
      const now = new Date().toISOString();
      const row: WorkspaceRow = {
        ...src, id, name: input.name ?? id, owner: c.owner, state: 'creating', pid: null, error: null, created_at: now, updated_at: now,
        disk_path: null, backing_snapshot_id: snap.id,
      };
      ctx.store.insertChecked(row, { total: r.max_workspaces, perOwner: r.max_workspaces_per_owner });
      return { row, snap };
    });
    return ctx.serial(id, async () => {
      try {
        const memory = await this.snapshots.memoryOf(snap);
        await snaps.forkDisk(ctx.snap, snap, id, o.signal);
        phase('disk.fork');
        // A memory fork runs the source's guest: its identity and (bridge) its address are made its own before its TAP joins the bridge.
        await ctx.bootInto(row, false, o.signal, memory, (m, net) => freshIdentity(m, row.name, o.signal, net), { newIdentity: true });
        this.lifetimes.started(id);
      } catch (e) {
        await ctx.rollbackCreate(id);
        throw e;
      }
      return ctx.infoOf(ctx.mustGet(id));
    });
  }

  async list(c: Caller, input: ListInput = {}): Promise<WorkspaceInfo[]> {
    const rows = c.admin ? this.store.all() : this.store.byOwner(c.owner);
    const picked = input.state ? rows.filter((r) => r.state === input.state) : rows;
    return Promise.all(picked.map((r) => this.ctx.infoOf(r).then((w) => this.withLiveness(w))));
  }

  async info(c: Caller, input: WorkspaceRef): Promise<WorkspaceInfo> {
    return this.withLiveness(await this.ctx.infoOf(this.ctx.resolve(c, input.workspace_id)));
  }

  /** A running workspace whose commands time out reports why (liveness.ts). */
  private withLiveness(w: WorkspaceInfo): WorkspaceInfo {
    const note = w.state === 'running' ? this.liveness.error(w.workspace_id) : undefined;
    return note && !w.error ? { ...w, error: note } : w;
  }

  async exec(c: Caller, input: ExecInput, o: ExecHooks = {}): Promise<ExecOutput> {
    const m = this.ctx.running(c, input.workspace_id);
    const row = this.ctx.resolve(c, input.workspace_id);
    // User mode: the proxy is the only way out, so every command is told about it (the caller's env wins).
    if (this.config.network.mode === 'user') input = { ...input, env: { ...guestProxyEnv(), ...input.env } };
    const release = this.lifetimes.hold(row.id); // a command in flight is activity until it ends
    try {
      return await this.execHeld(c, input, m, row, o);
    } finally {
      release();
    }
  }

  private async execHeld(c: Caller, input: ExecInput, m: Machine, row: WorkspaceRow, o: ExecHooks): Promise<ExecOutput> {
    const timeoutMs = input.timeout_ms ?? DEFAULT_EXEC_TIMEOUT_MS;
    const detachMs = this.config.server.exec_detach_ms;
    if (o.detach && this.procs.detachable(c, input, timeoutMs, detachMs)) return this.procs.execDetachable(c, input, timeoutMs, detachMs, o);
    const r = await m.agent.exec({
      ...(typeof input.command === 'string' ? { shell: input.command } : { argv: input.command }),
      env: input.env,
      cwd: input.cwd,
      stdin: input.stdin,
      timeoutMs: input.timeout_ms ?? DEFAULT_EXEC_TIMEOUT_MS,
      maxOutputBytes: input.max_output_bytes,
    }, { signal: o.signal, onData: o.onData }).catch(async (e: unknown) => {
      if (e instanceof IsletError && e.code === 'GUEST_TIMEOUT') await this.liveness.afterExec(row.id, m, row.vcpus, true);
      throw e;
    });
    await this.liveness.afterExec(row.id, m, row.vcpus, r.timedOut);
    return {
      exit_code: r.exitCode, signal: r.signal, ...execStreams(r.stdout, r.stderr),
      timed_out: r.timedOut, truncated: r.truncated, duration_ms: r.durationMs,
    };
  }

  fileWrite(c: Caller, input: FileWriteInput, o: OpOptions = {}): Promise<{ path: string; bytes: number }> {
    return this.files.write(c, input, o);
  }
  fileRead(c: Caller, input: FileReadInput, o: OpOptions = {}): Promise<{ path: string; content: string; encoding: 'utf8' | 'base64'; bytes: number }> {
    return this.files.read(c, input, o);
  }
  /** A guest file streamed out (REST bodies) a window at a time; its size is known before the first chunk. */
  readStream(c: Caller, input: { workspace_id: string; path: string }, o: OpOptions = {}): Promise<FileStream> {
    return this.files.readStream(c, input, o);
  }
  // Transfers are activity for as long as they run (lifetimes.ts), like an exec.
  fileUpload(c: Caller, input: FileUploadInput, o: OpOptions = {}): Promise<{ host_path: string; guest_path: string; bytes: number }> {
    return this.held(input.workspace_id, c, () => this.files.upload(c, input, o));
  }
  fileDownload(c: Caller, input: FileDownloadInput, o: OpOptions = {}): Promise<{ host_path: string; guest_path: string; bytes: number }> {
    return this.held(input.workspace_id, c, () => this.files.download(c, input, o));
  }
  /** A guest file from a source of any length (REST bodies); it appears only if the whole source arrived. */
  writeStream(c: Caller, input: { workspace_id: string; path: string; mode?: number }, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, o: OpOptions = {}): Promise<{ path: string; bytes: number }> {
    return this.held(input.workspace_id, c, () => this.files.writeStream(c, input, source, o));
  }

  /** The image catalog: recipes and built images, with sizes and the workspaces' default (as `islet image list`). */
  images(): Promise<CatalogRow[]> { return listImages(this.config); }

  /** Every workspace row as `islet status` shows it, and the warm pool. */
  status(): { workspaces: StatusRow[]; pool: PoolStatusRow[] } {
    const mode = this.config.network.mode;
    const db = this.config.paths.stateDb;
    return { workspaces: readStatus(db, mode === 'user' ? '10.0.2.15' : mode === 'bridge' ? 'bridge' : null) ?? [], pool: readPool(db) };
  }

  /** Every workspace's state and memory, cheaply (no disk stats): the daemon's idle check and node report. */
  shapes(): Array<{ state: string; memory_mb: number }> {
    return this.store.all().map((r) => ({ state: r.state, memory_mb: r.memory_mb }));
  }

  // --- network (network-ops.ts) ---

  /** Forwards 127.0.0.1:host_port on the host to guest_port in a running workspace, live; recorded and re-applied on start. */
  portForward(c: Caller, input: PortForwardInput, o: OpOptions = {}): Promise<ForwardInfo & { workspace_id: string }> {
    return this.net.portForward(c, input, o);
  }

  /** Removes a forward (live if the workspace runs) and its record. */
  portForwardRemove(c: Caller, input: PortForwardRemoveInput, o: OpOptions = {}): Promise<{ workspace_id: string; host_port: number; removed: true }> {
    return this.net.portForwardRemove(c, input, o);
  }

  /** The workspace's network: mode, guest address, gateway, policy and forwards. */
  workspaceIp(c: Caller, input: WorkspaceRef): Promise<WorkspaceIpOutput> {
    return this.net.workspaceIp(c, input);
  }

  /** Reads or changes the workspace's network policy. */
  networkPolicy(c: Caller, input: NetworkPolicyInput, o: OpOptions = {}): Promise<NetworkPolicyOutput> {
    return this.net.networkPolicy(c, input, o);
  }

  // --- snapshots, forks, pause (snapshot-ops.ts) ---

  /** Snapshots the disk (and memory if asked); a running workspace keeps running. */
  snapshotCreate(c: Caller, input: SnapshotCreateInput, o: OpOptions = {}): Promise<SnapshotCreateOutput> {
    return this.snapshots.snapshotCreate(c, input, o);
  }

  snapshotList(c: Caller, input: WorkspaceRef): Promise<SnapshotListOutput> {
    return this.snapshots.snapshotList(c, input);
  }

  /** Rolls the disk back to a snapshot; a running workspace is restarted. */
  snapshotRestore(c: Caller, input: SnapshotRefInput, o: OpOptions = {}): Promise<SnapshotRestoreOutput> {
    return this.snapshots.snapshotRestore(c, input, o);
  }

  snapshotDelete(c: Caller, input: SnapshotRefInput, o: OpOptions = {}): Promise<SnapshotDeleteOutput> {
    return this.snapshots.snapshotDelete(c, input, o);
  }

  /** Saves a running workspace's memory to disk and ends its VM. */
  pause(c: Caller, input: WorkspaceRef, o: OpOptions = {}): Promise<WorkspaceInfo & { pause_ms: number }> {
    return this.snapshots.pause(c, input, o);
  }

  /** Brings a paused workspace back with its processes. */
  async resume(c: Caller, input: WorkspaceRef, o: OpOptions = {}): Promise<WorkspaceInfo> {
    const w = await this.snapshots.resume(c, input, o);
    this.lifetimes.started(w.workspace_id);
    return { ...w, lifetime: this.lifetimes.info(this.ctx.mustGet(w.workspace_id)) };
  }

  // --- background processes (process-ops.ts) ---

  /** Starts a command the guest agent keeps running in the background. */
  processStart(c: Caller, input: ProcessStartInput & { pty?: { cols: number; rows: number } }, o: OpOptions = {}): Promise<ProcessInfo> {
    return this.procs.start(c, input, o);
  }

  processList(c: Caller, input: WorkspaceRef, o: OpOptions = {}): Promise<ProcessListOutput> {
    return this.procs.list(c, input, o);
  }

  /** Output from an offset, optionally waiting for some (follow). */
  processOutput(c: Caller, input: ProcessOutputInput, o: OpOptions = {}): Promise<ProcessOutputOutput> {
    return this.held(input.workspace_id, c, () => this.procs.output(c, input, o));
  }

  /** The same as raw bytes in arrival order, for surfaces that print them. */
  processOutputRaw(c: Caller, input: ProcessOutputInput, o: OpOptions = {}): Promise<RawOutput> {
    return this.held(input.workspace_id, c, () => this.procs.outputRaw(c, input, o));
  }

  /** A follower waiting for output is a client at work: held like an exec. */
  private async held<T>(ref: string, c: Caller, fn: () => Promise<T>): Promise<T> {
    const release = this.lifetimes.hold(this.ctx.resolve(c, ref).id);
    try { return await fn(); } finally { release(); }
  }

  processWrite(c: Caller, input: ProcessWriteInput, o: OpOptions = {}): Promise<ProcessWriteOutput> {
    return this.procs.write(c, input, o);
  }

  /** Terminal keystrokes, as they come. */
  processWriteRaw(c: Caller, input: ProcessRef, data: Buffer, o: OpOptions = {}): Promise<number> {
    return this.procs.writeRaw(c, input, data, o);
  }

  processKill(c: Caller, input: ProcessKillInput, o: OpOptions = {}): Promise<ProcessInfo> {
    return this.procs.kill(c, input, o);
  }

  processWait(c: Caller, input: ProcessWaitInput, o: OpOptions = {}): Promise<ProcessInfo> {
    return this.held(input.workspace_id, c, () => this.procs.wait(c, input, o));
  }

  processResize(c: Caller, input: ProcessRef & { cols: number; rows: number }, o: OpOptions = {}): Promise<void> {
    return this.procs.resize(c, input, o);
  }

  // --- agent sessions (sessions.ts) ---

  /** A workspace from agent-ready with the repository at the branch checked out and OpenCode starting; ready once it answers. */
  sessionCreate(c: Caller, input: SessionCreateInput, o: OpOptions = {}): Promise<SessionInfo> {
    return this.sessions.create(c, input, o);
  }
  /** Builds an image's session template now (sessions.ts prepareTemplate): the first session is then fast too. */
  sessionPrepareTemplate(image?: string, o: OpOptions = {}): Promise<{ dir: string; builtMs: number }> {
    return this.sessions.prepareTemplate(image, o.signal);
  }
  sessionList(c: Caller, input: SessionListInput = {}): Promise<SessionInfo[]> { return this.sessions.list(c, input); }
  sessionGet(c: Caller, input: SessionRef): Promise<SessionInfo> { return this.sessions.get(c, input); }
  /** Stops OpenCode and destroys the session's workspace; the session is forgotten. */
  sessionDestroy(c: Caller, input: SessionRef, o: OpOptions = {}): Promise<{ sessionId: string; deleted: true }> {
    return this.sessions.destroy(c, input, o);
  }
}
