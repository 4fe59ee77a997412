// The image routes over the real Hono app (no listener, no VM): admin only,
// host paths validated by the schema and by import's confinement, the coded
// error's status. POST /api/images/pull registers a real (tiny) import.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { resolveConfig } from '../../src/core/config.js';
import { EXT4_MAGIC_OFFSET } from '../../src/images/import.js';
import type { WorkspaceService } from '../../src/service/workspaces.js';
import { callerOf, createRestApp } from '../../src/surfaces/rest/app.js';
import { elfKernel } from '../fixtures/elf-kernel.js';

test('POST /api/images/pull: 403 without admin, 400 for relative or ".." paths, 404 for a missing file, 201 with the import', async (t) => {
  const d = await mkdtemp(path.join(os.tmpdir(), 'islet-rest-images-'));
  t.after(() => rm(d, { recursive: true, force: true }));
  const config = resolveConfig({ storage: { data_dir: d, cache_dir: path.join(d, 'cache') } });
  const app = createRestApp({ config } as WorkspaceService, { nodeInfo: async () => ({}), maxBodyBytes: 1 << 20 });
  const kernelPath = path.join(d, 'vmlinux');
  const rootfsPath = path.join(d, 'root.ext4');
  await writeFile(kernelPath, elfKernel(false));
  const ext4 = Buffer.alloc(4096);
  ext4.writeUInt16LE(0xef53, EXT4_MAGIC_OFFSET);
  await writeFile(rootfsPath, ext4);
  const call = async (admin: boolean, body: unknown) => {
    const incoming = { once() {} };
    callerOf.set(incoming, { owner: 'bonfire', admin });
    const res = await app.request('/api/images/pull', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) },
      { incoming, outgoing: { writableFinished: true } });
    return { status: res.status, body: await res.json() as Record<string, unknown> };
  };
  const ok = { reference: 'team/minbase:1', kernelPath, rootfsPath };
  assert.equal((await call(false, ok)).status, 403);
  const rel = await call(true, { ...ok, kernelPath: 'vmlinux' });
  assert.equal(rel.status, 400);
  assert.equal(rel.body.code, 'INVALID_ARGUMENT');
  assert.equal((await call(true, { ...ok, rootfsPath: `${d}/x/../root.ext4` })).status, 400);
  assert.equal((await call(true, { ...ok, extra: 1 })).status, 400, 'unknown fields are refused');
  const missing = await call(true, { ...ok, rootfsPath: path.join(d, 'nope.ext4') });
  assert.equal(missing.status, 404);
  assert.equal(missing.body.code, 'FILE_NOT_FOUND');
  assert.equal((await call(true, { ...ok, rootfsPath: '/etc/passwd' })).body.code, 'PATH_OUTSIDE_ALLOWED');
  const r = await call(true, ok);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.equal(r.body.name, 'minbase-1');
  assert.equal(r.body.kernelUse, 'islet', 'no PVH note: islet\'s kernel');
  assert.equal(r.body.injectAgent, true);
  assert.ok((r.body.warnings as string[]).some((w) => /KERNEL_NOT_PVH/.test(w)));
});
