// The REST API's OpenAPI document: valid OpenAPI 3.1 (checked by a validator
// package), and good enough for codegen: openapi-typescript turns it into
// types, and a small openapi-fetch client written against them type-checks.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import openapiTS, { astToString } from 'openapi-typescript';
import { createRestApp } from '../../src/surfaces/rest/app.js';
import type { WorkspaceService } from '../../src/service/workspaces.js';

// Generating the document never calls the service.
const app = createRestApp({} as WorkspaceService, { nodeInfo: async () => ({}), maxBodyBytes: 1 << 20 });
const doc = async () => (await (await app.request('/v1/openapi.json')).json()) as Record<string, unknown> & { paths: Record<string, Record<string, unknown>> };

test('the document is valid OpenAPI 3.1 and covers every service operation', async () => {
  const d = await doc();
  assert.equal(d.openapi, '3.1.0');
  const v = await new Validator().validate(d);
  assert.equal(v.valid, true, JSON.stringify(v.errors, null, 2));
  const ops = Object.entries(d.paths).flatMap(([p, m]) => Object.keys(m).map((k) => `${k.toUpperCase()} ${p}`));
  for (const want of [
    'POST /v1/workspaces', 'GET /v1/workspaces', 'GET /v1/workspaces/{id}', 'DELETE /v1/workspaces/{id}',
    'POST /v1/workspaces/{id}/start', 'POST /v1/workspaces/{id}/stop', 'POST /v1/workspaces/{id}/pause', 'POST /v1/workspaces/{id}/resume',
    'POST /v1/workspaces/{id}/exec', 'PUT /v1/workspaces/{id}/files', 'GET /v1/workspaces/{id}/files',
    'POST /v1/workspaces/{id}/snapshots', 'GET /v1/workspaces/{id}/snapshots', 'POST /v1/workspaces/{id}/snapshots/{snapshot}/restore',
    'DELETE /v1/workspaces/{id}/snapshots/{snapshot}', 'POST /v1/workspaces/{id}/fork', 'POST /v1/workspaces/{id}/forwards',
    'DELETE /v1/workspaces/{id}/forwards/{host_port}', 'GET /v1/workspaces/{id}/ip', 'PUT /v1/workspaces/{id}/policy', 'PUT /v1/workspaces/{id}/lifetime', 'GET /v1/node', 'GET /healthz', 'GET /v1/images', 'GET /v1/status',
    'POST /api/images/pull', 'POST /v1/images/import',
    'POST /api/agent/sessions', 'GET /api/agent/sessions', 'GET /api/agent/sessions/{id}', 'DELETE /api/agent/sessions/{id}', 'POST /v1/images/{name}/build', 'POST /v1/images/{name}/verify',
    'POST /v1/run',
  ]) assert.ok(ops.includes(want), `missing ${want}; have ${ops.join(', ')}`);
});

test('a client generated from the document type-checks (openapi-typescript + openapi-fetch)', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'islet-openapi-'));
  try {
    writeFileSync(path.join(dir, 'api.d.ts'), astToString(await openapiTS(await doc() as never)));
    writeFileSync(path.join(dir, 'client.ts'), [
      "import createClient from 'openapi-fetch';",
      "import type { paths } from './api.js';",
      "const c = createClient<paths>({ baseUrl: 'http://127.0.0.1:7420' });",
      'export async function demo(): Promise<string> {',
      "  const { data, error } = await c.POST('/v1/workspaces', { body: { name: 'x', image: 'base', memory_mb: 256 } });",
      "  if (error) return error.code;",
      "  const got = await c.GET('/v1/workspaces/{id}', { params: { path: { id: data.workspace_id } } });",
      "  return got.data?.state ?? 'none';",
      '}',
      '',
    ].join('\n'));
    // A deliberate type error must fail, so a passing check means something.
    writeFileSync(path.join(dir, 'wrong.ts'), [
      "import createClient from 'openapi-fetch';",
      "import type { paths } from './api.js';",
      "const c = createClient<paths>({ baseUrl: 'http://x' });",
      "export const bad = () => c.POST('/v1/workspaces', { body: { memory_mb: 'lots' } });",
      '',
    ].join('\n'));
    symlinkSync(path.resolve('node_modules'), path.join(dir, 'node_modules'));
    const tsc = path.resolve('node_modules/typescript/bin/tsc');
    const flags = ['--noEmit', '--strict', '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--target', 'ES2022', '--skipLibCheck', '--types', 'node'];
    const good = spawnSync(process.execPath, [tsc, ...flags, path.join(dir, 'client.ts')], { cwd: dir, encoding: 'utf8' });
    assert.equal(good.status, 0, good.stdout + good.stderr);
    const bad = spawnSync(process.execPath, [tsc, ...flags, path.join(dir, 'wrong.ts')], { cwd: dir, encoding: 'utf8' });
    assert.notEqual(bad.status, 0, 'a wrong body type must not type-check');
    assert.match(bad.stdout, /wrong\.ts\(4,\d+\): error TS2322: Type 'string' is not assignable to type 'number'/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
