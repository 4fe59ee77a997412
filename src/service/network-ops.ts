// Network operations of a workspace: port forwards, the guest's address, and
// the policy. User mode forwards through QEMU (hostfwd) and applies
// allow_internet and allowed_domains live by rewriting the policy file the
// egress proxy reads (src/net/egress.ts); bridge mode forwards with nft
// DNAT and applies every policy change live by rewriting the rules.
import { InternalError, IsletError, InvalidArgumentError, NotSupportedError, PortInUseError, StateConflictError } from '../core/errors.js';
import type { NetworkPolicyInput, PortForwardInput, PortForwardRemoveInput, WorkspaceRef } from '../core/schemas.js';
import { FORWARD_HOST, probePort } from '../host/ports.js';
import { isPort, USER_NET } from '../vmm/argv.js';
import { forwardInfo } from './workspace-network.js';
import type { WorkspaceContext } from './workspace-context.js';
import { assertState } from './transitions.js';
import type { Machine } from './machine.js';
import type { ForwardRow, WorkspaceRow } from './store.js';
import type { Caller, ForwardInfo, NetworkPolicy, NetworkPolicyOutput, OpOptions, WorkspaceIpOutput } from './types.js';

/** Auto-assigned host ports: the probe socket is closed before QEMU binds, so another process may win; retry. */
const AUTO_PORT_ATTEMPTS = 5;

const checkPort = (name: string, v: unknown) => {
  if (!isPort(v)) throw new InvalidArgumentError(`${name} ${String(v)} is not a TCP port`, `${name} must be an integer from 1 to 65535`, { [name]: v });
};

const sameList = <T>(a: readonly T[], b: readonly T[]) => a.length === b.length && a.every((x, i) => x === b[i]);

export class NetworkOps {
  constructor(private readonly s: WorkspaceContext) {}

  /** Forwards 127.0.0.1:host_port on the host to guest_port in a running workspace, live; recorded and re-applied on start. */
  async portForward(c: Caller, input: PortForwardInput, _o: OpOptions = {}): Promise<ForwardInfo & { workspace_id: string }> {
    const row0 = this.s.resolve(c, input.workspace_id);
    checkPort('guest_port', input.guest_port);
    if (input.host_port !== undefined) checkPort('host_port', input.host_port);
    this.s.net.requireNet('port_forward');
    return this.s.serial(row0.id, async () => {
      const m = this.s.running(c, row0.id);
      const guestPort = input.guest_port;
      if (input.host_port !== undefined) {
        const taken = this.s.store.forwardOnHostPort(input.host_port);
        if (taken) {
          throw new PortInUseError(input.host_port, taken.workspace_id === row0.id
            ? `this workspace already forwards it to guest port ${taken.guest_port}` : 'another workspace has a forward recorded on it');
        }
      }
      const hostPort = this.s.net.bridgeNet
        ? await this.bridgeForward(row0, m, input.host_port ?? 0, guestPort)
        : await this.userForward(m, input.host_port, guestPort);
      const row: ForwardRow = { workspace_id: row0.id, host_port: hostPort, guest_port: guestPort, created_at: new Date().toISOString() };
      try {
        this.s.store.addForward(row);
      } catch (e) {
        await this.dropLive(m, hostPort).catch(() => undefined);
        throw e;
      }
      this.s.progress(`workspace ${row0.name}: forwarding ${FORWARD_HOST}:${hostPort} to guest port ${guestPort}`);
      return { workspace_id: row0.id, ...forwardInfo(row) };
    });
  }

  /** User mode: QEMU binds the host port (hostfwd_add). */
  private async userForward(m: Machine, wanted: number | undefined, guestPort: number): Promise<number> {
    if (wanted !== undefined) {
      await probePort(wanted);
      await m.vm.addForward({ hostPort: wanted, guestPort });
      return wanted;
    }
    for (let attempt = 1; ; attempt++) {
      const p = await probePort(0);
      try {
        if (this.s.store.forwardOnHostPort(p)) throw new PortInUseError(p);
        await m.vm.addForward({ hostPort: p, guestPort });
        return p;
      } catch (e) {
        if (!(e instanceof IsletError && e.code === 'PORT_IN_USE') || attempt >= AUTO_PORT_ATTEMPTS) throw e;
      }
    }
  }

  /** Bridge mode: islet holds the host port (nothing else can bind it) and a DNAT rule sends its connections to the guest. */
  private async bridgeForward(row: WorkspaceRow, m: Machine, wanted: number, guestPort: number): Promise<number> {
    const b = this.s.net.bridgeNet!;
    const ip = this.s.store.lease(row.id);
    if (!ip) throw new InternalError(`workspace "${row.name}" runs without a bridge address`);
    const hostPort = await b.reserve({ id: row.id, ip, hostPort: wanted, guestPort, owner: m });
    if (this.s.store.forwardOnHostPort(hostPort)) { // an auto-picked port that a stopped workspace's forward records
      b.release(hostPort);
      throw new PortInUseError(hostPort, 'another workspace has a forward recorded on it');
    }
    try {
      await b.sync();
    } catch (e) {
      b.release(hostPort);
      throw e;
    }
    return hostPort;
  }

  /** Takes a forward off the live network (bridge: the held port and its rule; user: QEMU's hostfwd). */
  private async dropLive(m: Machine | undefined, hostPort: number): Promise<void> {
    const b = this.s.net.bridgeNet;
    if (b) {
      b.release(hostPort);
      await b.sync();
    } else if (m) await m.vm.removeForward(hostPort);
  }

