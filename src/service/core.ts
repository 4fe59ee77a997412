// The state and the rules every workspace operation shares: the live VMs,
// the per-workspace queue, ownership checks, booting into a row, and the
// rendering of a row. WorkspaceService and its operation groups
// (network-ops.ts, snapshot-ops.ts) build on it; surfaces never see it.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../core/config.js';
import { IsletError, VmExitedError } from '../core/errors.js';
import type { Progress } from '../core/progress.js';
import type { WorkspaceState } from '../core/schemas.js';
import { FORWARD_HOST } from '../host/ports.js';
import { BridgeGuest, BridgeNet } from '../net/bridge.js';
import { GUEST_ENV_FILE, installGuestProxyEnv, writeEgressPolicy } from '../net/egress.js';
import { allocate, contains, macOf, tapName } from '../net/ipam.js';
import { NetSpec, USER_NET } from '../vmm/argv.js';
import type { Machine } from './machine.js';
import type { Runtime } from './runtime.js';
import * as snaps from './snapshots.js';
import { ensureWorkspaceKey, sshInfo } from './ssh.js';
import type { ForwardRow, Store, WorkspaceRow } from './store.js';
import type { Caller, ForwardInfo, NetworkInfo, NetworkPolicy, WorkspaceInfo } from './types.js';

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
  /** Bridge mode's host side (bridge, TAPs, nft tables, DNS forwarder); set up by netOpen. */
  bridgeNet: BridgeNet | undefined;
  /** User mode: the built islet-egress binary (set at open). */
  egressHelper: string | undefined;

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

  /**
   * The VM network for a boot under the configured mode. Bridge mode: with a
   * workspace id, its TAP and its stable address (allocated on first boot);
   * without, only a check that this process runs the bridge.
   */
  netSpec(_allowInternet: boolean, id?: string): NetSpec | undefined {
    const mode = this.config.network.mode;
    if (mode === 'bridge') {
      const b = this.bridgeNet;
      if (!b) {
        throw new IsletError('NOT_SUPPORTED', 'bridge networking is not set up in this process',
          'open the service with [network] mode = "bridge" as root (islet serve), or use mode = "user"', { mode });
      }
      if (!id) return undefined;
      const ip = this.leaseOf(id, b);
      this.freezePolicy(id);
      return { kind: 'tap', ifname: tapName(id), mac: macOf(ip), ip, prefix: b.subnet.prefix, gateway: b.gateway, dns: b.gateway };
    }
    if (mode !== 'user') return undefined;
    // Always restrict=on: the only way out is the egress proxy, which applies the policy (allow_internet too) per connection.
    if (id) this.writeEgress(id);
    return { restrict: true, egressHelper: this.egressHelper };
  }

  /** User mode: the proxy settings in the guest's /etc/environment; best effort (exec gets them anyway). */
  async guestProxyEnv(row: WorkspaceRow, m: Machine): Promise<void> {
    if (this.config.network.mode !== 'user') return;
    await installGuestProxyEnv(m).catch((e: unknown) =>
      this.progress(`workspace ${row.name}: could not write ${GUEST_ENV_FILE} (${e instanceof Error ? e.message : String(e)}); exec still sets the proxy`));
  }

  /** User mode: the workspace's policy, as islet-egress reads it at each connection; rewriting it changes the policy live. */
  writeEgress(id: string): void {
    const row = this.store.get(id);
    if (!row || this.config.network.mode !== 'user') return;
    const p = this.policyOf(row);
    writeEgressPolicy(path.join(this.config.paths.runDir, 'vm', id), { internet: p.allow_internet, allowedDomains: p.allowed_domains }, this.config);
  }

  /** The workspace's address on the bridge: kept for its whole life, re-picked only if the subnet in the config changed. */
  private leaseOf(id: string, b: BridgeNet): string {
    const cur = this.store.lease(id);
    if (cur && contains(b.subnet, cur)) return cur;
    const ip = this.store.allocateLease(id, (used) => allocate(b.subnet, used));
    if (!ip) {
      throw new IsletError('QUOTA_EXCEEDED', `the bridge subnet ${b.gateway}/${b.subnet.prefix} has no free address`,
        'destroy a workspace, or use a larger [network] subnet_prefix range', { prefix: b.subnet.prefix });
    }
    return ip;
  }

  /** Port forwards need a network: user or bridge mode. */
  requireNet(op: string): void {
    const mode = this.config.network.mode;
    if (mode === 'none') {
      throw new IsletError('NOT_SUPPORTED', `${op} needs a network ([network] mode is "none")`,
        'set [network] mode = "user" (or "bridge", as root) in the config file and restart islet', { mode });
    }
  }

  networkOf(row: WorkspaceRow): NetworkInfo {
    const mode = this.config.network.mode;
    const forwards = this.store.forwards(row.id).map(forwardInfo);
    if (mode === 'bridge') return { mode, ip: this.store.lease(row.id) ?? null, forwards };
    const user = mode === 'user';
    return { mode: user ? 'user' : 'none', ip: user ? USER_NET.guestIp : null, forwards };
  }

  /** The recorded policy; a workspace that never had one gets the [network] defaults. */
  policyOf(row: WorkspaceRow): NetworkPolicy {
    const p = this.store.netPolicy(row.id);
    const n = this.config.network;
    return {
      allow_internet: row.allow_internet === 1,
      allow_inter_vm: p ? p.allow_inter_vm === 1 : n.default_allow_inter_vm,
      allowed_ports: p ? JSON.parse(p.allowed_ports) as number[] : [...n.default_allowed_ports],
      allowed_domains: p ? JSON.parse(p.allowed_domains) as string[] : [...n.default_allowed_domains],
    };
  }

  /** A workspace's first bridge boot records the [network] defaults as its own policy, so later config edits do not change it. */
  private freezePolicy(id: string): void {
    const row = this.store.get(id);
    if (!row || this.store.netPolicy(id)) return;
    const p = this.policyOf(row);
    this.store.setNetPolicy({
      workspace_id: id, allow_inter_vm: p.allow_inter_vm ? 1 : 0, allowed_ports: JSON.stringify(p.allowed_ports), allowed_domains: JSON.stringify(p.allowed_domains),
    });
  }

  private bridgeGuest(id: string): BridgeGuest | undefined {
    const row = this.store.get(id);
    const ip = row && this.store.lease(id);
    if (!row || !ip) return undefined;
    const p = this.policyOf(row);
    return { id, ip, tap: tapName(id), internet: p.allow_internet, interVm: p.allow_inter_vm, ports: p.allowed_ports, domains: p.allowed_domains };
  }

  /** Bridge mode: sets up the host side, taking over the VMs reconcile re-attached (their TAPs are still on the bridge). */
  async netOpen(attached: Map<string, Machine>): Promise<void> {
    if (this.config.network.mode !== 'bridge') return;
    const running = [...attached].filter(([id]) => this.store.lease(id)).map(([id, m]) => ({ id, owner: m }));
    this.bridgeNet = await BridgeNet.open({ config: this.config, progress: this.progress, guestOf: (id) => this.bridgeGuest(id) }, running);
    for (const [id, m] of attached) {
      if (!this.store.lease(id)) continue;
      await this.netAttach(this.mustGet(id), m); // idempotent: puts the TAP back on the bridge should it have left it
      await this.reapplyForwards(this.mustGet(id), m);
    }
  }

  /**
   * Bridge mode at service close: the held host ports and the DNS forwarder
   * go; the bridge, TAPs and tables go too unless VMs still run (they keep
   * running, as in user mode, and keep their rules).
   */
  async netClose(): Promise<void> {
    const b = this.bridgeNet;
    if (!b) return;
    this.bridgeNet = undefined;
    const running = [...this.live.values()].filter((m) => !m.agent.isClosed).length;
    if (running) this.progress(`bridge ${b.bridge}: kept for ${running} running VM(s); their DNS answers stop until islet runs again`);
    await b.close({ keepNetwork: running > 0 });
  }

  /** Bridge mode, after a boot: the VM's rules, then its TAP on the bridge; the rules and forwards go when its QEMU exits. */
  private async netAttach(row: WorkspaceRow, m: Machine): Promise<void> {
    const b = this.bridgeNet;
    if (!b) return;
    void m.vm.exited.then(() => this.bridgeNet?.vmGone(row.id, m));
    await b.attach(row.id, tapName(row.id), m);
  }

  /** Re-applies recorded forwards after a boot; one that can no longer bind is dropped, with a message. */
  async reapplyForwards(row: WorkspaceRow, m: Machine): Promise<void> {
    const b = this.bridgeNet;
    const ip = b && this.store.lease(row.id);
    let held = 0;
    for (const f of this.store.forwards(row.id)) {
      try {
        if (b && ip) held += await b.reserve({ id: row.id, ip, hostPort: f.host_port, guestPort: f.guest_port, owner: m }) ? 1 : 0;
        else await m.addForward({ hostPort: f.host_port, guestPort: f.guest_port });
      } catch (e) {
        this.store.removeForward(row.id, f.host_port);
        const why = e instanceof IsletError ? `${e.code}: ${e.message}` : String(e);
        this.progress(`workspace ${row.name}: dropped forward ${FORWARD_HOST}:${f.host_port} -> ${f.guest_port} (${why})`);
      }
    }
    if (b && held) await b.sync();
  }

  async bootInto(row: WorkspaceRow, createDisk: boolean, signal?: AbortSignal, memoryFile?: string): Promise<void> {
    this.progress(`workspace ${row.name}: booting (${row.image}, ${row.vcpus} vcpu, ${row.memory_mb} MiB, ${row.disk_gb} GiB)`);
    let m: Machine;
    try {
      m = await this.rt.boot({
        id: row.id, disk: snaps.activeDisk(this.snap, row), createDisk, image: row.image, vcpus: row.vcpus, memoryMb: row.memory_mb,
        diskBytes: row.disk_gb * 1024 ** 3, hostname: row.name, net: this.netSpec(row.allow_internet === 1, row.id), detached: true, signal, memoryFile,
      });
      await this.netAttach(row, m).catch(async (e: unknown) => { await m.shutdown().catch(() => undefined); throw e; });
    } catch (e) {
      if (!createDisk) this.store.setState(row.id, 'failed', { error: e instanceof Error ? e.message.split('\n')[0] : String(e) });
      throw e;
    }
    // The key goes in before the workspace counts as running: an ssh image whose key cannot be installed is a failed boot.
    try {
      await ensureWorkspaceKey(this.config, row, m, signal);
    } catch (e) {
      await m.shutdown().catch(() => undefined);
      if (!createDisk) this.store.setState(row.id, 'failed', { error: e instanceof Error ? e.message.split('\n')[0] : String(e) });
      throw e;
    }
    await this.guestProxyEnv(row, m);
    this.adopt(row.id, m);
    this.store.setState(row.id, 'running', { pid: m.vm.pid });
    if (this.config.network.mode !== 'none') await this.reapplyForwards(row, m);
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
    const network = this.networkOf(row);
    return {
      workspace_id: row.id, name: row.name, state: row.state, image: row.image, vcpus: row.vcpus, memory_mb: row.memory_mb,
      disk_gb: row.disk_gb, allow_internet: row.allow_internet === 1, owner: row.owner, created_at: row.created_at,
      updated_at: row.updated_at, pid: row.pid, network, snapshot_count: this.store.snapshotCount(row.id),
      snapshots: snaps.readySnapshots(this.store, row.id).map(snaps.snapshotInfo), current_snapshot_id: row.backing_snapshot_id,
      error: row.error, disk_used_bytes: used, ssh: await sshInfo(this.config.paths.dataDir, row.id, network.forwards),
    };
  }}
