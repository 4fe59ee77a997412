// `npm run stress -- --soak [--minutes N] [--workers W] [--image I] [--server-heap-mb M]`: a real
// `islet serve` over stdio, driven by the official MCP client for N minutes
// (default 10) with W loops (default 2) each doing create, exec (small and
// 1 MiB of output), snapshot, fork, exec in the fork, and destroying all of
// it. Samples the server process's RSS every 5 s and prints it per minute,
// then whether it is flat: the median of the last quarter against the median
// of the second quarter (the first is warm-up: template build, JIT, caches).
// Runs in its own data dir; whatever it made is destroyed at the end.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { loadConfig } from '../src/core/config.js';
import { WorkspaceService } from '../src/service/workspaces.js';

/** Growth allowed between the second and last quarter before RSS is called not flat: 16 MiB or 10%, the larger. */
const FLAT_MIB = 16;
const FLAT_RATIO = 0.10;

function rssKb(pid: number): number | undefined {
  try {
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  } catch {
    return undefined;
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

export async function runSoak(o: { minutes: number; workers: number; image: string; serverHeapMb?: number }): Promise<void> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'islet-soak-'));
  const runDir = mkdtempSync('/tmp/islet-soak-');
  const cfg = path.join(dataDir, 'islet.toml');
  writeFileSync(cfg, ['[storage]', `data_dir = "${dataDir}"`, `cache_dir = "${loadConfig().paths.cacheDir}"`, `run_dir = "${runDir}"`,
    '[network]', 'mode = "none"', '[pool]', 'enabled = false', '[resources]', 'default_memory_mb = 128', ''].join('\n'));
  const transport = new StdioClientTransport({
    // A capped old space tells a leak (the server dies or fails) from a heap V8 merely lets grow.
    command: process.execPath,
    args: [...(o.serverHeapMb ? [`--max-old-space-size=${o.serverHeapMb}`] : []), path.resolve('bin/islet.js'), 'serve', '--quiet', '--config', cfg],
    stderr: 'inherit',
  });
  const client = new Client({ name: 'islet-soak', version: '0' });
  await client.connect(transport);
  const pid = transport.pid!;
  const call = async <T>(name: string, args: Record<string, unknown>): Promise<T> => {
    const r = await client.callTool({ name, arguments: args }, undefined, { timeout: 600_000 }) as CallToolResult;
    if (r.isError) throw new Error(`${name}: ${(r.content[0] as { text: string }).text}`);
    return r.structuredContent as T;
  };

  const samples: Array<{ t: number; kb: number }> = [];
  const t0 = performance.now();
  const deadline = t0 + o.minutes * 60_000;
  const sampler = setInterval(() => {
    const kb = rssKb(pid);
    if (kb) samples.push({ t: (performance.now() - t0) / 1000, kb });
  }, 5_000);
  const counts = { cycles: 0, calls: 0, failures: 0 };
  const failures: string[] = [];
  console.log(`soak: ${o.minutes} min, ${o.workers} loops, image ${o.image}, server pid ${pid}${o.serverHeapMb ? `, server old space capped at ${o.serverHeapMb} MiB` : ''}`);

  const loop = async (w: number) => {
    for (let i = 0; performance.now() < deadline; i++) {
      const made: string[] = [];
      try {
        const ws = await call<{ workspace_id: string }>('workspace_create', { name: `soak-${w}-${i}`, image: o.image });
        made.push(ws.workspace_id);
        await call('exec', { workspace_id: ws.workspace_id, command: 'echo hello' });
        await call('exec', { workspace_id: ws.workspace_id, command: 'head -c 1048576 /dev/urandom' });
        await call('file_write', { workspace_id: ws.workspace_id, path: '/root/f', content: 'x'.repeat(100_000) });
        await call('snapshot_create', { workspace_id: ws.workspace_id, name: 'base' });
        const fork = await call<{ workspace_id: string }>('workspace_fork', { workspace_id: ws.workspace_id, snapshot: 'base' });
        made.unshift(fork.workspace_id);
        await call('exec', { workspace_id: fork.workspace_id, command: 'wc -c /root/f' });
        counts.calls += 7;
        counts.cycles++;
      } catch (e) {
        counts.failures++;
        if (failures.length < 10) failures.push(String(e).slice(0, 300));
      } finally {
        for (const id of made) await call('workspace_destroy', { workspace_id: id }).catch(() => undefined);
      }
    }
  };
  let minute = 0;
  const reporter = setInterval(() => {
    minute++;
    const last = samples.at(-1);
    console.log(`  ${minute} min: ${counts.cycles} cycles, ${counts.failures} failures, server RSS ${last ? (last.kb / 1024).toFixed(1) : '?'} MiB`);
  }, 60_000);
  try {
    await Promise.all(Array.from({ length: o.workers }, (_, w) => loop(w)));
  } finally {
    clearInterval(sampler);
    clearInterval(reporter);
    await client.close();
    const svc = await WorkspaceService.open(loadConfig(cfg));
    const admin = { owner: 'soak', admin: true };
    for (const w of await svc.list(admin)) await svc.destroy(admin, { workspace_id: w.workspace_id }).catch(() => undefined);
    await svc.close();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(runDir, { recursive: true, force: true });
  }

  const q = Math.floor(samples.length / 4);
  const second = samples.slice(q, 2 * q).map((s) => s.kb / 1024);
  const last = samples.slice(3 * q).map((s) => s.kb / 1024);
  const grow = median(last) - median(second);
  const flat = q > 0 && (grow <= FLAT_MIB || grow / median(second) <= FLAT_RATIO);
  console.log(`\n${counts.cycles} cycles (${counts.calls} tool calls) in ${((performance.now() - t0) / 60_000).toFixed(1)} min; failures: ${counts.failures}`);
  for (const f of failures) console.log(`  ${f}`);
  console.log('server RSS over time (MiB): ' + samples.filter((_, i) => i % 6 === 0).map((s) => `${Math.round(s.t)}s=${(s.kb / 1024).toFixed(0)}`).join(' '));
  console.log(`RSS median, second quarter ${median(second).toFixed(1)} MiB, last quarter ${median(last).toFixed(1)} MiB: `
    + (q === 0 ? 'too few samples to judge' : flat ? `flat (growth ${grow.toFixed(1)} MiB)` : `NOT flat (growth ${grow.toFixed(1)} MiB)`));
  if (!flat || counts.failures > 0) process.exitCode = 1;
}
