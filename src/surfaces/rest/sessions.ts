// Agent sessions in Bonfire's shapes (camelCase, under /api/agent): create
// one from a repository and a branch, list, get and delete them. Over TCP the
// bearer token is checked before routing, as for /v1; the token's owner owns
// the session. The service does the work (src/service/sessions.ts).
import { createRoute } from '@hono/zod-openapi';
import { z } from 'zod';
import { SESSION_STATES, SessionCreateInput, SessionId, SessionListInput } from '../../core/session-schemas.js';
import type { WorkspaceService } from '../../service/workspaces.js';
import type { App, RouteKit } from './route-kit.js';


export const SessionOut = z.object({
  sessionId: z.string().describe('the session id; also OpenCode\'s password'),
  workspaceId: z.string().nullable().describe('the workspace the session runs in (null once a failed create removed it)'),
  state: z.enum(SESSION_STATES).describe('creating: OpenCode is starting; ready: it answers /global/health; failed: see error; stopped: its workspace no longer runs'),
  url: z.string().nullable().describe('OpenCode\'s base URL on the daemon\'s host (a forward of guest port 4096)'),
  password: z.string().describe('OpenCode\'s HTTP basic-auth password (user "opencode")'),
  ssh: z.object({}).passthrough().nullable().describe('how to log in as agent over SSH (forward guest port 22 first), when the image runs sshd'),
  repoUrl: z.string().describe('the repository, any password in it redacted'),
  branch: z.string(),
  imageRef: z.string(),
  error: z.string().nullable(),
  createdAt: z.string(),
  readyAt: z.string().nullable(),
}).openapi('AgentSession');

export function registerSessionRoutes(app: App, svc: WorkspaceService, h: RouteKit): void {
  const errors = h.errorResponses as Record<400, never>;
  const IdParam = z.object({ id: SessionId.openapi({ param: { name: 'id', in: 'path' }, example: 'ses-0123456789abcdefghij' }) });

  app.openapi(createRoute({
    method: 'post', path: '/api/agent/sessions',
    summary: 'create an agent session: a workspace (agent-ready) with the repository at the branch and OpenCode starting; poll GET until state is ready',
    request: { body: { content: { 'application/json': { schema: SessionCreateInput } } } },
    responses: { 201: h.json(SessionOut, 'the new session (state creating)'), ...errors },
  }), async (c) => h.send(c as never, await svc.sessionCreate(h.caller(c), c.req.valid('json'), { signal: h.signalOf(c) }), 201));
  app.openapi(createRoute({
    method: 'get', path: '/api/agent/sessions', summary: 'the caller\'s agent sessions',
    request: { query: SessionListInput },
    responses: { 200: h.json(z.object({ sessions: z.array(SessionOut) }), 'sessions'), ...errors },
  }), async (c) => h.send(c as never, { sessions: await svc.sessionList(h.caller(c), c.req.valid('query')) }, 200));
  app.openapi(createRoute({
    method: 'get', path: '/api/agent/sessions/{id}', summary: 'one agent session, with its current state',
    request: { params: IdParam }, responses: { 200: h.json(SessionOut, 'the session'), ...errors },
  }), async (c) => h.send(c as never, await svc.sessionGet(h.caller(c), { sessionId: c.req.valid('param').id }), 200));
  app.openapi(createRoute({
    method: 'delete', path: '/api/agent/sessions/{id}', summary: 'stop OpenCode, destroy the session\'s workspace, forget the session',
    request: { params: IdParam }, responses: { 200: h.json(z.object({ sessionId: z.string(), deleted: z.literal(true) }), 'deleted'), ...errors },
  }), async (c) => h.send(c as never, await svc.sessionDestroy(h.caller(c), { sessionId: c.req.valid('param').id }, { signal: h.signalOf(c) }), 200));
}