  /** Removes a forward (live if the workspace runs) and its record. */
  async portForwardRemove(c: Caller, input: PortForwardRemoveInput, _o: OpOptions = {}): Promise<{ workspace_id: string; host_port: number; removed: true }> {
    const row0 = this.s.resolve(c, input.workspace_id);
    checkPort('host_port', input.host_port);
    return this.s.serial(row0.id, async () => {
      const row = this.s.mustGet(row0.id);
      if (!this.s.store.forwards(row.id).some((f) => f.host_port === input.host_port)) {
        throw new InvalidArgumentError(`workspace "${row.name}" has no forward on host port ${input.host_port}`,
          'list its forwards with workspace_ip', { workspace: row.id, host_port: input.host_port });
      }
      const m = this.s.live.get(row.id);
      if (this.s.net.bridgeNet) await this.dropLive(m, input.host_port);
      else if (row.state === 'running' && m) await m.vm.removeForward(input.host_port);
      this.s.store.removeForward(row.id, input.host_port);
      return { workspace_id: row.id, host_port: input.host_port, removed: true as const };
    });
  }

  /** The workspace's network: mode, guest address, gateway, policy and forwards. */
  async workspaceIp(c: Caller, input: WorkspaceRef): Promise<WorkspaceIpOutput> {
    const row = this.s.resolve(c, input.workspace_id);
    const n = this.s.net.networkOf(row);
    const gw = n.mode === 'user' ? USER_NET.gateway : n.mode === 'bridge' ? this.s.net.bridgeNet?.gateway ?? null : null;
    const dns = n.mode === 'user' ? USER_NET.dns : gw;
    return { workspace_id: row.id, ...n, gateway: gw, dns, ...this.s.net.policyOf(row) };
  }

  /**
   * Reads or changes the policy. Bridge mode applies any change to a running
   * VM live (one nft transaction); user mode applies allow_internet and
   * allowed_domains live (the egress proxy's policy file), and refuses the
   * inter-VM fields, which need bridge mode. restart is no longer needed.
   */
  async networkPolicy(c: Caller, input: NetworkPolicyInput, o: OpOptions = {}): Promise<NetworkPolicyOutput> {
    const row0 = this.s.resolve(c, input.workspace_id);
    const mode = this.s.config.network.mode;
    if (mode !== 'bridge') {
      const asked = [
        input.allow_inter_vm === true && 'allow_inter_vm',
        input.allowed_ports?.length && 'allowed_ports',
        mode !== 'user' && input.allowed_domains?.length && 'allowed_domains',
      ].filter(Boolean);
      if (asked.length) {
        throw new NotSupportedError(`${asked.join(', ')} need [network] mode = "bridge" (this host has mode "${mode}")`,
          mode === 'user' ? 'in user mode every workspace has its own private network: guests never reach each other and there is no '
            + 'inbound path but port_forward; set [network] mode = "bridge" (root) for these' : 'set [network] mode = "bridge" (root)',
          { mode, fields: asked });
      }
    }
    for (const p of input.allowed_ports ?? []) checkPort('allowed_ports', p);
    return this.s.serial(row0.id, async () => {
      const row = this.s.mustGet(row0.id);
      const cur = this.s.net.policyOf(row);
      const want: NetworkPolicy = {
        allow_internet: input.allow_internet ?? cur.allow_internet,
        allow_inter_vm: input.allow_inter_vm ?? cur.allow_inter_vm,
        allowed_ports: input.allowed_ports ? [...input.allowed_ports].sort((a, b) => a - b) : cur.allowed_ports,
        allowed_domains: input.allowed_domains ? input.allowed_domains.map((d) => d.toLowerCase().replace(/\.$/, '')) : cur.allowed_domains,
      };
      const out = (applied: NetworkPolicyOutput['applied'], restartMs: number | null = null, applyMs: number | null = null): NetworkPolicyOutput =>
        ({ workspace_id: row.id, ...want, applied, restart_ms: restartMs, apply_ms: applyMs });
      const changed = want.allow_internet !== cur.allow_internet || want.allow_inter_vm !== cur.allow_inter_vm
        || !sameList(want.allowed_ports, cur.allowed_ports) || !sameList(want.allowed_domains, cur.allowed_domains);
      if (!changed) return out('unchanged');
      assertState(row, 'policy');
      const record = () => {
        this.s.store.setAllowInternet(row.id, want.allow_internet);
        this.s.store.setNetPolicy({
          workspace_id: row.id, allow_inter_vm: want.allow_inter_vm ? 1 : 0,
          allowed_ports: JSON.stringify(want.allowed_ports), allowed_domains: JSON.stringify(want.allowed_domains),
        });
      };
      const m = this.s.live.get(row.id);
      const b = this.s.net.bridgeNet;
      if (b) {
        record();
        if (row.state !== 'running' || !m || !b.isAttached(row.id, m)) return out('recorded');
        return out('live', null, Math.round((await b.sync()) * 10) / 10);
      }
      if (mode === 'user') {
        // The egress proxy reads the policy file at each new connection: rewriting it is the live change.
        const t0 = performance.now();
        record();
        this.s.net.writeEgress(row.id);
        if (row.state !== 'running' || !m) return out('recorded');
        return out('live', null, Math.round((performance.now() - t0) * 10) / 10);
      }
      if (row.state !== 'running' || !m) {
        record();
        return out('recorded');
      }
      if (!input.restart) {
        throw new StateConflictError(
          `cannot change allow_internet of running workspace "${row.name}" live: user-mode networking fixes it when the VM starts`,
          'pass restart: true to apply it now by restarting the VM (running processes are killed; files and port forwards are kept), '
          + 'or stop the workspace, change the policy, and start it', { workspace: row.id, state: row.state, allow_internet: cur.allow_internet });
      }
      const t0 = performance.now();
      await this.s.stopLive(row.id);
      record();
      await this.s.bootInto(this.s.mustGet(row.id), false, o.signal);
      return out('restarted', Math.round(performance.now() - t0));
    });
  }
}
