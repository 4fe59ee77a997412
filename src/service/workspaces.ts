// WorkspaceService: the one place that orchestrates workspace lifecycle —
// ownership, quotas, state transitions, persistence, cleanup. Surfaces (MCP,
// CLI, HTTP) only parse, call one of these methods, and render.
import { randomBytes } from 'node:crypto';
import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../core/config.js';
import { IsletError, VmExitedError } from '../core/errors.js';
import { Progress, silent } from '../core/progress.js';
import {
  CreateInput, ExecInput, FileDownloadInput, FileReadInput, FileUploadInput, FileWriteInput, ListInput, WorkspaceRef, WorkspaceState,
} from '../core/schemas.js';
import { readConfined, writeConfined } from '../host/confine.js';
import { acquireLock, Lock } from './lock.js';
import type { Machine } from './machine.js';
import { reconcile } from './reconcile.js';
import { Runtime } from './runtime.js';
import { Store, WorkspaceRow } from './store.js';
import type { Caller, ExecHooks, ExecOutput, OpOptions, WorkspaceInfo } from './types.js';

const DEFAULT_EXEC_TIMEOUT_MS = 30_000;
const DEFAULT_READ_MAX = 1 << 20;

export const workspaceNotFound = (ref: string) =>
  new IsletError('WORKSPACE_NOT_FOUND', `no workspace "${ref}"`, 'list yours with workspace_list (or `islet ws list`)', { workspace: ref });

const stateConflict = (row: WorkspaceRow, op: string, allowed: WorkspaceState[], hint: string) =>
  new IsletError('STATE_CONFLICT', `cannot ${op} workspace "${row.name}": it is ${row.state} (allowed: ${allowed.join(', ')})`, hint,
    { workspace: row.id, state: row.state, allowed });

export class WorkspaceService {
  /** VMs this process is attached to, by workspace id. */
  private readonly live = new Map<string, Machine>();
  /** Per-workspace lifecycle queue: start/stop/destroy of one workspace never overlap. */
  private readonly queues = new Map<string, Promise<unknown>>();
  private closed = false;

  private constructor(
    readonly config: Config,
    private readonly rt: Runtime,
    private readonly store: Store,
    private readonly lock: Lock,
    private readonly progress: Progress,
  ) {}

  /** Opens the state database, reconciles it with live VMs, and returns the service. */
  static async open(config: Config, o: { progress?: Progress } = {}): Promise<WorkspaceService> {
    const progress = o.progress ?? silent;
    const lock = acquireLock(config.paths.dataDir);
    let store: Store | undefined;
    try {
      const rt = await Runtime.open(config, { progress });
      store = Store.open(config.paths.stateDb);
      const svc = new WorkspaceService(config, rt, store, lock, progress);
      const attached = await reconcile(rt, store, svc.diskPath.bind(svc), progress);
      for (const [id, m] of attached) svc.adopt(id, m);
      return svc;
    } catch (e) {
      store?.close();
      lock.release();
      throw e;
    }
  }

