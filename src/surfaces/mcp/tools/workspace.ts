// Workspace lifecycle tools: create, destroy, start, stop, list, info.
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { BootInfoOut, CreateInput, ListInput, WORKSPACE_STATES, WorkspaceRef } from '../../../core/schemas.js';
import type { WorkspaceService } from '../../../service/workspaces.js';
import type { Caller, WorkspaceInfo } from '../../../service/types.js';
import { toToolResult } from '../result.js';

// Objects stay non-strict so a field the service adds later doesn't fail
// validation of results produced by an older surface.
/** One snapshot, as workspace_info and the snapshot tools show it. */
export const snapshotFields = {
  snapshot_id: z.string(),
  workspace_id: z.string(),
  name: z.string(),
  description: z.string().nullable(),
  parent_id: z.string().nullable().describe('the snapshot this one builds on (null: the base image); may be another workspace\'s (a fork\'s source)'),
  created_at: z.string().describe('ISO 8601'),
  size_bytes: z.number().int().nullable().describe('host bytes used by this snapshot\'s own file (its changes over its parent)'),
  has_memory: z.boolean().describe('true: the snapshot also holds the guest\'s memory (taken with include_memory), so restoring or forking it resumes its processes'),
};

/** TTL, idle stop and retention: the values in force and when each will act. */
export const lifetimeFields = {
  ttl_minutes: z.number().describe('a running workspace stops this long after it was created, started or resumed; 0 = never'),
  idle_stop_minutes: z.number().describe('it stops after this long with no exec, process output or tool call on it; 0 = never'),
  retention_minutes: z.number().describe('a stopped workspace is destroyed this long after it stopped; 0 = never'),
  expires_at: z.string().nullable().describe('ISO 8601: when the TTL stops it (null: not running, or no TTL)'),
  idle_stop_at: z.string().nullable().describe('ISO 8601: when it stops if nothing happens before (moves with activity)'),
  destroy_at: z.string().nullable().describe('ISO 8601: when the retention destroys it (stopped workspaces only)'),
  last_active_at: z.string().nullable().describe('ISO 8601: the last activity seen'),
  stopped_by: z.enum(['ttl', 'idle']).nullable().describe('set when a lifetime rule stopped it; cleared when it starts'),
};

export const workspaceFields = {
  workspace_id: z.string().describe('stable id (ws-...); use it in every other tool'),
  name: z.string(),
  state: z.enum(WORKSPACE_STATES),
  image: z.string(),
  vcpus: z.number().int(),
  memory_mb: z.number().int(),
  disk_gb: z.number().int(),
  allow_internet: z.boolean(),
  owner: z.string(),
  created_at: z.string().describe('ISO 8601'),
  updated_at: z.string().describe('ISO 8601'),
  pid: z.number().int().nullable().describe('QEMU pid while running'),
  network: z.object({
    mode: z.string().describe('"user": private user-mode network; "none": no network device'),
    ip: z.string().nullable().describe('the guest\'s address on its private network'),
    forwards: z.array(z.object({ host_address: z.string(), host_port: z.number().int(), guest_port: z.number().int(), created_at: z.string() }))
      .describe('host ports forwarded to guest ports (see port_forward)'),
  }),
  snapshot_count: z.number().int(),
  snapshots: z.array(z.object(snapshotFields)).describe('the snapshot tree, oldest first (parent_id links it)'),
  current_snapshot_id: z.string().nullable().describe('the snapshot the current disk builds on (null: the base image); a fork\'s source snapshot'),
  error: z.string().nullable().describe('why the workspace is in state "failed"'),
  disk_used_bytes: z.number().int().nullable().describe('host bytes used by the workspace\'s own disk overlay'),
  ssh: z.object({
    user: z.string(),
    private_key_path: z.string().describe('this workspace\'s own private key on the host (0600); deleted with the workspace'),
    public_key: z.string(),
    guest_port: z.number().int(),
    host_port: z.number().int().nullable().describe('a host port forwarded to guest_port, if any'),
    command: z.string().nullable().describe('ready to run once a forward exists'),
    hint: z.string(),
  }).nullable().describe('SSH login when the image runs sshd (e.g. agent-ready); null otherwise. Needs a port_forward to guest port 22'),
  lifetime: z.object(lifetimeFields).describe('when the workspace stops or is destroyed by itself (change with workspace_set_lifetime)'),
  boot: BootInfoOut.optional(),
  kind: z.literal('run').optional().describe('"run": the throwaway workspace of an `islet run` in progress (destroyed when it ends)'),
};
export const WorkspaceInfoOut = z.object(workspaceFields);
const destroyedFields = { workspace_id: z.string(), destroyed: z.literal(true) };
const listFields = { workspaces: z.array(WorkspaceInfoOut) };

