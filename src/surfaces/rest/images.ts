// Image routes: POST /api/images/pull (Bonfire's shape) and build, verify and
// import under /v1/images. All of them need an admin caller: they read host
// files, write the shared image cache, or boot VMs outside any quota.
// Paths in requests are host paths, confined as `islet image import`'s are
// (absolute, no "..", realpath under the home or data dir, regular files, at
// most [images] import_max_mb).
import { createRoute } from '@hono/zod-openapi';
import { z } from 'zod';
import { IsletError } from '../../core/errors.js';
import { buildImage, pullImage, verifyImage } from '../../service/image-ops.js';
import { importImage } from '../../images/import.js';
import { silent } from '../../core/progress.js';
import type { WorkspaceService } from '../../service/workspaces.js';
import type { App, Ctx, RouteKit } from './route-kit.js';


const ImageName = z.string().regex(/^[a-z0-9][a-z0-9-]{0,39}$/);
const HostPath = z.string().min(1).max(4096).refine((p) => p.startsWith('/') && !p.split('/').includes('..') && !p.includes('\0'),
  'must be an absolute host path without ".." segments');
const Init = z.enum(['fast', 'full']).optional().describe('fast (default): islet\'s agent is injected and runs as PID 1; full: the image\'s own systemd starts its own agent');

export const PullInput = z.object({
  reference: z.string().min(1).max(256).describe('image reference, e.g. "debian-minbase:12"; the image name is its last path segment, lowercased, with other characters as "-"'),
  kernelPath: HostPath.describe('vmlinux on the daemon\'s host'),
  rootfsPath: HostPath.describe('raw ext4 filesystem on the daemon\'s host (copied, never modified)'),
  init: Init,
}).strict();
export const ImportBody = z.object({ name: ImageName, kernelPath: HostPath, rootfsPath: HostPath, init: Init }).strict();
export const VerifyBody = z.object({
  checksFrom: z.array(ImageName).max(8).optional().describe('recipes whose checks run too, e.g. ["agent-ready"]'),
  memoryMb: z.number().int().min(64).max(65536).optional(),
  build: z.boolean().optional().describe('build a recipe image first (default true)'),
}).strict();

export function registerImageRoutes(app: App, svc: WorkspaceService, h: RouteKit): void {
  const Obj = z.object({}).passthrough();
  const admin = (c: Ctx, what: string) => {
    if (!h.caller(c).admin) {
      throw new IsletError('NOT_OWNER', `${what} needs an admin caller: it reads host files, writes the image cache or boots VMs`,
        'use an admin token ([[server.tokens]] admin = true), or x-islet-admin: 1 on the unix socket');
    }
  };
  const NameParam = z.object({ name: ImageName.openapi({ param: { name: 'name', in: 'path' }, example: 'base' }) });
  const body = <S extends z.ZodTypeAny>(schema: S) => ({ body: { content: { 'application/json': { schema } } } });
  const errors = h.errorResponses as Record<400, never>;

  app.openapi(createRoute({
    method: 'post', path: '/api/images/pull', summary: 'import a kernel and an ext4 rootfs from host paths as an image (Bonfire\'s pull)',
    request: body(PullInput), responses: { 201: h.json(Obj, 'the imported image'), ...errors },
  }), async (c) => {
    admin(c, 'pulling an image');
    return h.send(c as never, await pullImage(svc.config, c.req.valid('json')), 201);
  });
  app.openapi(createRoute({
    method: 'post', path: '/v1/images/import', summary: 'import a kernel and an ext4 rootfs from host paths under a name',
    request: body(ImportBody), responses: { 201: h.json(Obj, 'the imported image'), ...errors },
  }), async (c) => {
    admin(c, 'importing an image');
    const b = c.req.valid('json');
    return h.send(c as never, await importImage(svc.config, { name: b.name, kernel: b.kernelPath, rootfs: b.rootfsPath, initMode: b.init }, silent, { absolute: true }), 201);
  });
  app.openapi(createRoute({
    method: 'post', path: '/v1/images/{name}/build', summary: 'build (or reuse) a catalog image; prunes its superseded builds',
    request: { params: NameParam }, responses: { 200: h.json(Obj, 'the build'), ...errors },
  }), async (c) => {
    admin(c, 'building an image');
    const { artifacts: a, pruned } = await buildImage(svc.config, c.req.valid('param').name, { signal: h.signalOf(c) });
    const i = a.image;
    return h.send(c as never, {
      name: i.name, key: i.key, reused: i.reused, usedBytes: i.minBytes, fileBytes: i.sizeBytes, initMode: i.recipe.initMode,
      prunedBytes: pruned?.freedBytes ?? 0,
    }, 200);
  });
  app.openapi(createRoute({
    method: 'post', path: '/v1/images/{name}/verify', summary: 'boot a throwaway VM and run the image\'s checks (generic ones for an import)',
    request: { params: NameParam, ...body(VerifyBody) }, responses: { 200: h.json(Obj, 'the report; ok false if a check failed'), ...errors },
  }), async (c) => {
    admin(c, 'verifying an image');
    const b = c.req.valid('json');
    return h.send(c as never, await verifyImage(svc.config, svc.rt, c.req.valid('param').name,
      { checksFrom: b.checksFrom, memoryMb: b.memoryMb, build: b.build, signal: h.signalOf(c) }), 200);
  });
}
