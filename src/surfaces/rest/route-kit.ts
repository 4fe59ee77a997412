// What app.ts lends the route files it registers (images.ts, sessions.ts):
// the caller and abort signal of a request, the typed reply, and the shared
// response shapes, so every route file answers and fails the same way.
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { HttpBindings } from '@hono/node-server';
import type { z } from 'zod';
import type { Caller } from '../../service/types.js';

export type App = OpenAPIHono<{ Bindings: HttpBindings }>;
export type Ctx = { env: HttpBindings };

export interface RouteKit {
  caller: (c: Ctx) => Caller;
  signalOf: (c: Ctx) => AbortSignal;
  send: (c: never, body: unknown, status: number) => never;
  json: <S extends z.ZodTypeAny>(schema: S, description: string) => { description: string; content: { 'application/json': { schema: S } } };
  errorResponses: Record<number, unknown>;
}
