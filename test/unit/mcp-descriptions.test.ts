// What the MCP tools tell an agent must match what the service does: agents
// act on these words. Each tool maps to the one service method it calls; the
// texts may only name error codes that exist and must not call an
// implemented feature "not implemented".
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import { resolveConfig } from '../../src/core/config.js';
import { ERROR_CODES } from '../../src/core/errors.js';
import { WorkspaceService } from '../../src/service/workspaces.js';
import { createMcpServer } from '../../src/surfaces/mcp/server.js';

/** Tool → the WorkspaceService method behind it. A new tool must be added here (the test fails until it is). */
const TOOL_METHOD: Record<string, keyof WorkspaceService> = {
  workspace_create: 'create', workspace_destroy: 'destroy', workspace_start: 'start', workspace_stop: 'stop',
  workspace_list: 'list', workspace_info: 'info', exec: 'exec', file_write: 'fileWrite', file_read: 'fileRead',
  file_upload: 'fileUpload', file_download: 'fileDownload', port_forward: 'portForward', port_forward_remove: 'portForwardRemove',
  workspace_ip: 'workspaceIp', network_policy: 'networkPolicy', snapshot_create: 'snapshotCreate', snapshot_list: 'snapshotList',
  snapshot_restore: 'snapshotRestore', snapshot_delete: 'snapshotDelete', workspace_fork: 'fork', workspace_pause: 'pause',
  workspace_resume: 'resume', process_start: 'processStart', process_list: 'processList', process_output: 'processOutput',
  process_write: 'processWrite', process_kill: 'processKill', process_wait: 'processWait', workspace_set_lifetime: 'setLifetime',
  session_create: 'sessionCreate', session_list: 'sessionList', session_get: 'sessionGet', session_destroy: 'sessionDestroy',
};

/** Every description string in a tool: its own and those of each schema property, at any depth. */
function texts(t: Tool): string[] {
  const out = [t.description ?? ''];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k === 'description' && typeof x === 'string') out.push(x);
        else walk(x);
      }
    }
  };
  walk(t.inputSchema);
  walk(t.outputSchema);
  return out;
}

describe('MCP tool descriptions agree with the service', () => {
  const client = new Client({ name: 'test', version: '0' });
  let tools: Tool[] = [];
  before(async () => {
    const svc = { config: resolveConfig({}) } as unknown as WorkspaceService; // listing tools calls no method
    const server = createMcpServer(svc, () => ({ owner: 'alice' }));
    const [a, b] = InMemoryTransport.createLinkedPair();
    await server.connect(a);
    await client.connect(b);
    tools = (await client.listTools()).tools;
  });
  after(() => client.close());

  test('every tool is backed by a service method, and every method in the table by a tool', () => {
    const names = tools.map((t) => t.name).sort();
    for (const n of names) {
      const m = TOOL_METHOD[n];
      assert.ok(m, `tool ${n} is not in TOOL_METHOD`);
      assert.equal(typeof WorkspaceService.prototype[m], 'function', `tool ${n}: WorkspaceService has no method ${String(m)}`);
    }
    assert.deepEqual(names, Object.keys(TOOL_METHOD).sort());
  });

  test('no text calls a feature "not implemented" or "always false"', () => {
    for (const t of tools) {
      for (const s of texts(t)) assert.doesNotMatch(s, /not (yet )?implemented|always false/i, `${t.name}: ${s}`);
    }
  });

  test('every error code a text names exists', () => {
    const known = new Set<string>(ERROR_CODES);
    for (const t of tools) {
      for (const s of texts(t)) {
        for (const w of s.match(/\b[A-Z][A-Z_]{4,}[A-Z]\b/g) ?? []) {
          if (w.includes('_')) assert.ok(known.has(w), `${t.name} names ${w}, which is not an error code`);
        }
      }
    }
  });

  test('memory snapshots are described as the service implements them', () => {
    const create = tools.find((t) => t.name === 'snapshot_create')!;
    assert.ok('include_memory' in (create.inputSchema.properties ?? {}), 'snapshot_create takes include_memory');
    assert.match(texts(create).join(' '), /include_memory/);
    assert.match(tools.find((t) => t.name === 'snapshot_restore')!.description ?? '', /memory/i);
    const list = texts(tools.find((t) => t.name === 'snapshot_list')!).join(' ');
    assert.match(list, /memory/i, 'has_memory is described');
  });
});
