// What every workspace operation shares: the live VMs, the per-workspace
// queue, ownership checks, the state rules (transitions.ts), booting into a
// row, stopping a live VM, undoing a failed create, and rendering a row.
// WorkspaceService and its collaborators (network-ops.ts, snapshot-ops.ts,
// pool.ts) are each given one; surfaces never see it.
import { rm, stat } from 'node:fs/promises';
import type { Config } from '../core/config.js';
import { firstLine, VmExitedError, WorkspaceNotFoundError } from '../core/errors.js';
import { phase } from '../core/phases.js';
import type { Progress } from '../core/progress.js';
import { lifetimeOf } from './lifetimes.js';
import { Machine } from './machine.js';
import type { BootInfo, PrerootTemplates } from './preroot.js';
import type { Runtime } from './runtime.js';
import * as snaps from './snapshots.js';
import { ensureWorkspaceKey, removeWorkspaceKey, sshInfo } from './ssh.js';
import type { Store, WorkspaceRow } from './store.js';
import { assertState } from './transitions.js';
import type { Caller, WorkspaceInfo } from './types.js';
import type { NetSpec } from '../vmm/argv.js';
import { WorkspaceNetwork } from './workspace-network.js';

export class WorkspaceContext {
  /** VMs this process is attached to, by workspace id. */
  readonly live = new Map<string, Machine>();
  /** Per-workspace lifecycle queue: start/stop/destroy of one workspace never overlap. */
  readonly queues = new Map<string, Promise<unknown>>();
  closed = false;
  /** The last activity seen on each workspace, in ms (lifetimes.ts reads it and writes it to the database). */
  readonly lastActive = new Map<string, number>();
  /** Called when a caller uses a running workspace (lifetimes.ts counts it as activity). */
  onUse: (id: string) => void = () => undefined;
  readonly snap: snaps.SnapCtx;
  readonly net: WorkspaceNetwork;
  /** Restores starts from a pre-root template instead of booting (preroot.ts); absent: every start boots. */
  preroot: PrerootTemplates | undefined;
  /** How each workspace's VM last came up in this process (shown in its info). */
  readonly lastBoot = new Map<string, BootInfo>();

  constructor(
    readonly config: Config,
    readonly rt: Runtime,
    readonly store: Store,
    readonly progress: Progress,
  ) {
    this.snap = { store, dataDir: config.paths.dataDir, diskDir: rt.diskDir, progress, disks: rt.drivers.disks };
    this.net = new WorkspaceNetwork(config, store, progress);
  }

  /** A workspace's active disk overlay (it moves with snapshots and restores). */
  diskPath(id: string): string {
    const row = this.store.get(id);
    return row ? snaps.activeDisk(this.snap, row) : snaps.legacyDisk(this.snap, id);
  }

  /**
   * Boots the workspace's VM on its disk (createDisk: a new overlay first;
   * memoryFile: resume from saved memory instead of booting) and marks it
   * running. A failed boot of an existing workspace marks it failed with the
   * reason; a failed create leaves the undoing to rollbackCreate. prepare
   * runs on the booted VM before its TAP joins the bridge, while its rules
   * are written (a fork's identity and address). newIdentity: prepare gives
   * the guest a new identity, which a pre-root restore may already have
   * given (then prepare is skipped).
   */
  async bootInto(row: WorkspaceRow, createDisk: boolean, signal?: AbortSignal, memoryFile?: string,
    prepare?: (m: Machine, net: NetSpec | undefined) => Promise<void>, o: { newIdentity?: boolean } = {}): Promise<void> {
    this.progress(`workspace ${row.name}: booting (${row.image}, ${row.vcpus} vcpu, ${row.memory_mb} MiB, ${row.disk_gb} GiB)`);
    let m: Machine | undefined;
    try {
      const net = this.net.netSpec(row.allow_internet === 1, row.id);
      const req = {
        id: row.id, disk: snaps.activeDisk(this.snap, row), image: row.image, vcpus: row.vcpus, memoryMb: row.memory_mb,
        diskBytes: row.disk_gb * 1024 ** 3, hostname: row.name, net, signal,
      };
      // An existing disk with no saved memory: restore the image's pre-root template rather than boot the kernel.
      const pre = !createDisk && memoryFile === undefined && this.preroot ? await this.preroot.start({ ...req, newIdentity: o.newIdentity }) : undefined;
      m = pre?.machine ?? await Machine.boot(await this.rt.machineSpec({ ...req, createDisk, detached: true, memoryFile }));
      if (pre?.note) this.progress(`workspace ${row.name}: ${pre.note}`);
      this.lastBoot.set(row.id, { path: pre?.machine || memoryFile ? 'restore' : 'cold', ms: m.bootMs, note: pre?.note ?? null });
      this.progress(`VM ${m.id} ready in ${m.bootMs} ms${pre?.machine ? ' (pre-root restore)' : ''}`);
      const booted = m;
      const fresh = prepare && !pre?.identityDone ? prepare : undefined;
      await this.net.attach(row, m, fresh && (() => fresh(booted, net)));
      phase('net.attach');
      // The key goes in before the workspace counts as running: an ssh image whose key cannot be installed is a failed boot.
      await ensureWorkspaceKey(this.config, row, m, signal);
      phase('ssh.key');
    } catch (e) {
      await m?.shutdown().catch(() => undefined);
      if (!createDisk) this.store.setState(row.id, 'failed', { error: firstLine(e) });
      throw e;
    }
    await this.net.guestProxyEnv(row, m);
    phase('proxy.env');
    this.adopt(row.id, m);
    this.store.setState(row.id, 'running', { pid: m.vm.pid });
    await this.net.reapplyForwards(row, m);
    phase('forwards');
  }

