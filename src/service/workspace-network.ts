// The host side of workspace networking that every boot needs: the NetSpec
// for a boot under the configured mode, bridge leases and frozen policies,
// the bridge itself (bridge mode), attaching a booted VM, and re-applying
// recorded forwards. The network operations callers ask for (port_forward,
// network_policy, ...) are in network-ops.ts, built on this.
import path from 'node:path';
import type { Config } from '../core/config.js';
import { firstLine, IsletError, NotSupportedError, QuotaExceededError } from '../core/errors.js';
import type { Progress } from '../core/progress.js';
import { FORWARD_HOST } from '../host/ports.js';
import { BridgeGuest, BridgeNet } from '../net/bridge.js';
import { GUEST_ENV_FILE, installGuestProxyEnv, writeEgressPolicy } from '../net/egress.js';
import { allocate, contains, macOf, spareAddress, tapName } from '../net/ipam.js';
import { NetSpec, USER_NET } from '../vmm/argv.js';
import type { Machine } from './machine.js';
import type { ForwardRow, Store, WorkspaceRow } from './store.js';
import type { ForwardInfo, NetworkInfo, NetworkPolicy } from './types.js';

export const forwardInfo = (f: ForwardRow): ForwardInfo =>
  ({ host_address: FORWARD_HOST, host_port: f.host_port, guest_port: f.guest_port, created_at: f.created_at });

export class WorkspaceNetwork {
  /** Bridge mode's host side (bridge, TAPs, nft tables, DNS forwarder); set up by open. */
  bridgeNet: BridgeNet | undefined;
  /** User mode: the built islet-egress binary (set at open). */
  egressHelper: string | undefined;

  constructor(private readonly config: Config, private readonly store: Store, private readonly progress: Progress) {}

