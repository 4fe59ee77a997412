// The state and the rules every workspace operation shares: the live VMs,
// the per-workspace queue, ownership checks, booting into a row, and the
// rendering of a row. WorkspaceService and its operation groups
// (network-ops.ts, snapshot-ops.ts) build on it; surfaces never see it.
import { stat } from 'node:fs/promises';
import type { Config } from '../core/config.js';
import { IsletError, VmExitedError } from '../core/errors.js';
import type { Progress } from '../core/progress.js';
import type { WorkspaceState } from '../core/schemas.js';
import { FORWARD_HOST } from '../host/ports.js';
import { USER_NET, UserNetSpec } from '../vmm/argv.js';
import type { Machine } from './machine.js';
import type { Runtime } from './runtime.js';
import * as snaps from './snapshots.js';
import type { ForwardRow, Store, WorkspaceRow } from './store.js';
import type { Caller, ForwardInfo, NetworkInfo, WorkspaceInfo } from './types.js';

export const workspaceNotFound = (ref: string) =>
  new IsletError('WORKSPACE_NOT_FOUND', `no workspace "${ref}"`, 'list yours with workspace_list (or `islet ws list`)', { workspace: ref });

export const forwardInfo = (f: ForwardRow): ForwardInfo =>
  ({ host_address: FORWARD_HOST, host_port: f.host_port, guest_port: f.guest_port, created_at: f.created_at });

export const stateConflict = (row: WorkspaceRow, op: string, allowed: WorkspaceState[], hint: string) =>
  new IsletError('STATE_CONFLICT', `cannot ${op} workspace "${row.name}": it is ${row.state} (allowed: ${allowed.join(', ')})`, hint,
    { workspace: row.id, state: row.state, allowed });

export class ServiceCore {
  /** VMs this process is attached to, by workspace id. */
  readonly live = new Map<string, Machine>();
  /** Per-workspace lifecycle queue: start/stop/destroy of one workspace never overlap. */
  readonly queues = new Map<string, Promise<unknown>>();
  closed = false;
  readonly snap: snaps.SnapCtx;

  constructor(
    readonly config: Config,
    readonly rt: Runtime,
    readonly store: Store,
    readonly progress: Progress,
  ) {
    this.snap = { store, dataDir: config.paths.dataDir, diskDir: rt.diskDir, progress };
  }

  /** A workspace's active disk overlay (it moves with snapshots and restores). */
  diskPath(id: string): string {
    const row = this.store.get(id);
    return row ? snaps.activeDisk(this.snap, row) : snaps.legacyDisk(this.snap, id);
  }

  /** The VM network for a boot under the configured mode; throws NOT_SUPPORTED for bridge mode. */
  netSpec(allowInternet: boolean): UserNetSpec | undefined {
    const mode = this.config.network.mode;
    if (mode === 'bridge') {
      throw new IsletError('NOT_SUPPORTED', '[network] mode = "bridge" is not supported yet',
        'set [network] mode = "user" (QEMU user-mode networking, no root needed) or "none" in the config file', { mode });
    }
    return mode === 'user' ? { restrict: !allowInternet } : undefined;
  }

  requireUserNet(op: string): void {
    const mode = this.config.network.mode;
    if (mode !== 'user') {
      throw new IsletError('NOT_SUPPORTED', `${op} needs [network] mode = "user" (this host has mode "${mode}")`,
        'set [network] mode = "user" in the config file and restart islet', { mode });
    }
  }

  networkOf(row: WorkspaceRow): NetworkInfo {
    const user = this.config.network.mode === 'user';
    return { mode: user ? 'user' : 'none', ip: user ? USER_NET.guestIp : null, forwards: this.store.forwards(row.id).map(forwardInfo) };
  }

  /** Re-applies recorded forwards after a boot; one that can no longer bind is dropped, with a message. */
  async reapplyForwards(row: WorkspaceRow, m: Machine): Promise<void> {
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

  async bootInto(row: WorkspaceRow, createDisk: boolean, signal?: AbortSignal, memoryFile?: string): Promise<void> {
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
  adopt(id: string, m: Machine): void {
    this.live.set(id, m);
    void m.vm.exited.then((exit) => {
      if (this.closed || this.live.get(id) !== m) return;
      this.live.delete(id);
      m.detach();
      this.store.setState(id, 'stopped', { error: `VM exited unexpectedly (code ${exit.code}, signal ${exit.signal})` });
    });
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
    if (!row || (!c.admin && row.owner !== c.owner)) throw workspaceNotFound(ref);
    return row;
  }

  mustGet(id: string): WorkspaceRow {
    const row = this.store.get(id);
    if (!row) throw workspaceNotFound(id);
    return row;
  }

  running(c: Caller, ref: string): Machine {
    const row = this.resolve(c, ref);
    const m = this.live.get(row.id);
    if (row.state !== 'running' || !m) throw stateConflict(row, 'use', ['running'], 'start it with workspace_start');
    if (m.agent.isClosed) throw new VmExitedError(`workspace "${row.name}" lost its VM`, { workspace: row.id });
    return m;
  }

  async infoOf(row: WorkspaceRow): Promise<WorkspaceInfo> {
    const used = await stat(snaps.activeDisk(this.snap, row)).then((s) => s.blocks * 512, () => null);
    return {
      workspace_id: row.id, name: row.name, state: row.state, image: row.image, vcpus: row.vcpus, memory_mb: row.memory_mb,
      disk_gb: row.disk_gb, allow_internet: row.allow_internet === 1, owner: row.owner, created_at: row.created_at,
      updated_at: row.updated_at, pid: row.pid, network: this.networkOf(row), snapshot_count: this.store.snapshotCount(row.id),
      snapshots: snaps.readySnapshots(this.store, row.id).map(snaps.snapshotInfo), current_snapshot_id: row.backing_snapshot_id,
      error: row.error, disk_used_bytes: used,
    };
  }}
