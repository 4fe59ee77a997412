// Snapshot tools: snapshot_create, snapshot_list, snapshot_restore,
// snapshot_delete, workspace_fork, and memory state: workspace_pause/resume. The service does the work; this file only
// declares the tools and renders results.
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { BootInfoOut, ForkInput, SnapshotCreateInput, SnapshotRefInput, WorkspaceRef } from '../../../core/schemas.js';
import type { WorkspaceService } from '../../../service/workspaces.js';
import type {
  Caller, SnapshotCreateOutput, SnapshotDeleteOutput, SnapshotListOutput, SnapshotRestoreOutput, WorkspaceInfo,
} from '../../../service/types.js';
import { toToolResult } from '../result.js';
import { snapshotFields, workspaceFields } from './workspace.js';

const createOut = {
  ...snapshotFields,
  live: z.boolean().describe('true: taken while the workspace ran (its filesystem was synced first); false: it was stopped'),
  duration_ms: z.number().int(),
};
const listOut = {
  workspace_id: z.string(),
  current_snapshot_id: z.string().nullable().describe('the snapshot the workspace\'s current disk builds on (null: the base image)'),
  snapshots: z.array(z.object(snapshotFields)).describe('oldest first; parent_id links them into a tree'),
};
const restoreOut = {
  workspace_id: z.string(),
  snapshot_id: z.string(),
  restarted: z.boolean().describe('true: the workspace was running, so its VM was stopped, rolled back and booted again (or resumed, see memory_restored)'),
  memory_restored: z.boolean().describe('true: a memory snapshot: processes resumed as they were at the snapshot, instead of a boot'),
  state: z.string(),
  duration_ms: z.number().int(),
  boot: BootInfoOut.optional(),
};
const pauseOut = { ...workspaceFields, pause_ms: z.number().int() };
const deleteOut = { workspace_id: z.string(), snapshot_id: z.string(), deleted: z.literal(true) };

// Fail to compile when the service returns something the declared output rejects.
const fits = {
  create: (r: SnapshotCreateOutput): z.infer<z.ZodObject<typeof createOut>> => r,
  list: (r: SnapshotListOutput): z.infer<z.ZodObject<typeof listOut>> => r,
  restore: (r: SnapshotRestoreOutput): z.infer<z.ZodObject<typeof restoreOut>> => r,
  del: (r: SnapshotDeleteOutput): z.infer<z.ZodObject<typeof deleteOut>> => r,
  fork: (r: WorkspaceInfo): z.infer<z.ZodObject<typeof workspaceFields>> => r,
  pause: (r: WorkspaceInfo & { pause_ms: number }): z.infer<z.ZodObject<typeof pauseOut>> => r,
};
void fits;

const json = (o: Record<string, unknown>) => JSON.stringify(o);

