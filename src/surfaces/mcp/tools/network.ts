// Network tools (user and bridge mode): port_forward, port_forward_remove,
// workspace_ip, network_policy. The service does the work; this file only
// declares the tools and renders results.
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { NetworkPolicyInput, PortForwardInput, PortForwardRemoveInput, WorkspaceRef } from '../../../core/schemas.js';
import type { WorkspaceService } from '../../../service/workspaces.js';
import type { Caller, ForwardInfo, NetworkPolicyOutput, WorkspaceIpOutput } from '../../../service/types.js';
import { toToolResult } from '../result.js';

const forwardFields = {
  host_address: z.string().describe('always 127.0.0.1: forwards are reachable from this host only'),
  host_port: z.number().int(),
  guest_port: z.number().int(),
  created_at: z.string().describe('ISO 8601'),
};
const forwardOut = { workspace_id: z.string(), ...forwardFields };
const removedOut = { workspace_id: z.string(), host_port: z.number().int(), removed: z.literal(true) };
const policyFields = {
  allow_internet: z.boolean(),
  allow_inter_vm: z.boolean().describe('bridge mode: may talk to other guests that allow it too'),
  allowed_ports: z.array(z.number().int()).describe('bridge mode: guest TCP ports other guests and the host may connect to'),
  allowed_domains: z.array(z.string()).describe('bridge mode: egress limited to these names (empty: no limit)'),
};
const ipOut = {
  workspace_id: z.string(),
  mode: z.string().describe('"user": QEMU user-mode network; "bridge": own address on the host bridge; "none": no network device'),
  ip: z.string().nullable().describe('guest address: 10.0.2.15 in user mode (every workspace has its own private network); '
    + 'in bridge mode the workspace\'s own stable address (null until it first boots)'),
  gateway: z.string().nullable().describe('the guest\'s default gateway; the guest never reaches this host\'s services through it'),
  dns: z.string().nullable(),
  ...policyFields,
  forwards: z.array(z.object(forwardFields)),
};
const policyOut = {
  workspace_id: z.string(),
  ...policyFields,
  applied: z.enum(['unchanged', 'recorded', 'restarted', 'live'])
    .describe('"recorded": takes effect at the next start; "live": applied to the running VM at once; '
      + '"restarted": the VM was restarted to apply it (only with [network] mode = "none")'),
  restart_ms: z.number().int().nullable(),
  apply_ms: z.number().nullable().describe('time to apply a live change (bridge: the firewall rewrite; user: the egress policy file)'),
};

// Fail to compile when the service returns something the declared output rejects.
const fits = {
  forward: (r: ForwardInfo & { workspace_id: string }): z.infer<z.ZodObject<typeof forwardOut>> => r,
  ip: (r: WorkspaceIpOutput): z.infer<z.ZodObject<typeof ipOut>> => r,
  policy: (r: NetworkPolicyOutput): z.infer<z.ZodObject<typeof policyOut>> => r,
};
void fits;

export function register(server: McpServer, svc: WorkspaceService, callerOf: () => Caller): void {
  server.registerTool('port_forward', {
    title: 'Forward a host port to a workspace',
    description:
      'Makes a TCP server in a running workspace reachable from this host at 127.0.0.1:host_port (only from the host, '
      + 'never from other machines). Takes effect at once, without a restart, and is kept across stop/start. Omit '
      + 'host_port to get a free one assigned (returned). The guest server must listen on 0.0.0.0 (or the guest\'s '
      + 'address), not 127.0.0.1. Works whatever the network policy says. Fails with PORT_IN_USE if the host port is taken, '
      + 'INVALID_ARGUMENT for a port outside 1-65535, NOT_SUPPORTED when the host has no network ([network] mode "none").',
    inputSchema: PortForwardInput.shape,
    outputSchema: forwardOut,
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  }, (args) => toToolResult(() => svc.portForward(callerOf(), args), {
    output: forwardOut,
    summary: (o) => `127.0.0.1:${String(o.host_port)} -> guest port ${String(o.guest_port)} of ${String(o.workspace_id)}\n${JSON.stringify(o)}`,
  }));

  server.registerTool('port_forward_remove', {
    title: 'Remove a port forward',
    description: 'Removes the forward on host_port from a workspace (live if it runs) so the host port is free again.',
    inputSchema: PortForwardRemoveInput.shape,
    outputSchema: removedOut,
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
  }, (args) => toToolResult(() => svc.portForwardRemove(callerOf(), args), {
    output: removedOut, summary: (o) => `removed forward on host port ${String(o.host_port)} from ${String(o.workspace_id)}`,
  }));

  server.registerTool('workspace_ip', {
    title: 'Show a workspace\'s network',
    description:
      'Returns the workspace\'s network mode, guest IP, gateway, its policy (allow_internet, allow_inter_vm, '
      + 'allowed_ports, allowed_domains) and its port forwards. In user mode every workspace has its own private network '
      + 'with the same address (10.0.2.15): reach a guest server from the host through port_forward. In bridge mode each '
      + 'workspace has its own stable address on the bridge, which other guests use (when the policy lets them).',
    inputSchema: WorkspaceRef.shape,
    outputSchema: ipOut,
    annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  }, (args) => toToolResult(() => svc.workspaceIp(callerOf(), args), { output: ipOut }));

  server.registerTool('network_policy', {
    title: 'Read or set a workspace\'s network policy',
    description:
      'Reads (no fields) or changes the workspace\'s network policy. allow_internet: may the guest open connections to the '
      + 'internet (never to this host, link-local addresses such as cloud metadata, or private ranges unless the host config '
      + 'allows them); false: it reaches nothing, port forwards still work. In user mode the way out is an HTTP(S) proxy '
      + 'that every exec is told about (the http_proxy/https_proxy variables): other protocols do not leave the guest. allowed_domains '
      + '(with allow_internet): only these names can be reached ([] = no limit). Bridge mode only: allow_inter_vm (guests '
      + 'that both allow it reach each other), allowed_ports (guest TCP ports other guests and the host may reach); they '
      + 'give NOT_SUPPORTED in user mode. Changes to a running workspace apply live ("live"; processes keep running, '
      + 'connections already open stay open; restart is ignored); a stopped workspace records them ("recorded").',
    inputSchema: NetworkPolicyInput.shape,
    outputSchema: policyOut,
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  }, (args, extra) => toToolResult(() => svc.networkPolicy(callerOf(), args, { signal: extra.signal }), {
    output: policyOut,
    summary: (o) => `${String(o.workspace_id)}: allow_internet=${String(o.allow_internet)} allow_inter_vm=${String(o.allow_inter_vm)} `
      + `allowed_ports=${JSON.stringify(o.allowed_ports)} allowed_domains=${JSON.stringify(o.allowed_domains)} (${String(o.applied)})\n${JSON.stringify(o)}`,
  }));
}
