// The REST API under /v1: one route per service operation, validated by the
// operation's zod schema (the same one MCP and the CLI use), and the OpenAPI
// 3.1 document generated from those routes at /v1/openapi.json.
import { OpenAPIHono, createRoute } from '@hono/zod-openapi';
import type { HttpBindings } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { z } from 'zod';
import { FileTooLargeError, InvalidArgumentError, IsletError, toIsletError } from '../../core/errors.js';
import {
  CreateInput, ExecInput, FileDownloadInput, FileUploadInput, ForkInput, GuestPath, ListInput, NetworkPolicyInput, Port, PortForwardInput, SnapshotCreateInput, SnapshotRef,
} from '../../core/schemas.js';
import { ProcessKillInput, ProcessStartInput, ProcessWaitInput } from '../../core/process-schemas.js';
import { SetLifetimeInput } from '../../core/lifetime-schemas.js';
import type { Caller } from '../../service/types.js';
import type { WorkspaceService } from '../../service/workspaces.js';
import { WorkspaceInfoOut } from '../mcp/tools/workspace.js';
import { registerImageRoutes } from './images.js';
import { registerSessionRoutes } from './sessions.js';
import { registerRunRoute } from './run.js';
import { statusFor } from './status.js';
import { streamExec } from './exec-stream.js';
import { streamFile } from './file-stream.js';

export const API_VERSION = '1';


/** Who sent a request: set by the listener (unix socket: the peer's claim; TCP: its bearer token) before routing. */
export const callerOf = new WeakMap<object, Caller>();

type Env = { Bindings: HttpBindings };

const ErrorBody = z.object({
  code: z.string().describe('stable error code, e.g. WORKSPACE_NOT_FOUND'),
  message: z.string(),
  hint: z.string().optional().describe('what to do next'),
  retryable: z.boolean(),
  details: z.record(z.unknown()).optional(),
}).openapi('Error');
const errorResponses = {
  400: { description: 'invalid input (INVALID_ARGUMENT)', content: { 'application/json': { schema: ErrorBody } } },
  401: { description: 'missing or wrong bearer token', content: { 'application/json': { schema: ErrorBody } } },
  404: { description: 'no such workspace, snapshot or file', content: { 'application/json': { schema: ErrorBody } } },
  409: { description: 'the workspace is in a state that does not allow this', content: { 'application/json': { schema: ErrorBody } } },
  500: { description: 'host or guest failure', content: { 'application/json': { schema: ErrorBody } } },
};
const json = <S extends z.ZodTypeAny>(schema: S, description: string) => ({ description, content: { 'application/json': { schema } } });

const Info = WorkspaceInfoOut.passthrough().openapi('Workspace');
const Id = z.object({ id: z.string().min(1).max(64).openapi({ param: { name: 'id', in: 'path' }, example: 'ws-1a2b3c4d' }) });
const IdSnap = Id.extend({ snapshot: SnapshotRef.openapi({ param: { name: 'snapshot', in: 'path' } }) });
const IdPort = Id.extend({ host_port: z.coerce.number().int().min(1).max(65535).openapi({ param: { name: 'host_port', in: 'path' } }) });
const Obj = z.object({}).passthrough();
const FileQuery = z.object({
  path: GuestPath.openapi({ param: { name: 'path', in: 'query' } }),
  mode: z.string().regex(/^[0-7]{3,4}$/).optional().openapi({ param: { name: 'mode', in: 'query' }, description: 'octal permission bits, e.g. 0644' }),
});
const ExecBody = ExecInput.omit({ workspace_id: true });

/** Maps a failed request to {code, message, hint} with the code's status. */
function errorJson(e: unknown): { status: number; body: Record<string, unknown> } {
  const err = toIsletError(e);
  if (err.code === 'INTERNAL') process.stderr.write(`islet daemon: internal error: ${e instanceof Error ? e.stack : String(e)}\n`);
  return { status: statusFor(err.code), body: err.toJSON() as unknown as Record<string, unknown> };
}

