// MCP figures: workspace_create -> first exec through a real `islet serve`
// over stdio and the official client, and 20 concurrent exec calls on one
// workspace. Baselines in the same run: a Runtime cold boot (no MCP, no
// service) and the same 20 execs sent straight to the agent client.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { Config } from '../src/core/config.js';
import type { Runtime } from '../src/service/runtime.js';

export interface Row { metric: string; value: number; unit: string; baseline?: number; ratio?: number; note?: string }

const CONCURRENT = 20;

export async function benchMcp(config: Config, rt: Runtime, n: number, record: (r: Row) => void): Promise<void> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'islet-bench-mcp-'));
  const cfg = path.join(dataDir, 'islet.toml');
  writeFileSync(cfg, `[storage]\ndata_dir = "${dataDir}"\ncache_dir = "${config.paths.cacheDir}"\n`);
  const client = new Client({ name: 'islet-bench', version: '0' });
  const transport = new StdioClientTransport({ command: process.execPath, args: [path.resolve('bin/islet.js'), 'serve', '--config', cfg], stderr: 'ignore' });
  await client.connect(transport);
  const call = async (name: string, args: Record<string, unknown>) => {
    const r = await client.callTool({ name, arguments: args }, undefined, { timeout: 600_000 }) as CallToolResult;
    if (r.isError) throw new Error(`${name}: ${JSON.stringify(r.content)}`);
    return r.structuredContent as Record<string, unknown>;
  };
  try {
    const firstExec: number[] = [];
    const boots: number[] = [];
    let keep: string | undefined;
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const w = await call('workspace_create', { name: `bench-${i}` });
      await call('exec', { workspace_id: w.workspace_id, command: ['true'] });
      firstExec.push(performance.now() - t0);
      if (i === 0) keep = String(w.workspace_id);
      else await call('workspace_destroy', { workspace_id: w.workspace_id });
      const b0 = performance.now();
      const m = await rt.boot();
      boots.push(performance.now() - b0);
      await m.destroy();
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    record({ metric: 'MCP workspace_create -> first exec (p50)', value: med(firstExec), unit: 'ms', baseline: med(boots), ratio: med(firstExec) / med(boots), note: 'baseline: Runtime cold boot' });

    const m = await rt.boot();
    try {
      let t0 = performance.now();
      await Promise.all(Array.from({ length: CONCURRENT }, () => m.exec({ argv: ['true'] })));
      const direct = CONCURRENT / ((performance.now() - t0) / 1000);
      t0 = performance.now();
      const rs = await Promise.all(Array.from({ length: CONCURRENT }, (_, i) => call('exec', { workspace_id: keep, command: `echo ${i}` })));
      const viaMcp = CONCURRENT / ((performance.now() - t0) / 1000);
      rs.forEach((r, i) => { if (r.stdout !== `${i}\n`) throw new Error(`exec ${i} returned ${JSON.stringify(r.stdout)}`); });
      record({ metric: `${CONCURRENT} concurrent MCP exec calls, one workspace`, value: viaMcp, unit: 'calls/s', baseline: direct, ratio: viaMcp / direct, note: 'baseline: agent client direct' });
    } finally {
      await m.destroy();
    }
    await call('workspace_destroy', { workspace_id: keep });
  } finally {
    await client.close();
    spawnSync(process.execPath, [path.resolve('bin/islet.js'), 'daemon', 'stop', '--config', cfg], { stdio: 'ignore', timeout: 60_000 });
    rmSync(dataDir, { recursive: true, force: true });
  }
}
