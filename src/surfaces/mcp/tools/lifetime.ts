// workspace_set_lifetime: change when a workspace stops or is destroyed by itself (src/service/lifetimes.ts).
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { SetLifetimeInput } from '../../../core/lifetime-schemas.js';
import type { Caller } from '../../../service/types.js';
import type { WorkspaceService } from '../../../service/workspaces.js';
import { toToolResult } from '../result.js';
import { lifetimeFields } from './workspace.js';

const outFields = { workspace_id: z.string(), ...lifetimeFields };

export function register(server: McpServer, svc: WorkspaceService, callerOf: () => Caller): void {
  server.registerTool('workspace_set_lifetime', {
    title: 'Change a workspace\'s lifetime',
    description:
      'Sets when a workspace stops or is destroyed by itself. ttl_minutes: a running workspace stops that many minutes from '
      + 'now (and after each later start or resume). idle_stop_minutes: it stops after that long with no exec, no background '
      + 'process output and no tool call on it (a silent process such as sleep does not count; workspace_info does not either). '
      + 'retention_minutes: a stopped workspace is destroyed, disk and snapshots, that long after it stopped. A stop keeps '
      + 'the disk: workspace_start brings the files back. 0 = never; null = back to the host default; an omitted field is '
      + 'unchanged. Returns the values in force and the resulting expires_at / idle_stop_at / destroy_at.',
    inputSchema: SetLifetimeInput.shape,
    outputSchema: outFields,
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  }, (args) => toToolResult(() => svc.setLifetime(callerOf(), args), {
    output: outFields,
    summary: (o) => `${String(o.workspace_id)}: ttl ${String(o.ttl_minutes)} min (expires ${String(o.expires_at)}), idle stop ${String(o.idle_stop_minutes)} min `
      + `(at ${String(o.idle_stop_at)}), retention ${String(o.retention_minutes)} min\n${JSON.stringify(o)}`,
  }));
}