  /** Detaches from every VM (they keep running) and closes the database. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.queues.values()]);
    for (const m of this.live.values()) m.detach();
    this.live.clear();
    this.store.close();
    this.lock.release();
  }

  diskPath(id: string): string {
    return path.join(this.rt.diskDir, `${id}.qcow2`);
  }

  async create(c: Caller, input: CreateInput, o: OpOptions = {}): Promise<WorkspaceInfo> {
    const r = this.config.resources;
    const spec = {
      image: input.image ?? r.default_image,
      vcpus: input.vcpus ?? r.default_vcpus,
      memory_mb: input.memory_mb ?? r.default_memory_mb,
      disk_gb: input.disk_gb ?? r.default_disk_gb,
    };
    const over = (what: string, v: number, max: number, key: string) =>
      new IsletError('QUOTA_EXCEEDED', `${what} ${v} is over this host's limit of ${max}`, `ask for less, or raise [resources] ${key}`, { [what]: v, max });
    if (spec.vcpus > r.max_vcpus) throw over('vcpus', spec.vcpus, r.max_vcpus, 'max_vcpus');
    if (spec.memory_mb > r.max_memory_mb) throw over('memory_mb', spec.memory_mb, r.max_memory_mb, 'max_memory_mb');
    if (spec.disk_gb > r.max_disk_gb) throw over('disk_gb', spec.disk_gb, r.max_disk_gb, 'max_disk_gb');
    await this.rt.artifacts(spec.image); // IMAGE_NOT_FOUND before any row exists

    const id = `ws-${randomBytes(4).toString('hex')}`;
    const now = new Date().toISOString();
    const row: WorkspaceRow = {
      id, name: input.name ?? id, owner: c.owner, state: 'creating', ...spec,
      allow_internet: input.allow_internet ? 1 : 0, pid: null, error: null, created_at: now, updated_at: now,
    };
    // Intent first: the row exists before the VM, so a crash mid-create is found and undone by reconcile.
    this.store.insertChecked(row, { total: r.max_workspaces, perOwner: r.max_workspaces_per_owner });
    return this.serial(id, async () => {
      try {
        await this.bootInto(row, true, o.signal);
      } catch (e) {
        this.store.delete(id);
        await rm(this.diskPath(id), { force: true });
        throw e;
      }
      return this.infoOf(this.mustGet(id));
    });
  }

  async start(c: Caller, input: WorkspaceRef, o: OpOptions = {}): Promise<WorkspaceInfo> {
    const row0 = this.resolve(c, input.workspace_id);
    return this.serial(row0.id, async () => {
      const row = this.mustGet(row0.id);
      if (row.state !== 'stopped' && row.state !== 'failed') {
        throw stateConflict(row, 'start', ['stopped', 'failed'], row.state === 'running' ? 'it is already running' : 'wait for it to finish');
      }
      await this.bootInto(row, false, o.signal);
      return this.infoOf(this.mustGet(row.id));
    });
  }

  async stop(c: Caller, input: WorkspaceRef, _o: OpOptions = {}): Promise<WorkspaceInfo> {
    const row0 = this.resolve(c, input.workspace_id);
    return this.serial(row0.id, async () => {
      const row = this.mustGet(row0.id);
      if (row.state !== 'running') throw stateConflict(row, 'stop', ['running'], 'start it first with workspace_start');
      const m = this.live.get(row.id);
      this.live.delete(row.id);
      await m?.shutdown();
      this.store.setState(row.id, 'stopped');
      return this.infoOf(this.mustGet(row.id));
    });
  }

  async destroy(c: Caller, input: WorkspaceRef, _o: OpOptions = {}): Promise<{ workspace_id: string; destroyed: true }> {
    const row0 = this.resolve(c, input.workspace_id);
    return this.serial(row0.id, async () => {
      const row = this.store.get(row0.id);
      if (!row) throw workspaceNotFound(input.workspace_id);
      const m = this.live.get(row.id);
      this.live.delete(row.id);
      if (m) await m.destroy();
      await Promise.all([
        rm(this.diskPath(row.id), { force: true }),
        rm(path.join(this.config.paths.runDir, 'vm', row.id), { recursive: true, force: true }),
      ]);
      this.store.delete(row.id);
      return { workspace_id: row.id, destroyed: true as const };
    });
  }

  async list(c: Caller, input: ListInput = {}): Promise<WorkspaceInfo[]> {
    const rows = c.admin ? this.store.all() : this.store.byOwner(c.owner);
    const picked = input.state ? rows.filter((r) => r.state === input.state) : rows;
    return Promise.all(picked.map((r) => this.infoOf(r)));
  }

  async info(c: Caller, input: WorkspaceRef): Promise<WorkspaceInfo> {
    return this.infoOf(this.resolve(c, input.workspace_id));
  }

  async exec(c: Caller, input: ExecInput, o: ExecHooks = {}): Promise<ExecOutput> {
    const m = this.running(c, input.workspace_id);
    const r = await m.exec({
      ...(typeof input.command === 'string' ? { shell: input.command } : { argv: input.command }),
      env: input.env,
      cwd: input.cwd,
      stdin: input.stdin,
      timeoutMs: input.timeout_ms ?? DEFAULT_EXEC_TIMEOUT_MS,
      maxOutputBytes: input.max_output_bytes,
    }, { signal: o.signal, onData: o.onData });
    return {
      exit_code: r.exitCode, signal: r.signal, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8'),
      timed_out: r.timedOut, truncated: r.truncated, duration_ms: r.durationMs,
    };
  }

  async fileWrite(c: Caller, input: FileWriteInput, o: OpOptions = {}): Promise<{ path: string; bytes: number }> {
    const m = this.running(c, input.workspace_id);
    const data = Buffer.from(input.content, input.encoding ?? 'utf8');
    const r = await m.writeFile(input.path, data, { mode: input.mode, createParents: input.create_parents ?? true, signal: o.signal });
    return { path: input.path, bytes: r.bytes };
  }

  async fileRead(c: Caller, input: FileReadInput, o: OpOptions = {}): Promise<{ path: string; content: string; encoding: 'utf8' | 'base64'; bytes: number }> {
    const m = this.running(c, input.workspace_id);
    const encoding = input.encoding ?? 'utf8';
    const r = await m.readFile(input.path, { maxBytes: input.max_bytes ?? DEFAULT_READ_MAX, signal: o.signal });
    return { path: input.path, content: r.data.toString(encoding), encoding, bytes: r.data.length };
  }

  async fileUpload(c: Caller, input: FileUploadInput, o: OpOptions = {}): Promise<{ host_path: string; guest_path: string; bytes: number }> {
    const m = this.running(c, input.workspace_id);
    const { data, abs } = await readConfined(this.config.paths.transferDir, input.host_path, this.config.server.max_transfer_bytes);
    await m.writeFile(input.guest_path, data, { mode: input.mode, createParents: true, signal: o.signal });
    return { host_path: abs, guest_path: input.guest_path, bytes: data.length };
  }

  async fileDownload(c: Caller, input: FileDownloadInput, o: OpOptions = {}): Promise<{ host_path: string; guest_path: string; bytes: number }> {
    const m = this.running(c, input.workspace_id);
    const root = this.config.paths.transferDir;
    // Refuse a bad destination before moving any bytes out of the guest.
    await writeConfined(root, input.host_path, Buffer.alloc(0), input.overwrite ?? false).then((p) => rm(p, { force: true }));
    const r = await m.readFile(input.guest_path, { maxBytes: this.config.server.max_transfer_bytes, signal: o.signal });
    const abs = await writeConfined(root, input.host_path, r.data, true);
    return { host_path: abs, guest_path: input.guest_path, bytes: r.data.length };
  }

  // --- internals ---

  private async bootInto(row: WorkspaceRow, createDisk: boolean, signal?: AbortSignal): Promise<void> {
    this.progress(`workspace ${row.name}: booting (${row.image}, ${row.vcpus} vcpu, ${row.memory_mb} MiB, ${row.disk_gb} GiB)`);
    let m: Machine;
    try {
      m = await this.rt.boot({
        id: row.id, disk: this.diskPath(row.id), createDisk, image: row.image, vcpus: row.vcpus, memoryMb: row.memory_mb,
        diskBytes: row.disk_gb * 1024 ** 3, hostname: row.name, detached: true, signal,
      });
    } catch (e) {
      if (!createDisk) this.store.setState(row.id, 'failed', { error: e instanceof Error ? e.message.split('\n')[0] : String(e) });
      throw e;
    }
    this.adopt(row.id, m);
    this.store.setState(row.id, 'running', { pid: m.vm.pid });
  }

  /** Tracks a live VM; if it dies without us asking, the workspace becomes stopped with the reason. */
  private adopt(id: string, m: Machine): void {
    this.live.set(id, m);
    void m.vm.exited.then((exit) => {
      if (this.closed || this.live.get(id) !== m) return;
      this.live.delete(id);
      m.detach();
      this.store.setState(id, 'stopped', { error: `VM exited unexpectedly (code ${exit.code}, signal ${exit.signal})` });
    });
  }

