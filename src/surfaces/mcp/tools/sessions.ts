// Agent session tools: session_create, session_list, session_get, session_destroy (src/service/sessions.ts).
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { SESSION_STATES, SessionCreateInput, SessionListInput, SessionRef } from '../../../core/session-schemas.js';
import type { Caller } from '../../../service/types.js';
import type { WorkspaceService } from '../../../service/workspaces.js';
import { toToolResult } from '../result.js';
import { workspaceFields } from './workspace.js';

export const sessionFields = {
  sessionId: z.string().describe('the session id (ses-...); also OpenCode\'s password'),
  workspaceId: z.string().nullable().describe('the workspace the session runs in: exec, file_read and the other workspace tools work on it; null once a failed create removed it'),
  state: z.enum(SESSION_STATES).describe('creating: OpenCode is starting (minutes under emulation, seconds with KVM); ready: it answers /global/health; failed: see error; stopped: the workspace no longer runs'),
  url: z.string().nullable().describe('OpenCode\'s base URL on the islet host (a forward of guest port 4096)'),
  password: z.string().describe('OpenCode\'s HTTP basic-auth password, user "opencode": the session id'),
  ssh: workspaceFields.ssh,
  repoUrl: z.string().describe('the repository, any password in it redacted'),
  branch: z.string(),
  imageRef: z.string(),
  error: z.string().nullable().describe('why the session failed or stopped'),
  createdAt: z.string().describe('ISO 8601'),
  readyAt: z.string().nullable().describe('ISO 8601: when OpenCode first answered'),
};
const summary = (o: Record<string, unknown>) => `session ${String(o.sessionId)}: ${String(o.state)}, OpenCode at ${String(o.url)} `
  + `(user opencode, password ${String(o.password)}), workspace ${String(o.workspaceId)}${o.error ? `; error: ${String(o.error)}` : ''}`;

export function register(server: McpServer, svc: WorkspaceService, callerOf: () => Caller): void {
  server.registerTool('session_create', {
    title: 'Create an agent session (OpenCode on a repository)',
    description:
      'Creates a workspace from the agent-ready image (or imageRef), with the repository checked out at the branch in '
      + '/home/agent/workspaces/<sessionId>, owned by the agent user, and runs OpenCode there as the agent user: restored '
      + 'from the image\'s session template when one is built (OpenCode already started, behind a front that checks the '
      + 'password), else started cold as the opencode@<sessionId> service (minutes under emulation). The islet host fetches the repository (git clone --branch --single-branch, with '
      + 'the host\'s own credentials) and streams it in: the workspace needs no internet. A local repoUrl must be a path '
      + 'inside the server\'s transfer directory. Returns at once with state "creating"; call session_get until state is '
      + '"ready", then use url with HTTP basic auth (user "opencode", password). Fails with REPO_CLONE_FAILED for a URL '
      + 'or branch the host cannot fetch, FILE_TOO_LARGE past the transfer limit, or GUEST_ERROR when the image lacks '
      + 'the session contract; a failed create removes its workspace and keeps the session, state "failed", with the reason.',
    inputSchema: SessionCreateInput.shape,
    outputSchema: sessionFields,
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
  }, (args, extra) => toToolResult(() => svc.sessionCreate(callerOf(), args, { signal: extra.signal }), { output: sessionFields, summary }));

  server.registerTool('session_list', {
    title: 'List agent sessions',
    description: 'Lists your agent sessions (optionally only those in one state) with their state, OpenCode URL and password, and workspace.',
    inputSchema: SessionListInput.shape,
    outputSchema: { sessions: z.array(z.object(sessionFields)) },
    annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  }, (args) => toToolResult(async () => ({ sessions: await svc.sessionList(callerOf(), args) }), {
    output: { sessions: z.array(z.object(sessionFields)) },
    summary: (o) => (o.sessions as Array<Record<string, unknown>>).map(summary).join('\n') || 'no sessions',
  }));

  server.registerTool('session_get', {
    title: 'Get an agent session',
    description: 'One agent session with its current state: "ready" once OpenCode answers its health endpoint; "stopped" '
      + 'when its workspace no longer runs. Fails with SESSION_NOT_FOUND for an unknown id.',
    inputSchema: SessionRef.shape,
    outputSchema: sessionFields,
    annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  }, (args) => toToolResult(() => svc.sessionGet(callerOf(), args), { output: sessionFields, summary }));

  server.registerTool('session_destroy', {
    title: 'Delete an agent session',
    description: 'Stops OpenCode, destroys the session\'s workspace (its disk, snapshots and forwards; uncommitted work in '
      + 'the checkout is lost, so push or copy it out first) and forgets the session. Fails with SESSION_NOT_FOUND for an unknown id.',
    inputSchema: SessionRef.shape,
    outputSchema: { sessionId: z.string(), deleted: z.literal(true) },
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
  }, (args, extra) => toToolResult(() => svc.sessionDestroy(callerOf(), args, { signal: extra.signal }), { output: { sessionId: z.string(), deleted: z.literal(true) } }));
}
