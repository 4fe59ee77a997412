// WorkspaceService: the one place that orchestrates workspace lifecycle —
// ownership, quotas, state transitions, persistence, cleanup. Surfaces (MCP,
// CLI, HTTP) only parse, call one of these methods, and render.
import { randomBytes } from 'node:crypto';
import { mkdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../core/config.js';
import { InvalidArgumentError, IsletError, PortInUseError, VmExitedError } from '../core/errors.js';
import { Progress, silent } from '../core/progress.js';
import {
  CreateInput, ExecInput, ForkInput, SnapshotCreateInput, SnapshotRefInput, FileDownloadInput, FileReadInput, FileUploadInput, FileWriteInput, ListInput, NetworkPolicyInput,
  PortForwardInput, PortForwardRemoveInput, WorkspaceRef, WorkspaceState,
} from '../core/schemas.js';
import { readConfined, writeConfined } from '../host/confine.js';
import { FORWARD_HOST, probePort } from '../host/ports.js';
import { isPort, USER_NET, UserNetSpec } from '../vmm/argv.js';
import { acquireLock, Lock } from './lock.js';
import type { Machine } from './machine.js';
import { reconcile } from './reconcile.js';
import { Runtime } from './runtime.js';
import * as snaps from './snapshots.js';
import { ForwardRow, SnapshotRow, Store, WorkspaceRow } from './store.js';
import type {
  Caller, ExecHooks, ExecOutput, ForwardInfo, NetworkInfo, NetworkPolicyOutput, OpOptions, SnapshotCreateOutput, SnapshotDeleteOutput,
  SnapshotListOutput, SnapshotRestoreOutput, WorkspaceInfo, WorkspaceIpOutput,
} from './types.js';

const DEFAULT_EXEC_TIMEOUT_MS = 30_000;
const DEFAULT_READ_MAX = 1 << 20;
/** Auto-assigned host ports: the probe socket is closed before QEMU binds, so another process may win; retry. */
const AUTO_PORT_ATTEMPTS = 5;

export const workspaceNotFound = (ref: string) =>
  new IsletError('WORKSPACE_NOT_FOUND', `no workspace "${ref}"`, 'list yours with workspace_list (or `islet ws list`)', { workspace: ref });

const checkPort = (name: string, v: unknown) => {
  if (!isPort(v)) throw new InvalidArgumentError(`${name} ${String(v)} is not a TCP port`, `${name} must be an integer from 1 to 65535`, { [name]: v });
};

const forwardInfo = (f: ForwardRow): ForwardInfo =>
  ({ host_address: FORWARD_HOST, host_port: f.host_port, guest_port: f.guest_port, created_at: f.created_at });

const stateConflict = (row: WorkspaceRow, op: string, allowed: WorkspaceState[], hint: string) =>
  new IsletError('STATE_CONFLICT', `cannot ${op} workspace "${row.name}": it is ${row.state} (allowed: ${allowed.join(', ')})`, hint,
    { workspace: row.id, state: row.state, allowed });

export class WorkspaceService {
  /** VMs this process is attached to, by workspace id. */
  private readonly live = new Map<string, Machine>();
  /** Per-workspace lifecycle queue: start/stop/destroy of one workspace never overlap. */
  private readonly queues = new Map<string, Promise<unknown>>();
  private closed = false;
  private readonly snap: snaps.SnapCtx;

  private constructor(
    readonly config: Config,
    private readonly rt: Runtime,
    private readonly store: Store,
    private readonly lock: Lock,
    private readonly progress: Progress,
  ) {
    this.snap = { store, dataDir: config.paths.dataDir, diskDir: rt.diskDir, progress };
  }

  /** Opens the state database, reconciles it with live VMs, and returns the service. */
  static async open(config: Config, o: { progress?: Progress } = {}): Promise<WorkspaceService> {
    const progress = o.progress ?? silent;
    const lock = acquireLock(config.paths.dataDir);
    let store: Store | undefined;
    try {
      const rt = await Runtime.open(config, { progress });
      store = Store.open(config.paths.stateDb);
      const svc = new WorkspaceService(config, rt, store, lock, progress);
      await snaps.recover(svc.snap);
      const attached = await reconcile(rt, store, svc.diskPath.bind(svc), progress);
      for (const [id, m] of attached) svc.adopt(id, m);
      await snaps.sweep(svc.snap);
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

  /** A workspace's active disk overlay (it moves with snapshots and restores). */
  diskPath(id: string): string {
    const row = this.store.get(id);
    return row ? snaps.activeDisk(this.snap, row) : snaps.legacyDisk(this.snap, id);
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
    this.netSpec(false); // NOT_SUPPORTED (bridge mode) before any row exists
    await this.rt.artifacts(spec.image); // IMAGE_NOT_FOUND before any row exists

    const id = `ws-${randomBytes(4).toString('hex')}`;
    const now = new Date().toISOString();
    const row: WorkspaceRow = {
      id, name: input.name ?? id, owner: c.owner, state: 'creating', ...spec,
      allow_internet: (input.allow_internet ?? this.config.network.default_allow_internet) ? 1 : 0, pid: null, error: null, created_at: now, updated_at: now,
      disk_path: null, backing_snapshot_id: null,
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
      if (row.state === 'paused') return this.resumeNow(row, o.signal);
      if (row.state !== 'stopped' && row.state !== 'failed') {
        throw stateConflict(row, 'start', ['stopped', 'failed', 'paused'], row.state === 'running' ? 'it is already running' : 'wait for it to finish');
      }
      this.netSpec(false);
      await this.bootInto(row, false, o.signal);
      return this.infoOf(this.mustGet(row.id));
    });
  }

  async stop(c: Caller, input: WorkspaceRef, _o: OpOptions = {}): Promise<WorkspaceInfo> {
    const row0 = this.resolve(c, input.workspace_id);
    return this.serial(row0.id, async () => {
      const row = this.mustGet(row0.id);
      if (row.state === 'paused') { // discard the saved memory: the disk is what remains, as after a power cut
        await rm(snaps.memoryFile(this.snap, row.id), { force: true });
        this.store.setState(row.id, 'stopped');
        return this.infoOf(this.mustGet(row.id));
      }
      if (row.state !== 'running') throw stateConflict(row, 'stop', ['running', 'paused'], 'start it first with workspace_start');
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
      snaps.checkDestroy(this.snap, row); // SNAPSHOT_IN_USE while a fork builds on its snapshots
      const m = this.live.get(row.id);
      this.live.delete(row.id);
      if (m) await m.shutdown();
      const own = this.store.snapshots(row.id);
      this.store.delete(row.id); // then the files: a crash in between leaves only unreferenced files, swept at startup
      await Promise.all([
        snaps.removeFiles(this.snap, row, own),
        rm(path.join(this.config.paths.runDir, 'vm', row.id), { recursive: true, force: true }),
      ]);
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

  // --- network (user mode) ---

  /** Forwards 127.0.0.1:host_port on the host to guest_port in a running workspace, live; recorded and re-applied on start. */
  async portForward(c: Caller, input: PortForwardInput, _o: OpOptions = {}): Promise<ForwardInfo & { workspace_id: string }> {
    const row0 = this.resolve(c, input.workspace_id);
    checkPort('guest_port', input.guest_port);
    if (input.host_port !== undefined) checkPort('host_port', input.host_port);
    this.requireUserNet('port_forward');
    return this.serial(row0.id, async () => {
      const m = this.running(c, row0.id);
      const guestPort = input.guest_port;
      let hostPort: number;
      if (input.host_port !== undefined) {
        hostPort = input.host_port;
        const taken = this.store.forwardOnHostPort(hostPort);
        if (taken) {
          throw new PortInUseError(hostPort, taken.workspace_id === row0.id
            ? `this workspace already forwards it to guest port ${taken.guest_port}` : 'another workspace has a forward recorded on it');
        }
        await probePort(hostPort);
        await m.addForward({ hostPort, guestPort });
      } else {
        for (let attempt = 1; ; attempt++) {
          const p = await probePort(0);
          try {
            if (this.store.forwardOnHostPort(p)) throw new PortInUseError(p);
            await m.addForward({ hostPort: p, guestPort });
            hostPort = p;
            break;
          } catch (e) {
            if (!(e instanceof IsletError && e.code === 'PORT_IN_USE') || attempt >= AUTO_PORT_ATTEMPTS) throw e;
          }
        }
      }
      const row: ForwardRow = { workspace_id: row0.id, host_port: hostPort, guest_port: guestPort, created_at: new Date().toISOString() };
      try {
        this.store.addForward(row);
      } catch (e) {
        await m.removeForward(hostPort).catch(() => undefined);
        throw e;
      }
      this.progress(`workspace ${row0.name}: forwarding ${FORWARD_HOST}:${hostPort} to guest port ${guestPort}`);
      return { workspace_id: row0.id, ...forwardInfo(row) };
    });
  }

  /** Removes a forward (live if the workspace runs) and its record. */
  async portForwardRemove(c: Caller, input: PortForwardRemoveInput, _o: OpOptions = {}): Promise<{ workspace_id: string; host_port: number; removed: true }> {
    const row0 = this.resolve(c, input.workspace_id);
    checkPort('host_port', input.host_port);
    return this.serial(row0.id, async () => {
      const row = this.mustGet(row0.id);
      if (!this.store.forwards(row.id).some((f) => f.host_port === input.host_port)) {
        throw new InvalidArgumentError(`workspace "${row.name}" has no forward on host port ${input.host_port}`,
          'list its forwards with workspace_ip', { workspace: row.id, host_port: input.host_port });
      }
      const m = this.live.get(row.id);
      if (row.state === 'running' && m) await m.removeForward(input.host_port);
      this.store.removeForward(row.id, input.host_port);
      return { workspace_id: row.id, host_port: input.host_port, removed: true as const };
    });
  }

  /** The workspace's network: mode, guest address, gateway, policy and forwards. */
  async workspaceIp(c: Caller, input: WorkspaceRef): Promise<WorkspaceIpOutput> {
    const row = this.resolve(c, input.workspace_id);
    const n = this.networkOf(row);
    return {
      workspace_id: row.id, ...n, gateway: n.mode === 'user' ? USER_NET.gateway : null, dns: n.mode === 'user' ? USER_NET.dns : null,
      allow_internet: row.allow_internet === 1,
    };
  }

  /**
   * Reads or changes allow_internet. User-mode networking cannot change it
   * live, so a running workspace is restarted, and only when the caller says so.
   */
  async networkPolicy(c: Caller, input: NetworkPolicyInput, o: OpOptions = {}): Promise<NetworkPolicyOutput> {
    const row0 = this.resolve(c, input.workspace_id);
    return this.serial(row0.id, async () => {
      const row = this.mustGet(row0.id);
      const current = row.allow_internet === 1;
      const want = input.allow_internet ?? current;
      const out = (applied: NetworkPolicyOutput['applied'], ms: number | null = null): NetworkPolicyOutput =>
        ({ workspace_id: row.id, allow_internet: want, applied, restart_ms: ms });
      if (want === current) return out('unchanged');
      if (row.state === 'creating') throw stateConflict(row, 'change the network policy of', ['running', 'stopped', 'failed'], 'wait for it to finish');
      const m = this.live.get(row.id);
      if (row.state !== 'running' || !m) {
        this.store.setAllowInternet(row.id, want);
        return out('recorded');
      }
      if (!input.restart) {
        throw new IsletError('STATE_CONFLICT',
          `cannot change allow_internet of running workspace "${row.name}" live: user-mode networking fixes it when the VM starts`,
          'pass restart: true to apply it now by restarting the VM (running processes are killed; files and port forwards are kept), '
          + 'or stop the workspace, change the policy, and start it', { workspace: row.id, state: row.state, allow_internet: current });
      }
      const t0 = performance.now();
      this.live.delete(row.id);
      await m.shutdown();
      this.store.setState(row.id, 'stopped');
      this.store.setAllowInternet(row.id, want);
      await this.bootInto(this.mustGet(row.id), false, o.signal);
      return out('restarted', Math.round(performance.now() - t0));
    });
  }

  // --- snapshots and forks (logic in snapshots.ts) ---

  /** Snapshots the disk; a running workspace keeps running (its filesystem is synced first). */
  async snapshotCreate(c: Caller, input: SnapshotCreateInput, o: OpOptions = {}): Promise<SnapshotCreateOutput> {
    const row0 = this.resolve(c, input.workspace_id);
    return this.serial(row0.id, () => this.snapshotNow(row0.id, input, o.signal));
  }

  async snapshotList(c: Caller, input: WorkspaceRef): Promise<SnapshotListOutput> {
    const row = this.resolve(c, input.workspace_id);
    const list = await Promise.all(snaps.readySnapshots(this.store, row.id)
      .map(async (s) => ({ ...snaps.snapshotInfo(s), size_bytes: await snaps.sizeOnDisk(s.file) })));
    return { workspace_id: row.id, current_snapshot_id: row.backing_snapshot_id, snapshots: list };
  }

  /** Rolls the disk back to a snapshot; a running workspace is stopped, rolled back and booted again. */
  async snapshotRestore(c: Caller, input: SnapshotRefInput, o: OpOptions = {}): Promise<SnapshotRestoreOutput> {
    const row0 = this.resolve(c, input.workspace_id);
    return this.serial(row0.id, async () => {
      const row = this.mustGet(row0.id);
      if (row.state === 'creating') throw stateConflict(row, 'restore', ['running', 'stopped', 'failed'], 'wait for it to finish');
      const s = snaps.findSnapshot(this.store, row, input.snapshot);
      const memory = await this.memoryOf(s);
      const t0 = performance.now();
      const m = this.live.get(row.id);
      const restart = row.state === 'running' && m !== undefined;
      if (row.state === 'paused') await rm(snaps.memoryFile(this.snap, row.id), { force: true }); // memory of the old disk
      if (row.state === 'paused') this.store.setState(row.id, 'stopped');
      if (m) {
        this.live.delete(row.id);
        await m.shutdown();
        this.store.setState(row.id, 'stopped');
      }
      await snaps.restoreDisk(this.snap, this.mustGet(row.id), s, o.signal);
      // A memory snapshot resumes its processes, whatever the workspace was doing; a disk one boots if it ran.
      if (restart || memory) await this.bootInto(this.mustGet(row.id), false, o.signal, memory);
      return {
        workspace_id: row.id, snapshot_id: s.id, restarted: restart || memory !== undefined, memory_restored: memory !== undefined,
        state: this.mustGet(row.id).state, duration_ms: Math.round(performance.now() - t0),
      };
    });
  }

  async snapshotDelete(c: Caller, input: SnapshotRefInput, _o: OpOptions = {}): Promise<SnapshotDeleteOutput> {
    const row0 = this.resolve(c, input.workspace_id);
    return this.serial(row0.id, async () => {
      const row = this.mustGet(row0.id);
      const s = snaps.findSnapshot(this.store, row, input.snapshot);
      await snaps.deleteSnapshot(this.snap, row, s);
      return { workspace_id: row.id, snapshot_id: s.id, deleted: true as const };
    });
  }

  /** A new, independent workspace whose disk starts as the snapshot (taken now if none is named); booted with its own identity. */
  async fork(c: Caller, input: ForkInput, o: OpOptions = {}): Promise<WorkspaceInfo> {
    const src0 = this.resolve(c, input.workspace_id);
    this.netSpec(false);
    const r = this.config.resources;
    const id = `ws-${randomBytes(4).toString('hex')}`;
    // In the source's queue, so the snapshot cannot be deleted before the fork's row (which depends on it) exists.
    const { row, snap } = await this.serial(src0.id, async () => {
      const src = this.mustGet(src0.id);
      let snap: SnapshotRow;
      if (input.snapshot) snap = snaps.findSnapshot(this.store, src, input.snapshot);
      else {
        const name = `fork-${new Date().toISOString().replace(/[-:.TZ]/g, '')}-${randomBytes(2).toString('hex')}`;
        snap = this.store.getSnapshot((await this.snapshotNow(src.id, { name, description: `taken for fork ${input.name ?? id}` }, o.signal)).snapshot_id)!;
      }
      const now = new Date().toISOString();
      const row: WorkspaceRow = {
        ...src, id, name: input.name ?? id, owner: c.owner, state: 'creating', pid: null, error: null, created_at: now, updated_at: now,
        disk_path: null, backing_snapshot_id: snap.id,
      };
      this.store.insertChecked(row, { total: r.max_workspaces, perOwner: r.max_workspaces_per_owner });
      return { row, snap };
    });
    return this.serial(id, async () => {
      try {
        const memory = await this.memoryOf(snap);
        await snaps.forkDisk(this.snap, snap, id, o.signal);
        await this.bootInto(row, false, o.signal, memory);
        await snaps.giveIdentity(this.live.get(id)!, row.name, memory !== undefined);
      } catch (e) {
        const m = this.live.get(id);
        this.live.delete(id);
        await m?.shutdown();
        this.store.delete(id);
        await rm(snaps.legacyDisk(this.snap, id), { force: true });
        throw e;
      }
      return this.infoOf(this.mustGet(id));
    });
  }

  /** Saves the running workspace's memory to disk and ends its VM: host memory is freed, processes come back on resume. */
  async pause(c: Caller, input: WorkspaceRef, _o: OpOptions = {}): Promise<WorkspaceInfo & { pause_ms: number }> {
    const row0 = this.resolve(c, input.workspace_id);
    return this.serial(row0.id, async () => {
      const row = this.mustGet(row0.id);
      const m = this.live.get(row.id);
      if (row.state !== 'running' || !m) throw stateConflict(row, 'pause', ['running'], 'only a running workspace can be paused');
      const t0 = performance.now();
      const file = snaps.memoryFile(this.snap, row.id);
      await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
      this.live.delete(row.id);
      try {
        await m.pauseToFile(file, 300_000);
      } catch (e) {
        await rm(file, { force: true });
        if (!m.agent.isClosed) this.adopt(row.id, m);
        throw e;
      }
      this.store.setState(row.id, 'paused'); // the commit point: a crash before it leaves a stopped workspace and a swept file
      return { ...(await this.infoOf(this.mustGet(row.id))), pause_ms: Math.round(performance.now() - t0) };
    });
  }

  /** Brings a paused workspace back from its saved memory: processes continue; the guest clock is resynced. */
  async resume(c: Caller, input: WorkspaceRef, o: OpOptions = {}): Promise<WorkspaceInfo> {
    const row0 = this.resolve(c, input.workspace_id);
    return this.serial(row0.id, async () => {
      const row = this.mustGet(row0.id);
      if (row.state !== 'paused') throw stateConflict(row, 'resume', ['paused'], 'workspace_start boots a stopped workspace');
      return this.resumeNow(row, o.signal);
    });
  }

  private async resumeNow(row: WorkspaceRow, signal?: AbortSignal): Promise<WorkspaceInfo> {
    const file = snaps.memoryFile(this.snap, row.id);
    this.netSpec(false);
    try {
      await this.bootInto(row, false, signal, file);
    } catch (e) {
      this.store.setState(row.id, 'paused', { error: e instanceof Error ? e.message.split('\n')[0] : String(e) });
      throw e;
    }
    await rm(file, { force: true });
    return this.infoOf(this.mustGet(row.id));
  }

  /** A memory snapshot's state file, after checking this QEMU can load it; undefined for a disk-only snapshot. */
  private async memoryOf(s: SnapshotRow): Promise<string | undefined> {
    if (!s.has_memory) return undefined;
    const here = await this.rt.qemuVersion();
    if (s.qemu_version && s.qemu_version !== here) {
      throw new IsletError('NOT_SUPPORTED', `snapshot "${s.name}" holds memory saved by QEMU ${s.qemu_version}; this host runs ${here}`,
        'restore or fork a disk-only snapshot instead, or run the same QEMU version', { snapshot: s.id, saved_by: s.qemu_version, qemu: here });
    }
    return snaps.snapMemory(this.snap, s);
  }

  private async snapshotNow(id: string, input: { name: string; description?: string; include_memory?: boolean }, signal?: AbortSignal): Promise<SnapshotCreateOutput> {
    const row = this.mustGet(id);
    if (row.state === 'creating') throw stateConflict(row, 'snapshot', ['running', 'stopped', 'failed'], 'wait for it to finish');
    const m = row.state === 'running' ? this.live.get(id) : undefined;
    if (row.state === 'running' && (!m || m.agent.isClosed)) throw new VmExitedError(`workspace "${row.name}" lost its VM`, { workspace: row.id });
    return snaps.takeSnapshot(this.snap, row, m, input, signal);
  }

  // --- internals ---

  /** The VM network for a boot under the configured mode; throws NOT_SUPPORTED for bridge mode. */
  private netSpec(allowInternet: boolean): UserNetSpec | undefined {
    const mode = this.config.network.mode;
    if (mode === 'bridge') {
      throw new IsletError('NOT_SUPPORTED', '[network] mode = "bridge" is not supported yet',
        'set [network] mode = "user" (QEMU user-mode networking, no root needed) or "none" in the config file', { mode });
    }
    return mode === 'user' ? { restrict: !allowInternet } : undefined;
  }

  private requireUserNet(op: string): void {
    const mode = this.config.network.mode;
    if (mode !== 'user') {
      throw new IsletError('NOT_SUPPORTED', `${op} needs [network] mode = "user" (this host has mode "${mode}")`,
        'set [network] mode = "user" in the config file and restart islet', { mode });
    }
  }

  private networkOf(row: WorkspaceRow): NetworkInfo {
    const user = this.config.network.mode === 'user';
    return { mode: user ? 'user' : 'none', ip: user ? USER_NET.guestIp : null, forwards: this.store.forwards(row.id).map(forwardInfo) };
  }

  /** Re-applies recorded forwards after a boot; one that can no longer bind is dropped, with a message. */
  private async reapplyForwards(row: WorkspaceRow, m: Machine): Promise<void> {
    for (const f of this.store.forwards(row.id)) {
      try {
        await m.addForward({ hostPort: f.host_port, guestPort: f.guest_port });
      } catch (e) {
        this.store.removeForward(row.id, f.host_port);
        const why = e instanceof IsletError ? `${e.code}: ${e.message}` : String(e);
        this.progress(`workspace ${row.name}: dropped forward ${FORWARD_HOST}:${f.host_port} -> ${f.guest_port} (${why})`);
      }
    }
  }

  private async bootInto(row: WorkspaceRow, createDisk: boolean, signal?: AbortSignal, memoryFile?: string): Promise<void> {
    this.progress(`workspace ${row.name}: booting (${row.image}, ${row.vcpus} vcpu, ${row.memory_mb} MiB, ${row.disk_gb} GiB)`);
    let m: Machine;
    try {
      m = await this.rt.boot({
        id: row.id, disk: snaps.activeDisk(this.snap, row), createDisk, image: row.image, vcpus: row.vcpus, memoryMb: row.memory_mb,
        diskBytes: row.disk_gb * 1024 ** 3, hostname: row.name, net: this.netSpec(row.allow_internet === 1), detached: true, signal, memoryFile,
      });
    } catch (e) {
      if (!createDisk) this.store.setState(row.id, 'failed', { error: e instanceof Error ? e.message.split('\n')[0] : String(e) });
      throw e;
    }
    this.adopt(row.id, m);
    this.store.setState(row.id, 'running', { pid: m.vm.pid });
    if (this.config.network.mode === 'user') await this.reapplyForwards(row, m);
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
    const used = await stat(snaps.activeDisk(this.snap, row)).then((s) => s.blocks * 512, () => null);
    return {
      workspace_id: row.id, name: row.name, state: row.state, image: row.image, vcpus: row.vcpus, memory_mb: row.memory_mb,
      disk_gb: row.disk_gb, allow_internet: row.allow_internet === 1, owner: row.owner, created_at: row.created_at,
      updated_at: row.updated_at, pid: row.pid, network: this.networkOf(row), snapshot_count: this.store.snapshotCount(row.id),
      snapshots: snaps.readySnapshots(this.store, row.id).map(snaps.snapshotInfo), current_snapshot_id: row.backing_snapshot_id,
      error: row.error, disk_used_bytes: used,
    };
  }
}