  /**
   * The VM network for a boot under the configured mode. Bridge mode: with a
   * workspace id, its TAP and its stable address (allocated on first boot);
   * without, only a check that this process runs the bridge.
   */
  netSpec(_allowInternet: boolean, id?: string): NetSpec | undefined {
    const mode = this.config.network.mode;
    // `islet run` never had a network device (run-ops.ts), whatever the mode.
    if (id !== undefined && this.store.get(id)?.kind === 'run') return undefined;
    if (mode === 'bridge') {
      const b = this.bridgeNet;
      if (!b) {
        throw new NotSupportedError('bridge networking is not set up in this process',
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

  /**
   * The network of a VM that is not (yet) a workspace's: a template being
   * built, or a warm pool VM (tap: the TAP its id will keep). In user mode the
   * same as netSpec. In bridge mode: no lease, eth0 left down without an
   * address (the spare one only gives the NIC its MAC), and a TAP that is
   * never put on the bridge; the VM becomes a workspace by being addressed
   * to netSpec(…, id) (freshIdentity) and then attached.
   */
  spareNetSpec(id?: string): NetSpec | undefined {
    if (this.config.network.mode !== 'bridge') return this.netSpec(false);
    const b = this.bridgeNet;
    if (!b) return this.netSpec(false); // NOT_SUPPORTED, as for a workspace
    const ip = spareAddress(b.subnet);
    // 'template' is a placeholder: a template build gives its VM a TAP name of its own, and the template key leaves the name out.
    return {
      kind: 'tap', ifname: id ? tapName(id) : 'template', mac: macOf(ip), ip, prefix: b.subnet.prefix, gateway: b.gateway, dns: b.gateway, unaddressed: true,
    };
  }

  /** User mode: the proxy settings in the guest's /etc/environment; best effort (exec gets them anyway). */
  async guestProxyEnv(row: Pick<WorkspaceRow, 'name' | 'kind'>, m: Machine): Promise<void> {
    if (this.config.network.mode !== 'user' || row.kind === 'run') return;
    await installGuestProxyEnv(m.agent).catch((e: unknown) =>
      this.progress(`workspace ${row.name}: could not write ${GUEST_ENV_FILE} (${firstLine(e)}); exec still sets the proxy`));
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
      throw new QuotaExceededError(`the bridge subnet ${b.gateway}/${b.subnet.prefix} has no free address`,
        'destroy a workspace, or use a larger [network] subnet_prefix range', { prefix: b.subnet.prefix });
    }
    return ip;
  }

  /** Port forwards need a network: user or bridge mode. */
  requireNet(op: string): void {
    const mode = this.config.network.mode;
    if (mode === 'none') {
      throw new NotSupportedError(`${op} needs a network ([network] mode is "none")`,
        'set [network] mode = "user" (or "bridge", as root) in the config file and restart islet', { mode });
    }
  }

  networkOf(row: WorkspaceRow): NetworkInfo {
    const mode = this.config.network.mode;
    const forwards = this.store.forwards(row.id).map(forwardInfo);
    if (row.kind === 'run') return { mode: 'none', ip: null, forwards };
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
  async open(attached: Map<string, Machine>): Promise<void> {
    if (this.config.network.mode !== 'bridge') return;
    const running = [...attached].filter(([id]) => this.store.lease(id)).map(([id, m]) => ({ id, owner: m }));
    this.bridgeNet = await BridgeNet.open({ config: this.config, progress: this.progress, guestOf: (id) => this.bridgeGuest(id) }, running);
    for (const [id, m] of attached) {
      const row = this.store.get(id);
      if (!row || !this.store.lease(id)) continue;
      await this.attach(row, m); // idempotent: puts the TAP back on the bridge should it have left it
      await this.reapplyForwards(row, m);
    }
  }

  /**
   * Bridge mode at service close: the held host ports and the DNS forwarder
   * go; the bridge, TAPs and tables go too unless VMs still run (they keep
   * running, as in user mode, and keep their rules).
   */
  async close(live: Iterable<Machine>): Promise<void> {
    const b = this.bridgeNet;
    if (!b) return;
    this.bridgeNet = undefined;
    const running = [...live].filter((m) => !m.agent.isClosed).length;
    if (running) this.progress(`bridge ${b.bridge}: kept for ${running} running VM(s); their DNS answers stop until islet runs again`);
    await b.close({ keepNetwork: running > 0 });
  }

  /**
   * Bridge mode, after a boot: the VM's rules, then its TAP on the bridge;
   * the rules and forwards go when its QEMU exits. readdress (a restored
   * guest's identity and address, freshIdentity) runs in any mode; in bridge
   * mode while the rules are written, and always before the TAP joins.
   */
  async attach(row: WorkspaceRow, m: Machine, readdress?: () => Promise<void>): Promise<void> {
    const b = this.bridgeNet;
    if (!b || row.kind === 'run') {
      await readdress?.();
      return;
    }
    void m.vm.exited.then(() => this.bridgeNet?.vmGone(row.id, m));
    await b.attach(row.id, tapName(row.id), m, readdress);
  }

  /** Re-applies recorded forwards after a boot; one that can no longer bind is dropped, with a message. */
  async reapplyForwards(row: WorkspaceRow, m: Machine): Promise<void> {
    if (this.config.network.mode === 'none') return;
    const b = this.bridgeNet;
    const ip = b && this.store.lease(row.id);
    let held = 0;
    for (const f of this.store.forwards(row.id)) {
      try {
        if (b && ip) held += await b.reserve({ id: row.id, ip, hostPort: f.host_port, guestPort: f.guest_port, owner: m }) ? 1 : 0;
        else await m.vm.addForward({ hostPort: f.host_port, guestPort: f.guest_port });
      } catch (e) {
        this.store.removeForward(row.id, f.host_port);
        const why = e instanceof IsletError ? `${e.code}: ${e.message}` : String(e);
        this.progress(`workspace ${row.name}: dropped forward ${FORWARD_HOST}:${f.host_port} -> ${f.guest_port} (${why})`);
      }
    }
    if (b && held) await b.sync();
  }
}