export function register(server: McpServer, svc: WorkspaceService, callerOf: () => Caller): void {
  server.registerTool('snapshot_create', {
    title: 'Snapshot a workspace\'s disk',
    description:
      'Saves the workspace\'s whole disk as a named checkpoint you can roll back to (snapshot_restore) or fork from '
      + '(workspace_fork). Cheap: copy-on-write, takes milliseconds plus a filesystem flush. Works on running workspaces '
      + '(they keep running; the filesystem is frozen for the switch, so the snapshot is clean, but a file a program is in '
      + 'the middle of writing is caught as far as it got) '
      + 'and stopped ones. Disk only by default; include_memory: true (running workspaces only) also saves the guest\'s memory, '
      + 'so restore and fork resume its processes instead of booting. Fails with INVALID_ARGUMENT if the name is taken.',
    inputSchema: SnapshotCreateInput.shape,
    outputSchema: createOut,
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  }, (args, extra) => toToolResult(() => svc.snapshotCreate(callerOf(), args, { signal: extra.signal }), {
    output: createOut, summary: (o) => `snapshot ${String(o.name)} (${String(o.snapshot_id)}) of ${String(o.workspace_id)}\n${json(o)}`,
  }));

  server.registerTool('snapshot_list', {
    title: 'List a workspace\'s snapshots',
    description:
      'Lists the workspace\'s snapshots, oldest first, with their parent (they form a tree: restoring an older one and '
      + 'snapshotting again starts a branch), creation time and host disk use, plus the snapshot the current disk builds on.',
    inputSchema: WorkspaceRef.shape,
    outputSchema: listOut,
    annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  }, (args) => toToolResult(() => svc.snapshotList(callerOf(), args), { output: listOut }));

  server.registerTool('snapshot_restore', {
    title: 'Roll a workspace back to a snapshot',
    description:
      'Replaces the workspace\'s disk with the snapshot\'s state: every file change since is lost (take a snapshot first '
      + 'to keep it). A running workspace is RESTARTED (restarted: true): its VM is stopped, the disk rolled back, and it '
      + 'boots again, so running processes are killed. A live disk swap under a running kernel would corrupt its cached '
      + 'filesystem state. A memory snapshot (has_memory) instead resumes the processes as they were at the snapshot, '
      + 'whether the workspace was running or not (memory_restored: true). Later snapshots are kept. Fails with '
      + 'SNAPSHOT_NOT_FOUND for an unknown snapshot.',
    inputSchema: SnapshotRefInput.shape,
    outputSchema: restoreOut,
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  }, (args, extra) => toToolResult(() => svc.snapshotRestore(callerOf(), args, { signal: extra.signal }), {
    output: restoreOut,
    summary: (o) => `${String(o.workspace_id)} restored to ${String(o.snapshot_id)}${o.restarted ? ' (VM restarted)' : ''}\n${json(o)}`,
  }));

  server.registerTool('snapshot_delete', {
    title: 'Delete a snapshot',
    description:
      'Deletes a snapshot and frees its disk space. Refused with SNAPSHOT_IN_USE while anything builds on it: a later '
      + 'snapshot, the workspace\'s current disk (the snapshot last restored or taken), or a fork. Delete the newest first.',
    inputSchema: SnapshotRefInput.shape,
    outputSchema: deleteOut,
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
  }, (args, extra) => toToolResult(() => svc.snapshotDelete(callerOf(), args, { signal: extra.signal }), {
    output: deleteOut, summary: (o) => `deleted snapshot ${String(o.snapshot_id)} of ${String(o.workspace_id)}`,
  }));

  server.registerTool('workspace_fork', {
    title: 'Fork a workspace',
    description:
      'Creates a new, independent workspace whose disk starts as a snapshot of the source (a new snapshot of its current '
      + 'disk is taken if none is named; the source keeps running). The fork boots with its own id, hostname (its name), '
      + 'machine-id, private network and agent session; later writes in either are invisible to the other. Same image '
      + 'and resources as the source. The snapshot cannot be deleted, nor the source destroyed, while the fork exists.',
    inputSchema: ForkInput.shape,
    outputSchema: workspaceFields,
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  }, (args, extra) => toToolResult(() => svc.fork(callerOf(), args, { signal: extra.signal }), {
    output: workspaceFields, summary: (o) => `forked ${String(o.workspace_id)} (${String(o.name)}) from ${String(o.current_snapshot_id)}\n${json(o)}`,
  }));

  server.registerTool('workspace_pause', {
    title: 'Pause a workspace to disk',
    description:
      'Saves a running workspace\'s memory (running processes, open files, everything) to a file on the host and ends '
      + 'its VM, freeing its host memory. State becomes "paused". workspace_resume (or workspace_start) brings it back '
      + 'with its processes where they were and the guest clock resynced. workspace_stop on a paused workspace '
      + 'discards the saved memory. Port forwards are re-applied on resume.',
    inputSchema: WorkspaceRef.shape,
    outputSchema: pauseOut,
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  }, (args, extra) => toToolResult(() => svc.pause(callerOf(), args, { signal: extra.signal }), {
    output: pauseOut, summary: (o) => `paused ${String(o.workspace_id)} in ${String(o.pause_ms)} ms`,
  }));

  server.registerTool('workspace_resume', {
    title: 'Resume a paused workspace',
    description:
      'Restores a paused workspace from its saved memory: processes continue where they were, the guest clock is '
      + 'resynced to the host. Fails with STATE_CONFLICT unless the workspace is paused.',
    inputSchema: WorkspaceRef.shape,
    outputSchema: workspaceFields,
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  }, (args, extra) => toToolResult(() => svc.resume(callerOf(), args, { signal: extra.signal }), {
    output: workspaceFields, summary: (o) => `resumed ${String(o.workspace_id)} (${String(o.state)})`,
  }));
}
