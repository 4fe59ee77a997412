// POST /v1/run: `islet run` as one request. The daemon creates a throwaway
// workspace, runs the command with its output streamed as NDJSON (as
// /exec does), and destroys the workspace when the command ends or when the
// client's connection closes, so a client killed mid-command leaves no VM
// (the service does the work: src/service/run-ops.ts).
import { createRoute } from '@hono/zod-openapi';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { z } from 'zod';
import { RunInput } from '../../core/run-schemas.js';
import type { WorkspaceService } from '../../service/workspaces.js';
import type { ErrorJson } from './exec-stream.js';
import { streamExec } from './exec-stream.js';
import type { App, RouteKit } from './route-kit.js';

export function registerRunRoute(app: App, svc: WorkspaceService, h: RouteKit & { errorJson: ErrorJson }): void {
  app.openapi(createRoute({
    method: 'post', path: '/v1/run',
    summary: 'run one command in a throwaway workspace (no network device; a warm pool VM or a template restore when there is one) '
      + 'and destroy it when the command ends or the connection closes. The response streams NDJSON: {"type":"started",'
      + '"workspace_id","name","via":"pool"|"template"|"boot","create_ms"}, then {"type":"stdout"|"stderr","data":<base64>} as '
      + 'output arrives, then {"type":"exit","exit_code","signal","timed_out","truncated","duration_ms"} or {"type":"error",'
      + '"error":{code,message,hint}}; a run refused before it starts (unknown image, invalid input) gets the error\'s status instead',
    request: { body: { content: { 'application/json': { schema: RunInput } } } },
    responses: { 200: { description: 'NDJSON event stream', content: { 'application/x-ndjson': { schema: z.object({}).passthrough() } } }, ...h.errorResponses as Record<400, never> },
  }), async (c) => {
    const input = c.req.valid('json');
    const who = h.caller(c);
    const signal = h.signalOf(c);
    await svc.runCheck(input);
    await streamExec(c.env.outgoing, (onData, emit) => svc.run(who, input, {
      signal, onData, onStarted: (s) => emit({ type: 'started', ...s }),
    }), h.errorJson);
    return RESPONSE_ALREADY_SENT as never;
  });
}
