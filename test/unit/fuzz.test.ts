// Property-based fuzzing at the surfaces (issue 12): random and hostile
// arguments through a real MCP Client (in-memory pair) against a real
// WorkspaceService on an empty data dir, and through the real `islet ws` CLI.
// Fixed seeds and bounded counts, so a failure replays. The properties: no
// crash or protocol error, every failure a coded error that is not INTERNAL,
// and nothing lost (a host file named by the fuzz keeps its bytes, no temp
// files or workspaces are left behind, the server still answers).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import fc from 'fast-check';
import { ConfigSchema, loadConfig, resolveConfig } from '../../src/core/config.js';
import { IsletError } from '../../src/core/errors.js';
import { WorkspaceService } from '../../src/service/workspaces.js';
import { createMcpServer } from '../../src/surfaces/mcp/server.js';

const SEED = 1212;
const CODES = new Set(['INVALID_ARGUMENT', 'CONFIG_INVALID', 'WORKSPACE_NOT_FOUND', 'NOT_OWNER', 'STATE_CONFLICT', 'QUOTA_EXCEEDED',
  'PORT_IN_USE', 'SNAPSHOT_NOT_FOUND', 'SNAPSHOT_IN_USE', 'NOT_SUPPORTED', 'FILE_NOT_FOUND', 'FILE_TOO_LARGE', 'PATH_OUTSIDE_ALLOWED']);
// Tools that would boot a VM on valid input; everything else acts on workspaces that do not exist.
const BOOTS = new Set(['workspace_create']);

const hostile = fc.oneof(
  fc.constantFrom('', '.', '..', '../../etc/passwd', '/etc/passwd', '/root/x', 'keep.txt', 'sub/../keep.txt', '/dev/zero',
    'ws-00000000', 'snap-00000000', 'w', 'a'.repeat(5000), '\u0000', 'a\u0000b', '-1', '1e309', 'NaN', '--config', '$(reboot)',
    '; rm -rf /', '%s%n', '\u202e', 'aGVsbG8=', 'hello world', '*.example.com', 'utf8', 'base64', '0755'),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
);
const value: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: hostile },
  { weight: 2, arbitrary: fc.integer({ min: -5, max: 70_000 }) },
  fc.constantFrom(0, -1, 2 ** 31, 2 ** 53, Number.MAX_SAFE_INTEGER, 0.5, 1e308, 16 << 20, 0o4755),
  fc.boolean(),
  fc.constant(null),
  fc.array(hostile, { maxLength: 4 }),
  fc.dictionary(hostile, hostile, { maxKeys: 3 }),
);

const textOf = (r: CallToolResult) => r.content.map((c) => (c.type === 'text' ? c.text : '')).join('');

describe('fuzz: MCP tools against a real service', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'islet-fuzz-'));
  const transferDir = path.join(dir, 'transfer');
  mkdirSync(transferDir, { recursive: true });
  writeFileSync(path.join(transferDir, 'keep.txt'), 'precious');
  const config = resolveConfig({
    storage: { data_dir: path.join(dir, 'data'), run_dir: path.join(dir, 'run'), cache_dir: path.join(dir, 'cache') },
    server: { transfer_dir: transferDir }, pool: { enabled: false },
  });
  let svc: WorkspaceService;
  const client = new Client({ name: 'fuzz', version: '0' });
  let tools: Array<{ name: string; keys: string[] }> = [];

  before(async () => {
    svc = await WorkspaceService.open(config);
    const server = createMcpServer(svc, () => ({ owner: 'fuzz' }));
    const [a, b] = InMemoryTransport.createLinkedPair();
    await server.connect(a);
    await client.connect(b);
    tools = (await client.listTools()).tools.filter((t) => !BOOTS.has(t.name))
      .map((t) => ({ name: t.name, keys: Object.keys((t.inputSchema.properties ?? {}) as object) }));
  });
  after(async () => {
    await client.close();
    await svc.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('random and hostile arguments: coded results only, nothing lost', async () => {
    const call = fc.record({
      tool: fc.nat(),
      fields: fc.array(fc.tuple(fc.nat(), value), { maxLength: 6 }),
      extra: fc.option(fc.tuple(hostile, value)),
    });
    await fc.assert(fc.asyncProperty(call, async ({ tool, fields, extra }) => {
      const t = tools[tool % tools.length]!;
      const args: Record<string, unknown> = {};
      for (const [k, v] of fields) if (t.keys.length) args[t.keys[k % t.keys.length]!] = v;
      if (extra) args[extra[0]] = extra[1];
      const r = await client.callTool({ name: t.name, arguments: args }) as CallToolResult;
      if (r.isError) {
        const body = JSON.parse(textOf(r)) as { code: string; message: string };
        assert.ok(CODES.has(body.code), `${t.name} ${JSON.stringify(args).slice(0, 300)} -> ${textOf(r).slice(0, 300)}`);
        assert.ok(body.message.length > 0);
      } else {
        assert.equal(typeof r.structuredContent, 'object', `${t.name}: a success carries structured content`);
      }
    }), { seed: SEED, numRuns: 300 });
    assert.equal(readFileSync(path.join(transferDir, 'keep.txt'), 'utf8'), 'precious');
    const leftovers = readdirSync(transferDir, { recursive: true }).map(String).filter((f) => f.endsWith('.tmp'));
    assert.deepEqual(leftovers, []);
    assert.deepEqual(await svc.list({ owner: 'any', admin: true }), []);
    const list = await client.callTool({ name: 'workspace_list', arguments: {} }) as CallToolResult;
    assert.equal(list.isError, undefined, 'the server still answers');
  });
});