  private serial<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(id) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(fn);
    this.queues.set(id, next);
    void next.finally(() => { if (this.queues.get(id) === next) this.queues.delete(id); }).catch(() => undefined);
    return next;
  }

  /** Unknown and foreign workspaces look the same: existence is not leaked across owners. */
  private resolve(c: Caller, ref: string): WorkspaceRow {
    const row = this.store.find(ref, c.admin ? undefined : c.owner);
    if (!row || (!c.admin && row.owner !== c.owner)) throw workspaceNotFound(ref);
    return row;
  }

  private mustGet(id: string): WorkspaceRow {
    const row = this.store.get(id);
    if (!row) throw workspaceNotFound(id);
    return row;
  }

  private running(c: Caller, ref: string): Machine {
    const row = this.resolve(c, ref);
    const m = this.live.get(row.id);
    if (row.state !== 'running' || !m) throw stateConflict(row, 'use', ['running'], 'start it with workspace_start');
    if (m.agent.isClosed) throw new VmExitedError(`workspace "${row.name}" lost its VM`, { workspace: row.id });
    return m;
  }

  private async infoOf(row: WorkspaceRow): Promise<WorkspaceInfo> {
    const used = await stat(this.diskPath(row.id)).then((s) => s.blocks * 512, () => null);
    return {
      workspace_id: row.id, name: row.name, state: row.state, image: row.image, vcpus: row.vcpus, memory_mb: row.memory_mb,
      disk_gb: row.disk_gb, allow_internet: row.allow_internet === 1, owner: row.owner, created_at: row.created_at,
      updated_at: row.updated_at, pid: row.pid, network: { mode: 'none', ip: null }, snapshot_count: this.store.snapshotCount(row.id),
      error: row.error, disk_used_bytes: used,
    };
  }
}
