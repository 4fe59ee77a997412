// WorkspaceService: the one place that orchestrates workspace lifecycle —
// ownership, quotas, state transitions, persistence, cleanup. Surfaces (MCP,
// CLI, HTTP) only parse, call one of these methods, and render. It is built
// by composition: the shared state and rules (WorkspaceContext, with the
// state table in transitions.ts), and collaborators for creates and forks
// (create-ops.ts), the network (network-ops.ts), snapshots (snapshot-ops.ts),
// files and processes, which the methods here hand their calls to.
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../core/config.js';
import { execStreams } from '../core/encoding.js';
import { IsletError, WorkspaceNotFoundError } from '../core/errors.js';
import { Progress, silent } from '../core/progress.js';
import type {
  CreateInput, ExecInput, FileDownloadInput, FileReadInput, FileUploadInput, FileWriteInput, ForkInput, ListInput, NetworkPolicyInput,
  PortForwardInput, PortForwardRemoveInput, SnapshotCreateInput, SnapshotRefInput, WorkspaceRef,
} from '../core/schemas.js';
import { guestProxyEnv } from '../net/egress.js';
import { ensureEgressHelper } from '../net/egress-build.js';
import type {
  ProcessKillInput, ProcessOutputInput, ProcessRef, ProcessStartInput, ProcessWaitInput, ProcessWriteInput,
} from '../core/process-schemas.js';
import { acquireLock, Lock } from './lock.js';
import { CreateOps } from './create-ops.js';
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
import { removeWorkspaceKey, sweepKeys } from './ssh.js';
import { assertState } from './transitions.js';
import { WorkspaceContext } from './workspace-context.js';
import { Store, WorkspaceRow } from './store.js';
import { type TemplateWarmup, Templates } from './templates.js';
import { PrerootTemplates } from './preroot.js';
import { type RunHooks, RunOps, type RunOutput } from './run-ops.js';
import type { RunInput } from '../core/run-schemas.js';
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
  private readonly creates: CreateOps;
  private readonly runs: RunOps;
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
    this.creates = new CreateOps(this.ctx, { templates: this.templates, lifetimes: this.lifetimes, snapshots: this.snapshots, pool: () => this.pool });
    this.runs = new RunOps(this.ctx, { creates: this.creates, lifetimes: this.lifetimes, destroy: (c, id) => this.destroy(c, { workspace_id: id }) });
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
    await this.runs.close(); // a run's workspace goes with the run, not detached like the others
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
    return (await this.creates.createFrom(c, input, o)).info;
  }

  /**
   * `islet run`: a throwaway workspace (no network device; a pool VM or a template restore where there is one),
   * one command streamed through hooks.onData, and the workspace destroyed when the command ends, fails or is
   * cancelled (hooks.signal), or the service closes (run-ops.ts).
   */
  run(c: Caller, input: RunInput, o: RunHooks = {}): Promise<RunOutput> {
    return this.runs.run(c, input, o);
  }
  /** What run would refuse before creating anything: an unknown image, stdin that is not base64. */
  runCheck(input: RunInput): Promise<void> {
    return this.runs.check(input);
  }

  /**
   * create, restored from the template of this shape that `warm` prepared
   * (built on first use; sessions.ts's OpenCode warm-up). `warmed` false: no
   * such template could be used (templates off, or its build or restore
   * failed), so the workspace booted, and the caller does the warm-up's work
   * itself. Never a pool VM: those are plain boots.
   */
  createWarm(c: Caller, input: CreateInput, warm: TemplateWarmup, o: OpOptions = {}): Promise<{ info: WorkspaceInfo; warmed: boolean }> {
    return this.creates.createFrom(c, input, o, warm);
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
  fork(c: Caller, input: ForkInput, o: OpOptions = {}): Promise<WorkspaceInfo> {
    return this.creates.fork(c, input, o);
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
