// Network tools (user-mode networking): port_forward, port_forward_remove,
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
const ipOut = {
  workspace_id: z.string(),
  mode: z.string().describe('"user": QEMU user-mode network; "none": no network device'),
  ip: z.string().nullable().describe('guest address (10.0.2.15 in user mode; every workspace has its own private network)'),
  gateway: z.string().nullable().describe('the host as seen from the guest (10.0.2.2); reachable only when allow_internet is true'),
  dns: z.string().nullable(),
  allow_internet: z.boolean(),
  forwards: z.array(z.object(forwardFields)),
};
const policyOut = {
  workspace_id: z.string(),
  allow_internet: z.boolean(),
  applied: z.enum(['unchanged', 'recorded', 'restarted'])
    .describe('"recorded": takes effect at the next start; "restarted": the VM was restarted to apply it'),
  restart_ms: z.number().int().nullable(),
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
      + 'host_port to get a free one assigned (returned). The guest server must listen on 0.0.0.0 (or 10.0.2.15), not '
      + '127.0.0.1. Works whatever allow_internet says. Fails with PORT_IN_USE if the host port is taken, INVALID_ARGUMENT '
      + 'for a port outside 1-65535, NOT_SUPPORTED when the host has no user-mode networking.',
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
      'Returns the workspace\'s network mode, guest IP, gateway, whether it may open connections out (allow_internet) '
      + 'and its port forwards. In user mode every workspace has its own private network with the same address '
      + '(10.0.2.15): reach a guest server from the host through port_forward, not through this IP.',
    inputSchema: WorkspaceRef.shape,
    outputSchema: ipOut,
    annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  }, (args) => toToolResult(() => svc.workspaceIp(callerOf(), args), { output: ipOut }));

  server.registerTool('network_policy', {
    title: 'Read or set a workspace\'s network policy',
    description:
      'Reads (no allow_internet) or sets whether the guest may open connections out: to the internet and to services on '
      + 'this host (via 10.0.2.2). With allow_internet=false the guest reaches nothing at all; port forwards still work. '
      + 'On a stopped workspace the change is recorded for the next start. On a running workspace it needs a VM restart: '
      + 'pass restart=true (running processes are killed; files and port forwards are kept), otherwise it fails with '
      + 'STATE_CONFLICT.',
    inputSchema: NetworkPolicyInput.shape,
    outputSchema: policyOut,
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  }, (args, extra) => toToolResult(() => svc.networkPolicy(callerOf(), args, { signal: extra.signal }), {
    output: policyOut,
    summary: (o) => `${String(o.workspace_id)}: allow_internet=${String(o.allow_internet)} (${String(o.applied)})`,
  }));
}
