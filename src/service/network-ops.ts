// Network operations of a workspace (user mode): port forwards added and
// removed live through QEMU, the guest's address, and the internet policy.
import { IsletError, InvalidArgumentError, PortInUseError } from '../core/errors.js';
import type { NetworkPolicyInput, PortForwardInput, PortForwardRemoveInput, WorkspaceRef } from '../core/schemas.js';
import { FORWARD_HOST, probePort } from '../host/ports.js';
import { isPort, USER_NET } from '../vmm/argv.js';
import { forwardInfo, ServiceCore, stateConflict } from './core.js';
import type { ForwardRow } from './store.js';
import type { Caller, ForwardInfo, NetworkPolicyOutput, OpOptions, WorkspaceIpOutput } from './types.js';

/** Auto-assigned host ports: the probe socket is closed before QEMU binds, so another process may win; retry. */
const AUTO_PORT_ATTEMPTS = 5;

const checkPort = (name: string, v: unknown) => {
  if (!isPort(v)) throw new InvalidArgumentError(`${name} ${String(v)} is not a TCP port`, `${name} must be an integer from 1 to 65535`, { [name]: v });
};

export class NetworkOps {
  constructor(private readonly s: ServiceCore) {}

  /** Forwards 127.0.0.1:host_port on the host to guest_port in a running workspace, live; recorded and re-applied on start. */
  async portForward(c: Caller, input: PortForwardInput, _o: OpOptions = {}): Promise<ForwardInfo & { workspace_id: string }> {
    const row0 = this.s.resolve(c, input.workspace_id);
    checkPort('guest_port', input.guest_port);
    if (input.host_port !== undefined) checkPort('host_port', input.host_port);
    this.s.requireUserNet('port_forward');
    return this.s.serial(row0.id, async () => {
      const m = this.s.running(c, row0.id);
      const guestPort = input.guest_port;
      let hostPort: number;
      if (input.host_port !== undefined) {
        hostPort = input.host_port;
        const taken = this.s.store.forwardOnHostPort(hostPort);
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
            if (this.s.store.forwardOnHostPort(p)) throw new PortInUseError(p);
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
        this.s.store.addForward(row);
      } catch (e) {
        await m.removeForward(hostPort).catch(() => undefined);
        throw e;
      }
      this.s.progress(`workspace ${row0.name}: forwarding ${FORWARD_HOST}:${hostPort} to guest port ${guestPort}`);
      return { workspace_id: row0.id, ...forwardInfo(row) };
    });
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
      if (row.state === 'running' && m) await m.removeForward(input.host_port);
      this.s.store.removeForward(row.id, input.host_port);
      return { workspace_id: row.id, host_port: input.host_port, removed: true as const };
    });
  }

  /** The workspace's network: mode, guest address, gateway, policy and forwards. */
  async workspaceIp(c: Caller, input: WorkspaceRef): Promise<WorkspaceIpOutput> {
    const row = this.s.resolve(c, input.workspace_id);
    const n = this.s.networkOf(row);
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
    const row0 = this.s.resolve(c, input.workspace_id);
    return this.s.serial(row0.id, async () => {
      const row = this.s.mustGet(row0.id);
      const current = row.allow_internet === 1;
      const want = input.allow_internet ?? current;
      const out = (applied: NetworkPolicyOutput['applied'], ms: number | null = null): NetworkPolicyOutput =>
        ({ workspace_id: row.id, allow_internet: want, applied, restart_ms: ms });
      if (want === current) return out('unchanged');
      if (row.state === 'creating') throw stateConflict(row, 'change the network policy of', ['running', 'stopped', 'failed'], 'wait for it to finish');
      const m = this.s.live.get(row.id);
      if (row.state !== 'running' || !m) {
        this.s.store.setAllowInternet(row.id, want);
        return out('recorded');
      }
      if (!input.restart) {
        throw new IsletError('STATE_CONFLICT',
          `cannot change allow_internet of running workspace "${row.name}" live: user-mode networking fixes it when the VM starts`,
          'pass restart: true to apply it now by restarting the VM (running processes are killed; files and port forwards are kept), '
          + 'or stop the workspace, change the policy, and start it', { workspace: row.id, state: row.state, allow_internet: current });
      }
      const t0 = performance.now();
      this.s.live.delete(row.id);
      await m.shutdown();
      this.s.store.setState(row.id, 'stopped');
      this.s.store.setAllowInternet(row.id, want);
      await this.s.bootInto(this.s.mustGet(row.id), false, o.signal);
      return out('restarted', Math.round(performance.now() - t0));
    });
  }

}
