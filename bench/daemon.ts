// Daemon figures, each against the in-process service on the same VM in the
// same run: REST exec round trip (SDK), MCP exec round trip over stdio through
// the daemon, SDK file write/read throughput, and daemon cold start to its
// first answer (baseline: opening the service in-process).
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { type Config, loadConfig } from '../src/core/config.js';
import { Islet } from '../src/sdk/index.js';
import { WorkspaceService } from '../src/service/workspaces.js';
import { socketAnswers } from '../src/surfaces/daemon/connect.js';
import { daemonPaths } from '../src/surfaces/daemon/paths.js';
import type { Row } from './mcp.js';

const FILE_BYTES = 32 << 20;
const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function timed(n: number, fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return out;
}

export async function benchDaemon(config: Config, execs: number, record: (r: Row) => void): Promise<void> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'islet-bench-daemon-'));
  const runDir = mkdtempSync('/tmp/islet-bd-');
  const cfg = path.join(dataDir, 'islet.toml');
  writeFileSync(cfg, `[storage]\ndata_dir = "${dataDir}"\ncache_dir = "${config.paths.cacheDir}"\nrun_dir = "${runDir}"\n[pool]\nenabled = false\n`);
  const c = loadConfig(cfg);
  const bin = path.resolve('bin/islet.js');
  const stop = () => spawnSync(process.execPath, [bin, 'daemon', 'stop', '--config', cfg], { stdio: 'ignore', timeout: 60_000 });
  try {
    // Cold start: spawn to the first /healthz answer, against opening the service in-process.
    const o0 = performance.now();
    await (await WorkspaceService.open(c)).close();
    const inProcOpen = performance.now() - o0;
    const t0 = performance.now();
    const d = spawn(process.execPath, [bin, 'daemon', 'run', '--config', cfg, '-q'], { stdio: 'ignore', detached: true });
    d.unref();
    while (!(await socketAnswers(daemonPaths(c).socket))) await new Promise((r) => setTimeout(r, 5));
    const islet = new Islet({ config: cfg });
    await islet.node();
    const cold = performance.now() - t0;
    record({ metric: 'daemon cold start -> first answer', value: cold, unit: 'ms', baseline: inProcOpen, ratio: cold / inProcOpen, note: 'baseline: WorkspaceService.open in-process' });

    const ws = await islet.workspaces.create({ name: 'bench-daemon', image: 'base' });
    await ws.exec(['true']);
    const rest = p50(await timed(execs, () => ws.exec(['true'])));
    const data = randomBytes(FILE_BYTES);
    let w0 = performance.now();
    await ws.files.write('/root/bench.bin', data);
    const restWrite = FILE_BYTES / 2 ** 20 / ((performance.now() - w0) / 1000);
    w0 = performance.now();
    await ws.files.read('/root/bench.bin');
    const restRead = FILE_BYTES / 2 ** 20 / ((performance.now() - w0) / 1000);

    // MCP over stdio through the daemon.
    const t = new StdioClientTransport({ command: process.execPath, args: [bin, 'serve', '--config', cfg, '-q'], stderr: 'ignore' });
    const mcp = new Client({ name: 'bench', version: '0' });
    await mcp.connect(t);
    const viaMcp = p50(await timed(execs, () => mcp.callTool({ name: 'exec', arguments: { workspace_id: ws.id, command: ['true'] } })));
    await mcp.close();
    stop();

    // The same VM, re-attached by an in-process service.
    const svc = await WorkspaceService.open(c);
    const who = { owner: 'local' };
    try {
      const inProc = p50(await timed(execs, () => svc.exec(who, { workspace_id: ws.id, command: ['true'] })));
      w0 = performance.now();
      await svc.writeStream(who, { workspace_id: ws.id, path: '/root/bench2.bin' }, [data]);
      const ipWrite = FILE_BYTES / 2 ** 20 / ((performance.now() - w0) / 1000);
      w0 = performance.now();
      for await (const _ of (await svc.readStream(who, { workspace_id: ws.id, path: '/root/bench2.bin' })).chunks) { /* drained, as a client would */ }
      const ipRead = FILE_BYTES / 2 ** 20 / ((performance.now() - w0) / 1000);
      record({ metric: 'REST exec round trip, SDK (p50)', value: rest, unit: 'ms', baseline: inProc, ratio: rest / inProc, note: 'baseline: in-process service, same VM' });
      record({ metric: 'MCP exec round trip, stdio via daemon (p50)', value: viaMcp, unit: 'ms', baseline: inProc, ratio: viaMcp / inProc, note: 'baseline: in-process service, same VM' });
      record({ metric: `SDK file write, ${FILE_BYTES >> 20} MiB`, value: restWrite, unit: 'MiB/s', baseline: ipWrite, ratio: restWrite / ipWrite, note: 'baseline: in-process service' });
      record({ metric: `SDK file read, ${FILE_BYTES >> 20} MiB`, value: restRead, unit: 'MiB/s', baseline: ipRead, ratio: restRead / ipRead, note: 'baseline: in-process service' });
      await svc.destroy(who, { workspace_id: ws.id });
    } finally {
      await svc.close();
    }
  } finally {
    stop();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(runDir, { recursive: true, force: true });
  }
}
