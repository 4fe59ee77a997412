// `islet ws forward add|rm|list`, `islet ws ip`, `islet ws policy`: the
// network operations of the service (port_forward, port_forward_remove,
// workspace_ip, network_policy), one method per subcommand.
import { Command } from 'commander';
import { InvalidArgumentError } from '../../core/errors.js';
import { NetworkPolicyInput, PortForwardInput, PortForwardRemoveInput } from '../../core/schemas.js';
import type { ForwardInfo, NetworkPolicy, WorkspaceIpOutput } from '../../service/types.js';
import { json } from './format.js';
import { Common, common, int, ref, validate, withService } from './ws-common.js';

/** "on"/"off" (also true/false, yes/no) for a policy switch. */
export function onOff(flag: string, v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  const s = v.toLowerCase();
  if (['on', 'true', 'yes', '1'].includes(s)) return true;
  if (['off', 'false', 'no', '0'].includes(s)) return false;
  throw new InvalidArgumentError(`${flag} must be on or off, got ${JSON.stringify(v)}`);
}

/** A comma-separated list; "none" (or "") is the empty list. */
export function list(v: string | undefined): string[] | undefined {
  if (v === undefined) return undefined;
  if (v === '' || v === 'none') return [];
  return v.split(',').map((x) => x.trim()).filter((x) => x.length > 0);
}

export function ports(flag: string, v: string | undefined): number[] | undefined {
  return list(v)?.map((p) => {
    if (!/^\d+$/.test(p)) throw new InvalidArgumentError(`${flag}: ${JSON.stringify(p)} is not a port number`);
    return Number(p);
  });
}

export function forwardLines(fw: ForwardInfo[]): string {
  if (fw.length === 0) return 'no port forwards\n';
  return fw.map((f) => `${f.host_address}:${f.host_port} -> guest ${f.guest_port}\n`).join('');
}

export function policyLines(p: NetworkPolicy): string {
  const on = (b: boolean) => (b ? 'on' : 'off');
  return [
    ['internet', on(p.allow_internet)], ['inter-vm', on(p.allow_inter_vm)],
    ['ports', p.allowed_ports.length ? p.allowed_ports.join(',') : 'none'],
    ['domains', p.allowed_domains.length ? p.allowed_domains.join(',') : 'any'],
  ].map(([k, v]) => `${`${k}:`.padEnd(10)}${v}\n`).join('');
}

export function ipLines(r: WorkspaceIpOutput): string {
  return [['mode', r.mode], ['ip', r.ip ?? '-'], ['gateway', r.gateway ?? '-'], ['dns', r.dns ?? '-']]
    .map(([k, v]) => `${`${k}:`.padEnd(10)}${v}\n`).join('') + policyLines(r) + forwardLines(r.forwards);
}

export function registerWsNetwork(ws: Command): void {
  const fwd = ws.command('forward').description('port forwards from 127.0.0.1 on the host to a guest port: add, rm, list');

  common(fwd.command('add').description('forward a host port (default: a free one) to a guest port; kept across stop/start'))
    .argument('<id>', 'workspace id or name')
    .argument('<guest-port>', 'TCP port a server listens on in the guest (on 0.0.0.0)')
    .option('--host-port <port>', 'host port on 127.0.0.1 (default: a free one)')
    .action(async (id: string, guestPort: string, f: Common & { hostPort?: string }) => {
      const input = validate(PortForwardInput, { workspace_id: id, guest_port: int('<guest-port>', guestPort), host_port: int('--host-port', f.hostPort) },
        { workspace_id: '<id>', guest_port: '<guest-port>', host_port: '--host-port' });
      const r = await withService(f, (svc, c, signal) => svc.portForward(c, input, { signal }));
      if (f.json) json(r); else process.stdout.write(forwardLines([r]));
    });

  common(fwd.command('rm').description('remove a port forward').argument('<id>', 'workspace id or name').argument('<host-port>', 'the forward\'s host port'))
    .action(async (id: string, hostPort: string, f: Common) => {
      const input = validate(PortForwardRemoveInput, { workspace_id: id, host_port: int('<host-port>', hostPort) }, { workspace_id: '<id>', host_port: '<host-port>' });
      const r = await withService(f, (svc, c, signal) => svc.portForwardRemove(c, input, { signal }));
      if (f.json) json(r); else process.stdout.write(`removed the forward of host port ${r.host_port}\n`);
    });

  common(fwd.command('list').description('the workspace\'s port forwards').argument('<id>', 'workspace id or name'))
    .action(async (id: string, f: Common) => {
      const r = await withService(f, (svc, c) => svc.workspaceIp(c, ref(id)));
      if (f.json) json(r.forwards); else process.stdout.write(forwardLines(r.forwards));
    });

  common(ws.command('ip').description('the workspace\'s network: mode, address, gateway, policy and forwards').argument('<id>', 'workspace id or name'))
    .action(async (id: string, f: Common) => {
      const r = await withService(f, (svc, c) => svc.workspaceIp(c, ref(id)));
      if (f.json) json(r); else process.stdout.write(ipLines(r));
    });

  common(ws.command('policy').description('show or change the network policy (no flags: show it)'))
    .argument('<id>', 'workspace id or name')
    .option('--internet <on|off>', 'outbound connections (internet, never the host)')
    .option('--inter-vm <on|off>', 'bridge mode: connections with other workspaces that allow it too')
    .option('--ports <list>', 'bridge mode: guest TCP ports others may connect to, comma-separated ("none" closes all)')
    .option('--domains <list>', 'with --internet on: limit egress to these names, comma-separated ("*.example.com"; "none" lifts the limit)')
    .option('--restart', 'where a change cannot be applied to a running VM live, apply it by restarting the VM (user and bridge mode apply live)')
    .action(async (id: string, f: Common & { internet?: string; interVm?: string; ports?: string; domains?: string; restart?: boolean }) => {
      const change = {
        allow_internet: onOff('--internet', f.internet), allow_inter_vm: onOff('--inter-vm', f.interVm),
        allowed_ports: ports('--ports', f.ports), allowed_domains: list(f.domains), restart: f.restart,
      };
      if (Object.values(change).every((v) => v === undefined)) {
        const r = await withService(f, (svc, c) => svc.workspaceIp(c, ref(id)));
        if (f.json) json(r); else process.stdout.write(policyLines(r));
        return;
      }
      const input = validate(NetworkPolicyInput, { workspace_id: id, ...change }, {
        workspace_id: '<id>', allow_internet: '--internet', allow_inter_vm: '--inter-vm', allowed_ports: '--ports', allowed_domains: '--domains', restart: '--restart',
      });
      const r = await withService(f, (svc, c, signal) => svc.networkPolicy(c, input, { signal }));
      if (f.json) json(r); else process.stdout.write(`${policyLines(r)}applied:  ${r.applied}${r.restart_ms !== null ? ` (restart ${r.restart_ms} ms)` : ''}\n`);
    });
}