// Fails to compile when the service returns something the declared output rejects.
const infoFits = (w: WorkspaceInfo): z.infer<typeof WorkspaceInfoOut> => w;
void infoFits;

const summary = (w: WorkspaceInfo) =>
  `${w.workspace_id} (${w.name}) is ${w.state}: image ${w.image}, ${w.vcpus} vCPU, ${w.memory_mb} MiB, ${w.disk_gb} GiB disk` +
  (w.error ? `; error: ${w.error}` : '');

const info = (out: Record<string, unknown>) => `${summary(out as unknown as WorkspaceInfo)}\n${JSON.stringify(out)}`;

export function register(server: McpServer, svc: WorkspaceService, callerOf: () => Caller): void {
  server.registerTool('workspace_create', {
    title: 'Create a workspace',
    description:
      'Creates an isolated Linux microVM workspace, boots it and waits until it is ready (usually a few seconds, longer '
      + 'under emulation). Returns its workspace_id and state "running". The workspace persists until workspace_destroy, '
      + 'but may stop by itself (disk kept) after ttl_minutes or when idle, as the host configures: see lifetime in the '
      + 'result and workspace_set_lifetime; '
      + 'its network is private: with allow_internet=false (the default) the guest can reach nothing outside (with true: '
      + 'the internet, never this host), and only '
      + 'port_forward lets the host reach it. Next: exec to run commands, file_write/file_read to move text, file_upload/file_download '
      + 'for host files. Fails with QUOTA_EXCEEDED past the per-owner or global workspace limit (destroy unused ones).',
    inputSchema: CreateInput.shape,
    outputSchema: workspaceFields,
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  }, (args, extra) => toToolResult(() => svc.create(callerOf(), args, { signal: extra.signal }), { output: workspaceFields, summary: info }));

  server.registerTool('workspace_destroy', {
    title: 'Destroy a workspace',
    description:
      'Stops the workspace\'s VM if it runs and deletes its disk and snapshots. Irreversible: everything inside is lost. '
      + 'Copy results out first with file_read or file_download. Fails with SNAPSHOT_IN_USE while a fork (workspace_fork) '
      + 'still builds on one of its snapshots: destroy the forks first.',
    inputSchema: WorkspaceRef.shape,
    outputSchema: destroyedFields,
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  }, (args, extra) => toToolResult(() => svc.destroy(callerOf(), args, { signal: extra.signal }),
    { output: destroyedFields, summary: (o) => `destroyed ${String(o.workspace_id)}` }));

  server.registerTool('workspace_start', {
    title: 'Start a stopped workspace',
    description:
      'Boots a stopped workspace again from its disk; files survive a stop/start, processes do not. Waits until the '
      + 'guest is ready and returns the workspace with state "running".',
    inputSchema: WorkspaceRef.shape,
    outputSchema: workspaceFields,
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  }, (args, extra) => toToolResult(() => svc.start(callerOf(), args, { signal: extra.signal }), { output: workspaceFields, summary: info }));

  server.registerTool('workspace_stop', {
    title: 'Stop a workspace',
    description:
      'Shuts the workspace\'s VM down, killing every process in it; the disk is kept, so workspace_start brings it back '
      + 'with its files. Stopped workspaces use no CPU or memory.',
    inputSchema: WorkspaceRef.shape,
    outputSchema: workspaceFields,
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  }, (args, extra) => toToolResult(() => svc.stop(callerOf(), args, { signal: extra.signal }), { output: workspaceFields, summary: info }));

  server.registerTool('workspace_list', {
    title: 'List your workspaces',
    description:
      'Lists the workspaces owned by this caller, optionally only those in one state. Ownership: over stdio the owner '
      + 'is the server\'s configured owner; over HTTP with a bearer token it is the token\'s owner; over HTTP without '
      + 'tokens it is the MCP session, so after a reconnect earlier workspaces are no longer listed (configure '
      + '[server] tokens for durable ownership).',
    inputSchema: ListInput.shape,
    outputSchema: listFields,
    annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  }, (args) => toToolResult(async () => ({ workspaces: await svc.list(callerOf(), args) }), {
    output: listFields,
    summary: (o) => {
      const ws = o.workspaces as WorkspaceInfo[];
      if (ws.length === 0) return 'no workspaces';
      return `${ws.length} workspace(s):\n${ws.map(summary).join('\n')}\n${JSON.stringify(o)}`;
    },
  }));

  server.registerTool('workspace_info', {
    title: 'Describe a workspace',
    description:
      'Returns one workspace\'s state, resources (vCPUs, memory, disk size and host disk use), network, snapshot count, '
      + 'lifetime (when it stops by TTL or idleness, or is destroyed after being stopped) and, if it failed, why.',
    inputSchema: WorkspaceRef.shape,
    outputSchema: workspaceFields,
    annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  }, (args) => toToolResult(() => svc.info(callerOf(), args), { output: workspaceFields, summary: info }));
}
