// One zod schema per operation. The MCP tools' input schemas, the CLI's
// flag validation and (later) the HTTP API's OpenAPI document all come from
// here, so every surface accepts exactly the same inputs.
import { randomBytes } from 'node:crypto';
import { z } from 'zod';

export const WORKSPACE_STATES = ['creating', 'running', 'paused', 'stopped', 'failed', 'destroyed'] as const;
export type WorkspaceState = (typeof WORKSPACE_STATES)[number];

export const WorkspaceId = z.string().min(1).max(64)
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, 'letters, digits, "_", "." and "-" only')
  .describe('workspace id (ws-...) or name, as returned by workspace_create or workspace_list');

/** Ids and names share one lookup: a name that could be an id would shadow (or reveal) one. */
export const WORKSPACE_ID_PREFIX = 'ws-';
export const SNAPSHOT_ID_PREFIX = 'snap-';

/**
 * A new workspace id: 64 random bits, so that ids stay unique across the
 * hosts of a cluster without coordination (for a million workspaces the
 * chance that any two share an id is below 3 in 10^8). Hosts before this
 * used 32 bits (ws- + 8 hex digits); both forms are recognised.
 */
export function newWorkspaceId(): string {
  return `${WORKSPACE_ID_PREFIX}${randomBytes(8).toString('hex')}`;
}

/** Matches the ids newWorkspaceId makes, and the shorter ones of earlier versions. */
export const WORKSPACE_ID_FORM = /^ws-(?:[0-9a-f]{16}|[0-9a-f]{8})$/;

export const WorkspaceName = z.string().min(1).max(48)
  .regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/, 'lowercase letters, digits and "-", not starting or ending with "-"')
  .refine((n) => !n.startsWith(WORKSPACE_ID_PREFIX), `must not start with "${WORKSPACE_ID_PREFIX}": that prefix is for workspace ids`)
  .describe(`a unique, human-friendly name (not starting with "${WORKSPACE_ID_PREFIX}"); also the guest hostname`);

/** Permission bits plus setuid (0o4000), setgid (0o2000) and sticky (0o1000), all applied in the guest. */
export const FileMode = z.number().int().min(0).max(0o7777)
  .describe('permission bits, e.g. 420 (0644) or 493 (0755); setuid, setgid and sticky (0o7000) are applied too');

export const GuestPath = z.string().min(1).max(4096)
  .refine((p) => p.startsWith('/'), 'must be an absolute path in the guest')
  .describe('absolute path inside the guest');

export const CreateInput = z.object({
  name: WorkspaceName.optional(),
  image: z.string().min(1).max(64).regex(/^[a-z0-9][a-z0-9-]*$/).optional()
    .describe('image to boot (default from [resources] default_image, "dev")'),
  vcpus: z.number().int().min(1).max(64).optional().describe('virtual CPUs (default [resources] default_vcpus, at most max_vcpus)'),
  memory_mb: z.number().int().min(64).max(65536).optional().describe('guest memory in MiB (default [resources] default_memory_mb, at most max_memory_mb)'),
  disk_gb: z.number().int().min(1).max(1024).optional().describe('disk size in GiB; the guest filesystem grows to fill it (default [resources] default_disk_gb)'),
  allow_internet: z.boolean().optional().describe(
    'let the guest open connections out (internet and the host\'s services via 10.0.2.2). Default [network] '
    + 'default_allow_internet (false): the guest then has an address (10.0.2.15) but can reach nothing; only port forwards reach it'),
  ttl_minutes: z.number().int().min(0).max(525_600).optional().describe(
    'stop the workspace this many minutes after it starts (again after each later start); the disk is kept. '
    + '0 = never; default [resources] default_ttl_minutes (0)'),
});
export type CreateInput = z.infer<typeof CreateInput>;

export const WorkspaceRef = z.object({ workspace_id: WorkspaceId });
export type WorkspaceRef = z.infer<typeof WorkspaceRef>;

export const ListInput = z.object({
  state: z.enum(WORKSPACE_STATES).optional().describe('only workspaces in this state'),
});
export type ListInput = z.infer<typeof ListInput>;

export const ExecInput = z.object({
  workspace_id: WorkspaceId,
  command: z.union([z.string().min(1).max(256 * 1024), z.array(z.string().max(256 * 1024)).min(1).max(4096)])
    .describe('a string runs with /bin/sh -c; an array is an argv (argv[0] looked up in PATH)'),
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string().max(64 * 1024)).optional()
    .describe('environment variables added to the guest default environment'),
  cwd: GuestPath.optional().describe('working directory in the guest (default /root)'),
  stdin: z.string().max(1 << 20).optional().describe('text passed to the command on standard input'),
  timeout_ms: z.number().int().min(1).max(3_600_000).optional()
    .describe('kill the command (and its process group) after this many ms (default 30000)'),
  max_output_bytes: z.number().int().min(1).max(16 << 20).optional()
    .describe('cap per stream (stdout, stderr); the rest is dropped and truncated=true (default 1 MiB)'),
});
export type ExecInput = z.infer<typeof ExecInput>;

export const Encoding = z.enum(['utf8', 'base64']).describe('"utf8" for text, "base64" for binary content');

export const FileWriteInput = z.object({
  workspace_id: WorkspaceId,
  path: GuestPath,
  content: z.string().max(24 << 20).describe('file content, in the given encoding (invalid base64 is refused)'),
  encoding: Encoding.default('utf8'),
  mode: FileMode.optional(),
  create_parents: z.boolean().default(true).describe('create missing parent directories'),
});
export type FileWriteInput = z.input<typeof FileWriteInput>;