describe('fuzz: config and CLI parsers', () => {
  test('resolveConfig on random sections: a Config or a CONFIG_INVALID naming a key, never anything else', () => {
    const sections = Object.keys(ConfigSchema.shape);
    const raw = fc.dictionary(fc.oneof(fc.constantFrom(...sections), hostile),
      fc.oneof(fc.dictionary(fc.oneof(fc.constantFrom('max_memory_mb', 'default_memory_mb', 'min_size', 'max_size', 'tokens', 'transfer_dir',
        'max_sessions', 'mode', 'http_port'), hostile), value, { maxKeys: 4 }), value), { maxKeys: 4 });
    fc.assert(fc.property(raw, (r) => {
      try {
        const c = resolveConfig(r);
        assert.ok(c.resources.default_memory_mb <= c.resources.max_memory_mb);
        assert.ok(c.pool.min_size <= c.pool.max_size);
      } catch (e) {
        assert.ok(e instanceof IsletError && e.code === 'CONFIG_INVALID', String(e));
      }
    }), { seed: SEED, numRuns: 500 });
  });

  test('`islet ws` with random arguments on an empty data dir: a coded error and a usage exit status, never a crash', { timeout: 120_000 }, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'islet-fuzz-cli-'));
    const cfg = path.join(dir, 'islet.toml');
    const transfer = path.join(dir, 'transfer');
    mkdirSync(transfer);
    writeFileSync(path.join(transfer, 'keep.txt'), 'precious');
    // The CLI is a client of the data dir's daemon: one starts on the first call and leaves soon after the last.
    // The shared cache: a private one would make the first daemon build the egress helper with go first.
    writeFileSync(cfg, `[storage]\ndata_dir = "${dir}/data"\nrun_dir = "${dir}/run"\ncache_dir = "${loadConfig().paths.cacheDir}"\n[server]\ntransfer_dir = "${transfer}"\ndaemon_idle_exit_s = 2\n[pool]\nenabled = false\n`);
    // Subcommands that act on a named workspace: on an empty data dir none can boot a VM.
    const sub = fc.constantFrom('info', 'exec', 'write', 'read', 'upload', 'download', 'destroy', 'start', 'stop', 'snapshot', 'fork', 'pause', 'resume', 'list');
    const arg = fc.oneof(hostile, fc.constantFrom('--mode', '--max-bytes', '--timeout', '--env', '--sh', '--overwrite', '--json', '--from', '--', '-e', '--owner', '--all'));
    const run = (args: string[]) => new Promise<{ status: number | null; stderr: string }>((resolve) => {
      const p = spawn(process.execPath, [path.resolve('bin/islet.js'), 'ws', args[0]!, '--config', cfg, ...args.slice(1)], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      p.stderr.on('data', (c: Buffer) => { if (stderr.length < 10_000) stderr += c.toString(); });
      const t = setTimeout(() => p.kill('SIGKILL'), 20_000);
      p.on('close', (status) => { clearTimeout(t); resolve({ status, stderr }); });
    });
    try {
      await fc.assert(fc.asyncProperty(sub, fc.array(arg, { maxLength: 5 }), async (s, rest) => {
        const args = [s, ...rest.filter((a) => !a.includes('\u0000'))]; // argv cannot carry NUL
        const r = await run(args);
        assert.notEqual(r.status, null, `killed: ${JSON.stringify(args)}`);
        if (r.status === 0) return; // e.g. `ws list` with nothing to list
        assert.ok([64, 66, 69, 70, 75, 77].includes(r.status!), `${JSON.stringify(args)} -> exit ${r.status}: ${r.stderr}`);
        // Commander's own usage errors have no code; everything islet reports does, and none is INTERNAL.
        if (/^error\[/m.test(r.stderr)) assert.doesNotMatch(r.stderr, /error\[INTERNAL\]/, JSON.stringify(args));
        else assert.match(r.stderr, /^error: /m, `${JSON.stringify(args)}: ${r.stderr}`);
      }), { seed: SEED, numRuns: 40 });
      assert.equal(readFileSync(path.join(transfer, 'keep.txt'), 'utf8'), 'precious');
    } finally {
      spawnSync(process.execPath, [path.resolve('bin/islet.js'), 'daemon', 'stop', '--config', cfg], { stdio: 'ignore', timeout: 60_000 });
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