  /** Tracks a live VM; if it dies without us asking, the workspace becomes stopped with the reason. */
  adopt(id: string, m: Machine): void {
    this.live.set(id, m);
    void m.vm.exited.then((exit) => {
      if (this.closed || this.live.get(id) !== m) return;
      this.live.delete(id);
      m.detach();
      this.store.setState(id, 'stopped', { error: `VM exited unexpectedly (code ${exit.code}, signal ${exit.signal})` });
    });
  }

  /** Powers off the workspace's VM, if it has one, and records it stopped (the disk is kept; graceMs 0: QEMU quits at once). */
  async stopLive(id: string, o: { graceMs?: number } = {}): Promise<void> {
    const m = this.live.get(id);
    this.live.delete(id);
    await m?.shutdown(o);
    this.store.setState(id, 'stopped');
  }

  /** Undoes a create (or fork) that did not finish: its VM, row, disk and SSH key go; the error is the caller's to rethrow. */
  async rollbackCreate(id: string): Promise<void> {
    const m = this.live.get(id);
    this.live.delete(id);
    await m?.shutdown().catch(() => undefined);
    const disk = this.diskPath(id);
    this.store.delete(id);
    await rm(disk, { force: true });
    await removeWorkspaceKey(this.config.paths.dataDir, id);
  }

  serial<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(id) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(fn);
    this.queues.set(id, next);
    void next.finally(() => { if (this.queues.get(id) === next) this.queues.delete(id); }).catch(() => undefined);
    return next;
  }

  /** Unknown and foreign workspaces look the same: existence is not leaked across owners. */
  resolve(c: Caller, ref: string): WorkspaceRow {
    const row = this.store.find(ref, c.admin ? undefined : c.owner);
    if (!row || (!c.admin && row.owner !== c.owner)) throw new WorkspaceNotFoundError(ref);
    return row;
  }

  mustGet(id: string): WorkspaceRow {
    const row = this.store.get(id);
    if (!row) throw new WorkspaceNotFoundError(id);
    return row;
  }

  /** The live VM of a running workspace the caller owns. */
  running(c: Caller, ref: string): Machine {
    const row = this.resolve(c, ref);
    const m = this.live.get(row.id);
    assertState(row, 'use');
    if (!m || m.agent.isClosed) throw new VmExitedError(`workspace "${row.name}" lost its VM`, { workspace: row.id });
    this.onUse(row.id);
    return m;
  }

  async infoOf(row: WorkspaceRow): Promise<WorkspaceInfo> {
    const used = await stat(snaps.activeDisk(this.snap, row)).then((s) => s.blocks * 512, () => null);
    const network = this.net.networkOf(row);
    return {
      workspace_id: row.id, name: row.name, state: row.state, image: row.image, vcpus: row.vcpus, memory_mb: row.memory_mb,
      disk_gb: row.disk_gb, allow_internet: row.allow_internet === 1, owner: row.owner, created_at: row.created_at,
      updated_at: row.updated_at, pid: row.pid, network, snapshot_count: this.store.snapshotCount(row.id),
      snapshots: snaps.readySnapshots(this.store, row.id).map(snaps.snapshotInfo), current_snapshot_id: row.backing_snapshot_id,
      error: row.error, disk_used_bytes: used, ssh: await sshInfo(this.config.paths.dataDir, row.id, network.forwards),
      lifetime: lifetimeOf(row, this.config.resources, this.lastActive.get(row.id)),
      ...(this.lastBoot.has(row.id) ? { boot: this.lastBoot.get(row.id) } : {}),
      ...(row.kind === 'run' ? { kind: 'run' as const } : {}),
    };
  }
}