export const FileReadInput = z.object({
  workspace_id: WorkspaceId,
  path: GuestPath,
  encoding: Encoding.default('utf8'),
  max_bytes: z.number().int().min(1).max(16 << 20).optional().describe('refuse files larger than this (default 1 MiB)'),
});
export type FileReadInput = z.input<typeof FileReadInput>;

export const FileUploadInput = z.object({
  workspace_id: WorkspaceId,
  host_path: z.string().min(1).max(4096).describe('file on the host, relative to [server] transfer_dir (or absolute inside it)'),
  guest_path: GuestPath,
  mode: FileMode.optional(),
});
export type FileUploadInput = z.infer<typeof FileUploadInput>;

export const FileDownloadInput = z.object({
  workspace_id: WorkspaceId,
  guest_path: GuestPath,
  host_path: z.string().min(1).max(4096).describe('destination on the host, relative to [server] transfer_dir (or absolute inside it); parents are created'),
  overwrite: z.boolean().default(false).describe('replace an existing host file'),
});
export type FileDownloadInput = z.input<typeof FileDownloadInput>;

export const Port = z.number().int().min(1).max(65535);

export const PortForwardInput = z.object({
  workspace_id: WorkspaceId,
  guest_port: Port.describe('TCP port a server listens on inside the guest (it must listen on 0.0.0.0 or the guest address, not 127.0.0.1)'),
  host_port: Port.optional().describe('host port on 127.0.0.1 (default: a free one is assigned)'),
});
export type PortForwardInput = z.infer<typeof PortForwardInput>;

export const PortForwardRemoveInput = z.object({
  workspace_id: WorkspaceId,
  host_port: Port.describe('host port of the forward, as returned by port_forward or workspace_ip'),
});
export type PortForwardRemoveInput = z.infer<typeof PortForwardRemoveInput>;

/** "example.com" (that name only) or "*.example.com" (any name under it). */
export const DOMAIN_PATTERN = /^(\*\.)?(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;
export const DomainPattern = z.string().max(255).regex(DOMAIN_PATTERN, 'a domain name such as "registry.npmjs.org", or "*.example.com" for any name under it');
export const PortList = z.array(Port).max(64).refine((a) => new Set(a).size === a.length, 'ports must not repeat');
export const DomainList = z.array(DomainPattern).max(64);

export const NetworkPolicyInput = z.object({
  workspace_id: WorkspaceId,
  allow_internet: z.boolean().optional()
    .describe('let the guest open connections out (internet and host services); omit to keep it'),
  allow_inter_vm: z.boolean().optional()
    .describe('bridge mode: let this guest and other guests that allow it too connect to each other; omit to keep it'),
  allowed_ports: PortList.optional()
    .describe('bridge mode: guest TCP ports other guests and the host may connect to ([] closes them all); omit to keep them'),
  allowed_domains: DomainList.optional()
    .describe('user and bridge mode, with allow_internet: limit egress to these names ("*.example.com" for any name under it); '
      + 'in user mode the egress proxy refuses other names, in bridge mode the guest resolves only them and connects only to the '
      + 'addresses they resolve to. [] removes the limit; omit to keep it'),
  restart: z.boolean().optional()
    .describe('rarely needed: user and bridge mode apply every change to a running workspace live, processes untouched. Only with '
      + '[network] mode = "none" does an allow_internet change on a running workspace need restart: true (the VM restarts; files and '
      + 'port forwards are kept); without it that change fails with STATE_CONFLICT'),
});
export type NetworkPolicyInput = z.infer<typeof NetworkPolicyInput>;

export const SnapshotName = z.string().min(1).max(64)
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, 'letters, digits, "_", "." and "-" only')
  .refine((n) => !n.toLowerCase().startsWith(SNAPSHOT_ID_PREFIX), `must not start with "${SNAPSHOT_ID_PREFIX}": that prefix is for snapshot ids`)
  .describe(`a name for the snapshot, unique within the workspace (not starting with "${SNAPSHOT_ID_PREFIX}")`);

export const SnapshotRef = z.string().min(1).max(64)
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, 'letters, digits, "_", "." and "-" only')
  .describe('snapshot id (snap-...) or name, as returned by snapshot_create or snapshot_list');

export const SnapshotCreateInput = z.object({
  workspace_id: WorkspaceId,
  name: SnapshotName,
  description: z.string().max(1024).optional().describe('free text shown by snapshot_list'),
  include_memory: z.boolean().optional().describe(
    'also save the running guest\'s memory (processes, page cache), so snapshot_restore and workspace_fork resume '
    + 'processes instead of booting. Needs a running workspace; the guest is paused while its memory is written'),
});
export type SnapshotCreateInput = z.infer<typeof SnapshotCreateInput>;

export const SnapshotRefInput = z.object({ workspace_id: WorkspaceId, snapshot: SnapshotRef });
export type SnapshotRefInput = z.infer<typeof SnapshotRefInput>;

export const ForkInput = z.object({
  workspace_id: WorkspaceId.describe('the source workspace (id or name)'),
  snapshot: SnapshotRef.optional().describe('the source\'s snapshot to fork from; default: a new snapshot of its current disk, taken now'),
  name: WorkspaceName.optional().describe('the fork\'s name (also its hostname); default: its id'),
});
export type ForkInput = z.infer<typeof ForkInput>;

/** How a workspace's VM last came up (service/preroot.ts BootInfo), for tool and route outputs. */
export const BootInfoOut = z.object({
  path: z.enum(['restore', 'cold']).describe('"restore": from saved state (a template or memory snapshot); "cold": the kernel booted'),
  ms: z.number().int().describe('QEMU start to the agent\'s answer'),
  note: z.string().nullable().describe('why a start that could have been a restore booted cold'),
}).describe('how the VM last came up in this islet process');