export function createRestApp(svc: WorkspaceService, o: { nodeInfo: () => Promise<Record<string, unknown>>; maxBodyBytes: number }) {
  const app = new OpenAPIHono<Env>({
    // A request that fails its schema is the caller's mistake, reported like every other error.
    defaultHook: (r, c) => {
      if (r.success) return;
      const msg = r.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ');
      const { status, body } = errorJson(new InvalidArgumentError(msg, 'see /v1/openapi.json for the request shape', { issues: r.error.issues }));
      return c.json(body, status as 400);
    },
  });
  app.onError((e, c) => {
    const { status, body } = errorJson(e);
    return c.json(body, status as 500);
  });
  app.notFound((c) => c.json({ code: 'NOT_FOUND', message: `no route ${c.req.method} ${c.req.path}`, hint: 'see /v1/openapi.json', retryable: false }, 404));

  const caller = (c: { env: HttpBindings }): Caller => {
    const who = callerOf.get(c.env.incoming);
    if (!who) throw new IsletError('INTERNAL', 'request without a caller');
    return who;
  };
  const signalOf = (c: { env: HttpBindings }): AbortSignal => {
    const ac = new AbortController();
    // The response's close, not the request's: a request emits close as soon as its body has been read,
    // which for a streamed upload is before the guest has the last byte.
    c.env.outgoing.once('close', () => { if (!c.env.outgoing.writableFinished) ac.abort(new Error('client went away')); });
    return ac.signal;
  };

  // Route bodies are checked by the service's own types; the per-route response typing of @hono/zod-openapi adds nothing here.
  const send = (c: { json: (b: never, s: never) => Response }, body: unknown, status: number) => c.json(body as never, status as never) as never;

  app.openapi(createRoute({ method: 'get', path: '/healthz', summary: 'liveness', responses: { 200: json(Obj, 'the daemon answers') } }),
    async (c) => send(c, { ok: true, ...(await o.nodeInfo()) }, 200));
  app.openapi(createRoute({ method: 'get', path: '/v1/node', summary: 'this host, for a scheduler: capacity, use, versions', responses: { 200: json(Obj, 'node facts') } }),
    async (c) => send(c, await o.nodeInfo(), 200));

  app.openapi(createRoute({ method: 'get', path: '/v1/status', summary: 'every workspace (all owners) and the warm pool, as `islet status` shows them', responses: { 200: json(Obj, 'status'), ...errorResponses } }),
    async (c) => {
      if (!caller(c).admin) throw new IsletError('NOT_OWNER', 'the host status lists every owner\'s workspaces: it needs an admin caller', 'use an admin token ([[server.tokens]] admin = true), or x-islet-admin: 1 on the unix socket');
      return send(c, svc.status(), 200);
    });
  app.openapi(createRoute({ method: 'get', path: '/v1/images', summary: 'the image catalog: recipes, built images, sizes', responses: { 200: json(Obj, 'images'), ...errorResponses } }),
    async (c) => send(c, { images: await svc.images() }, 200));
  registerImageRoutes(app, svc, { caller, signalOf, send, json, errorResponses });
  registerSessionRoutes(app, svc, { caller, signalOf, send, json, errorResponses });
  registerRunRoute(app, svc, { caller, signalOf, send, json, errorResponses, errorJson });

  // --- workspaces ---
  app.openapi(createRoute({
    method: 'post', path: '/v1/workspaces', summary: 'create and boot a workspace; returns once it answers',
    request: { body: { content: { 'application/json': { schema: CreateInput } } } },
    responses: { 201: json(Info, 'the new workspace'), ...errorResponses },
  }), async (c) => send(c, await svc.create(caller(c), c.req.valid('json'), { signal: signalOf(c) }), 201));
  app.openapi(createRoute({
    method: 'get', path: '/v1/workspaces', summary: 'the caller\'s workspaces',
    request: { query: ListInput.extend({ all: z.enum(['true', 'false']).optional() }) },
    responses: { 200: json(z.object({ workspaces: z.array(Info) }), 'workspaces'), ...errorResponses },
  }), async (c) => {
    const q = c.req.valid('query');
    return send(c, { workspaces: await svc.list(caller(c), { state: q.state }) }, 200);
  });
  app.openapi(createRoute({
    method: 'get', path: '/v1/workspaces/{id}', summary: 'one workspace (id or name)', request: { params: Id },
    responses: { 200: json(Info, 'the workspace'), ...errorResponses },
  }), async (c) => send(c, await svc.info(caller(c), { workspace_id: c.req.valid('param').id }), 200));
  app.openapi(createRoute({
    method: 'delete', path: '/v1/workspaces/{id}', summary: 'stop the VM and delete its disk and snapshots', request: { params: Id },
    responses: { 200: json(z.object({ workspace_id: z.string(), destroyed: z.literal(true) }), 'destroyed'), ...errorResponses },
  }), async (c) => send(c, await svc.destroy(caller(c), { workspace_id: c.req.valid('param').id }), 200));
  for (const op of ['start', 'stop', 'pause', 'resume'] as const) {
    app.openapi(createRoute({
      method: 'post', path: `/v1/workspaces/{id}/${op}`, summary: `${op} a workspace`, request: { params: Id },
      responses: { 200: json(Info, 'the workspace afterwards'), ...errorResponses },
    }), async (c) => send(c, await svc[op](caller(c), { workspace_id: c.req.valid('param').id }, { signal: signalOf(c) }), 200));
  }

  // --- exec: NDJSON, one event per line, the result last ---
  app.openapi(createRoute({
    method: 'post', path: '/v1/workspaces/{id}/exec',
    summary: 'run a command; the response streams NDJSON events: {"type":"stdout"|"stderr","data":<base64>} as output '
      + 'arrives, then {"type":"exit",...} or {"type":"error","error":{code,message,hint}}; a command refused before it starts '
      + '(unknown workspace, one not running) gets the error\'s status and {code,message,hint} instead',
    request: { params: Id, body: { content: { 'application/json': { schema: ExecBody } } } },
    responses: { 200: { description: 'NDJSON event stream', content: { 'application/x-ndjson': { schema: Obj } } }, ...errorResponses },
  }), async (c) => {
    const input = { ...c.req.valid('json'), workspace_id: c.req.valid('param').id };
    const who = caller(c);
    const signal = signalOf(c);
    await streamExec(c.env.outgoing, (onData) => svc.exec(who, input, { signal, onData }), errorJson);
    return RESPONSE_ALREADY_SENT as never;
  });

  // --- files: raw bytes both ways, streamed (memory stays a window whatever the size) ---
  app.openapi(createRoute({
    method: 'put', path: '/v1/workspaces/{id}/files',
    summary: 'write a guest file from the raw request body, streamed (parents created; the file appears only when the whole body arrived; '
      + 'at most [server] max_transfer_bytes)',
    request: { params: Id, query: FileQuery, body: { content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } } } },
    responses: { 200: json(z.object({ path: z.string(), bytes: z.number().int() }), 'written'), 413: { description: 'body over [server] max_transfer_bytes (FILE_TOO_LARGE)', content: { 'application/json': { schema: ErrorBody } } }, ...errorResponses },
  }), async (c) => {
    const q = c.req.valid('query');
    const max = o.maxBodyBytes;
    if (Number(c.env.incoming.headers['content-length'] ?? 0) > max) throw tooLarge(max);
    const mode = q.mode === undefined ? undefined : Number.parseInt(q.mode, 8);
    return send(c, await svc.writeStream(caller(c), { workspace_id: c.req.valid('param').id, path: q.path, mode }, c.env.incoming as AsyncIterable<Buffer>, { signal: signalOf(c) }), 200);
  });
  app.openapi(createRoute({
    method: 'get', path: '/v1/workspaces/{id}/files',
    summary: 'read a guest file as raw bytes, streamed (Content-Length is the size when the read began; a file that changes size meanwhile ends the body early)',
    request: { params: Id, query: FileQuery.pick({ path: true }) },
    responses: { 200: { description: 'the file', content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } } }, ...errorResponses },
  }), async (c) => {
    const f = await svc.readStream(caller(c), { workspace_id: c.req.valid('param').id, path: c.req.valid('query').path }, { signal: signalOf(c) });
    await streamFile(c.env.outgoing, f);
    return RESPONSE_ALREADY_SENT as never;
  });

  app.openapi(createRoute({
    method: 'post', path: '/v1/workspaces/{id}/files/upload', summary: 'copy a file of the daemon host (inside [server] transfer_dir) into the guest',
    request: { params: Id, body: { content: { 'application/json': { schema: FileUploadInput.omit({ workspace_id: true }) } } } },
    responses: { 200: json(Obj, 'copied'), ...errorResponses },
  }), async (c) => send(c, await svc.fileUpload(caller(c), { ...c.req.valid('json'), workspace_id: c.req.valid('param').id }, { signal: signalOf(c) }), 200));
  app.openapi(createRoute({
    method: 'post', path: '/v1/workspaces/{id}/files/download', summary: 'copy a guest file to the daemon host (inside [server] transfer_dir)',
    request: { params: Id, body: { content: { 'application/json': { schema: FileDownloadInput.omit({ workspace_id: true }) } } } },
    responses: { 200: json(Obj, 'copied'), ...errorResponses },
  }), async (c) => send(c, await svc.fileDownload(caller(c), { ...c.req.valid('json'), workspace_id: c.req.valid('param').id }, { signal: signalOf(c) }), 200));

  // --- snapshots and forks ---
  app.openapi(createRoute({
    method: 'post', path: '/v1/workspaces/{id}/snapshots', summary: 'checkpoint the disk (and memory with include_memory)',
    request: { params: Id, body: { content: { 'application/json': { schema: SnapshotCreateInput.omit({ workspace_id: true }) } } } },
    responses: { 201: json(Obj, 'the snapshot'), ...errorResponses },
  }), async (c) => send(c, await svc.snapshotCreate(caller(c), { ...c.req.valid('json'), workspace_id: c.req.valid('param').id }, { signal: signalOf(c) }), 201));
  app.openapi(createRoute({
    method: 'get', path: '/v1/workspaces/{id}/snapshots', summary: 'the snapshot tree', request: { params: Id },
    responses: { 200: json(Obj, 'snapshots'), ...errorResponses },
  }), async (c) => send(c, await svc.snapshotList(caller(c), { workspace_id: c.req.valid('param').id }), 200));
  app.openapi(createRoute({
    method: 'post', path: '/v1/workspaces/{id}/snapshots/{snapshot}/restore', summary: 'roll the workspace back to a snapshot', request: { params: IdSnap },
    responses: { 200: json(Obj, 'restored'), ...errorResponses },
  }), async (c) => {
    const p = c.req.valid('param');
    return send(c, await svc.snapshotRestore(caller(c), { workspace_id: p.id, snapshot: p.snapshot }, { signal: signalOf(c) }), 200);
  });
  app.openapi(createRoute({
    method: 'delete', path: '/v1/workspaces/{id}/snapshots/{snapshot}', summary: 'delete a snapshot nothing builds on', request: { params: IdSnap },
    responses: { 200: json(Obj, 'deleted'), ...errorResponses },
  }), async (c) => {
    const p = c.req.valid('param');
    return send(c, await svc.snapshotDelete(caller(c), { workspace_id: p.id, snapshot: p.snapshot }, { signal: signalOf(c) }), 200);
  });
  app.openapi(createRoute({
    method: 'post', path: '/v1/workspaces/{id}/fork', summary: 'a new workspace from a snapshot (taken now if omitted)',
    request: { params: Id, body: { content: { 'application/json': { schema: ForkInput.omit({ workspace_id: true }) } } } },
    responses: { 201: json(Info, 'the fork'), ...errorResponses },
  }), async (c) => send(c, await svc.fork(caller(c), { ...c.req.valid('json'), workspace_id: c.req.valid('param').id }, { signal: signalOf(c) }), 201));

  // --- network ---
  app.openapi(createRoute({
    method: 'post', path: '/v1/workspaces/{id}/forwards', summary: 'forward a host port on 127.0.0.1 to a guest port',
    request: { params: Id, body: { content: { 'application/json': { schema: PortForwardInput.omit({ workspace_id: true }) } } } },
    responses: { 201: json(Obj, 'the forward'), ...errorResponses },
  }), async (c) => send(c, await svc.portForward(caller(c), { ...c.req.valid('json'), workspace_id: c.req.valid('param').id }, { signal: signalOf(c) }), 201));
  app.openapi(createRoute({
    method: 'delete', path: '/v1/workspaces/{id}/forwards/{host_port}', summary: 'remove a port forward', request: { params: IdPort },
    responses: { 200: json(Obj, 'removed'), ...errorResponses },
  }), async (c) => {
    const p = c.req.valid('param');
    return send(c, await svc.portForwardRemove(caller(c), { workspace_id: p.id, host_port: Port.parse(p.host_port) }, { signal: signalOf(c) }), 200);
  });
  app.openapi(createRoute({
    method: 'get', path: '/v1/workspaces/{id}/ip', summary: 'the guest address and forwards', request: { params: Id },
    responses: { 200: json(Obj, 'addresses'), ...errorResponses },
  }), async (c) => send(c, await svc.workspaceIp(caller(c), { workspace_id: c.req.valid('param').id }), 200));
  app.openapi(createRoute({
    method: 'put', path: '/v1/workspaces/{id}/policy', summary: 'change the network policy (fields omitted are kept)',
    request: { params: Id, body: { content: { 'application/json': { schema: NetworkPolicyInput.omit({ workspace_id: true }) } } } },
    responses: { 200: json(Obj, 'the policy now'), ...errorResponses },
  }), async (c) => send(c, await svc.networkPolicy(caller(c), { ...c.req.valid('json'), workspace_id: c.req.valid('param').id }, { signal: signalOf(c) }), 200));

  app.openapi(createRoute({
    method: 'put', path: '/v1/workspaces/{id}/lifetime',
    summary: 'change the TTL, idle stop or retention (minutes; 0 = never, null = the host default, omitted = unchanged)',
    request: { params: Id, body: { content: { 'application/json': { schema: SetLifetimeInput.omit({ workspace_id: true }) } } } },
    responses: { 200: json(Obj, 'the lifetime now: values and expires_at / idle_stop_at / destroy_at'), ...errorResponses },
  }), async (c) => send(c, await svc.setLifetime(caller(c), { ...c.req.valid('json'), workspace_id: c.req.valid('param').id }), 200));

  // --- background processes (owned by the guest agent; they outlive this daemon) ---
  const IdProc = Id.extend({ pid: z.coerce.number().int().min(1).max(2 ** 31).openapi({ param: { name: 'pid', in: 'path' } }) });
  const proc = (c: { req: { valid: (k: 'param') => { id: string; pid: number } } }) => {
    const p = c.req.valid('param');
    return { workspace_id: p.id, process_id: p.pid };
  };
  app.openapi(createRoute({
    method: 'post', path: '/v1/workspaces/{id}/processes', summary: 'start a background process (optionally on a terminal: pty {cols, rows})',
    request: { params: Id, body: { content: { 'application/json': { schema: ProcessStartInput.omit({ workspace_id: true }).extend({ pty: z.object({ cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000) }).optional() }) } } } },
    responses: { 201: json(Obj, 'the process'), ...errorResponses },
  }), async (c) => send(c, await svc.processStart(caller(c), { ...c.req.valid('json'), workspace_id: c.req.valid('param').id }, { signal: signalOf(c) }), 201));
  app.openapi(createRoute({
    method: 'get', path: '/v1/workspaces/{id}/processes', summary: 'background processes, running and exited', request: { params: Id },
    responses: { 200: json(Obj, 'processes'), ...errorResponses },
  }), async (c) => send(c, await svc.processList(caller(c), { workspace_id: c.req.valid('param').id }, { signal: signalOf(c) }), 200));
  app.openapi(createRoute({
    method: 'get', path: '/v1/workspaces/{id}/processes/{pid}/output',
    summary: 'output from a byte offset, as {parts: [{stream, data (base64)}], next_offset, dropped_bytes, process}; wait_ms long-polls',
    request: { params: IdProc, query: z.object({ offset: z.coerce.number().int().min(0).optional(), max_bytes: z.coerce.number().int().min(1).max(4 << 20).optional(), wait_ms: z.coerce.number().int().min(0).max(600_000).optional() }) },
    responses: { 200: json(Obj, 'output'), ...errorResponses },
  }), async (c) => {
    const r = await svc.processOutputRaw(caller(c), { ...proc(c), ...c.req.valid('query') }, { signal: signalOf(c) });
    return send(c, { parts: r.parts.map((p) => ({ stream: p.stream, data: p.data.toString('base64') })), next_offset: r.next, dropped_bytes: r.dropped, process: r.proc }, 200);
  });
  app.openapi(createRoute({
    method: 'post', path: '/v1/workspaces/{id}/processes/{pid}/stdin', summary: 'write the raw body to the process\'s stdin (?close=true closes it after)',
    request: { params: IdProc, query: z.object({ close: z.enum(['true', 'false']).optional() }), body: { content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } } } },
    responses: { 200: json(Obj, 'written'), ...errorResponses },
  }), async (c) => {
    const data = await readBody(c.env.incoming, 1 << 20);
    if (c.req.valid('query').close === 'true') {
      return send(c, await svc.processWrite(caller(c), { ...proc(c), input: data.toString('base64'), encoding: 'base64', close: true }, { signal: signalOf(c) }), 200);
    }
    return send(c, { bytes: await svc.processWriteRaw(caller(c), proc(c), data, { signal: signalOf(c) }) }, 200);
  });
  app.openapi(createRoute({
    method: 'post', path: '/v1/workspaces/{id}/processes/{pid}/signal', summary: 'signal the process group (default TERM)',
    request: { params: IdProc, body: { content: { 'application/json': { schema: ProcessKillInput.pick({ signal: true }) } } } },
    responses: { 200: json(Obj, 'the process'), ...errorResponses },
  }), async (c) => send(c, await svc.processKill(caller(c), { ...proc(c), ...c.req.valid('json') }, { signal: signalOf(c) }), 200));
  app.openapi(createRoute({
    method: 'post', path: '/v1/workspaces/{id}/processes/{pid}/wait', summary: 'wait up to timeout_ms for the exit',
    request: { params: IdProc, body: { content: { 'application/json': { schema: ProcessWaitInput.pick({ timeout_ms: true }) } } } },
    responses: { 200: json(Obj, 'the process'), ...errorResponses },
  }), async (c) => send(c, await svc.processWait(caller(c), { ...proc(c), ...c.req.valid('json') }, { signal: signalOf(c) }), 200));
  app.openapi(createRoute({
    method: 'post', path: '/v1/workspaces/{id}/processes/{pid}/resize', summary: 'resize a process\'s terminal',
    request: { params: IdProc, body: { content: { 'application/json': { schema: z.object({ cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000) }) } } } },
    responses: { 200: json(Obj, 'resized'), ...errorResponses },
  }), async (c) => {
    await svc.processResize(caller(c), { ...proc(c), ...c.req.valid('json') }, { signal: signalOf(c) });
    return send(c, { resized: true }, 200);
  });

  app.doc31('/v1/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'islet', version: API_VERSION,
      description: 'microVM workspaces for AI agents: REST API of the islet daemon. Terminals: GET /v1/workspaces/{id}/processes/{pid}/pty '
        + 'upgrades to a WebSocket (binary frames: keystrokes in, output out; text frames: {"type":"resize","cols","rows"} and '
        + '{"type":"signal","signal"} in, {"type":"ready"|"exit"|"error",...} out); see docs/daemon.md, "Terminals"',
    },
  });
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer' });
  return app;
}

const tooLarge = (max: number) => new FileTooLargeError(`request body over ${max} bytes`, 'raise [server] max_transfer_bytes', { max });

/** Reads a request body up to max bytes, refusing (413) as soon as it passes the bound. */
async function readBody(req: AsyncIterable<unknown> & { headers: Record<string, unknown> }, max: number): Promise<Buffer> {
  if (Number(req.headers['content-length'] ?? 0) > max) throw tooLarge(max);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > max) throw tooLarge(max);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks, size);
}
