// Daemon figures, each against the in-process service on the same VM in the
// same run: REST exec round trip (SDK), MCP exec round trip over stdio through
// the daemon, SDK file write/read throughput, and daemon cold start to its
// first answer (baseline: opening the service in-process), and first, with no
// VM, what the HTTP path itself costs per exec. The daemon and the
// in-process service take turns on the VM (they cannot share a data dir).
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { type Config, loadConfig } from '../src/core/config.js';
import { Islet } from '../src/sdk/index.js';
import { ndjson } from '../src/sdk/transport.js';
import { WorkspaceService } from '../src/service/workspaces.js';
import { socketAnswers } from '../src/surfaces/daemon/connect.js';
import { daemonPaths } from '../src/surfaces/daemon/paths.js';
import { pct, timed } from './exec.js';
import type { Row } from './mcp.js';
import { benchHttpOverhead } from './http-overhead.js';

const FILE_BYTES = 32 << 20;
const ROUNDS = Number(process.env.BENCH_DAEMON_ROUNDS ?? 4);
/** File transfers per side and round (write then read back). */
const FILE_REPS = 2;
const WARMUP = 10;


export async function benchDaemon(config: Config, execs: number, record: (r: Row) => void): Promise<void> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'islet-bench-daemon-'));
  const runDir = mkdtempSync('/tmp/islet-bd-');
  const cfg = path.join(dataDir, 'islet.toml');
  writeFileSync(cfg, `[storage]\ndata_dir = "${dataDir}"\ncache_dir = "${config.paths.cacheDir}"\nrun_dir = "${runDir}"\n[pool]\nenabled = false\n`);
  const c = loadConfig(cfg);
  const bin = path.resolve('bin/islet.js');
  const startDaemon = async () => {
    const d = spawn(process.execPath, [bin, 'daemon', 'run', '--config', cfg, '-q'], { stdio: 'ignore', detached: true });
    d.unref();
    while (!(await socketAnswers(daemonPaths(c).socket))) await new Promise((r) => setTimeout(r, 5));
  };
  const stop = () => spawnSync(process.execPath, [bin, 'daemon', 'stop', '--config', cfg], { stdio: 'ignore', timeout: 60_000 });
  try {
    await benchHttpOverhead(1000, record);
    // Cold start: spawn to the first /healthz answer, against opening the service in-process.
    const o0 = performance.now();
    await (await WorkspaceService.open(c)).close();
    const inProcOpen = performance.now() - o0;
    const t0 = performance.now();
    await startDaemon();
    const islet = new Islet({ config: cfg });
    await islet.node();
    const cold = performance.now() - t0;
    record({ metric: 'daemon cold start -> first answer', value: cold, unit: 'ms', baseline: inProcOpen, ratio: cold / inProcOpen, note: 'baseline: WorkspaceService.open in-process' });

    const ws = await islet.workspaces.create({ name: 'bench-daemon', image: 'base' });
    await ws.exec(['true']);
    const data = randomBytes(FILE_BYTES);
    const warm = data.subarray(0, 8 << 20);
    const who = { owner: 'local' };
    const guestPath = '/root/bench.bin';
    // The daemon and the in-process service cannot own the data dir at once, so they take turns on the same VM,
    // ROUNDS times, the one that goes first alternating, and each figure pools its rounds: drift in host load
    // then hits both sides alike. Both sides move the same bytes to the same guest file and hand the caller
    // the same thing (a write from one Buffer; a read into one Buffer).
    const rest: number[] = [];
    const paired: number[] = [];
    const addedMs: number[] = [];
    const viaMcp: number[] = [];
    const inProc: number[] = [];
    const mibs = { restW: [] as number[], restR: [] as number[], ipW: [] as number[], ipR: [] as number[] };
    const rate = (t0: number) => (FILE_BYTES / 2 ** 20) / ((performance.now() - t0) / 1000);
    const per = Math.max(1, Math.round(execs / ROUNDS));
    let client: Islet | undefined = islet;
    const viaDaemon = async () => {
      if (!client) { await startDaemon(); client = new Islet({ config: cfg }); }
      const w = await client.workspaces.get(ws.id);
      // Both sides warm up alike: a daemon just started still settles (reconcile, its first connections).
      for (let i = 0; i < WARMUP; i++) await w.exec(['true']);
      const api = await client.client();
      for (let i = 0; i < per; i++) {
        // The SDK's exec, read here from the raw response so its Server-Timing trailer (the service call's own
        // time inside the daemon) pairs each round trip with the in-process figure of the very same call.
        const t0 = performance.now();
        const res = await api.http.send('POST', `/v1/workspaces/${ws.id}/exec`, { json: { command: ['true'] } });
        let exit = false;
        for await (const ev of ndjson(res)) exit ||= ev.type === 'exit';
        const rt = performance.now() - t0;
        const svcMs = Number(/dur=([\d.]+)/.exec(String(res.trailers['server-timing']))?.[1]);
        if (!exit || !Number.isFinite(svcMs)) throw new Error('exec over REST: no exit event or no Server-Timing trailer');
        rest.push(rt);
        paired.push(rt / svcMs);
        addedMs.push(rt - svcMs);
      }
      // A daemon just started runs its file path cold (not yet optimised by V8) where the in-process side runs
      // in this long-lived process: one untimed transfer each way first, on both sides.
      await w.files.write(guestPath, warm);
      await w.files.read(guestPath);
      for (let i = 0; i < FILE_REPS; i++) {
        let t0 = performance.now();
        await w.files.write(guestPath, data);
        mibs.restW.push(rate(t0));
        t0 = performance.now();
        const back = await w.files.read(guestPath);
        mibs.restR.push(rate(t0));
        if (back.length !== FILE_BYTES) throw new Error(`read back ${back.length} bytes, wrote ${FILE_BYTES}`);
      }
      // MCP over stdio through the daemon.
      const t = new StdioClientTransport({ command: process.execPath, args: [bin, 'serve', '--config', cfg, '-q'], stderr: 'ignore' });
      const mcp = new Client({ name: 'bench', version: '0' });
      await mcp.connect(t);
      viaMcp.push(...await timed(per, () => mcp.callTool({ name: 'exec', arguments: { workspace_id: ws.id, command: ['true'] } })));
      await mcp.close();
      stop();
      client = undefined;
    };
    const inProcess = async () => {
      // The same VM, re-attached by an in-process service.
      const svc = await WorkspaceService.open(c);
      try {
        const ref = { workspace_id: ws.id, path: guestPath };
        for (let i = 0; i < WARMUP; i++) await svc.exec(who, { workspace_id: ws.id, command: ['true'] });
        inProc.push(...await timed(per, () => svc.exec(who, { workspace_id: ws.id, command: ['true'] })));
        await svc.writeStream(who, ref, [warm]);
        for await (const _ of (await svc.readStream(who, ref)).chunks);
        for (let i = 0; i < FILE_REPS; i++) {
          let t0 = performance.now();
          await svc.writeStream(who, ref, [data]);
          mibs.ipW.push(rate(t0));
          t0 = performance.now();
          const f = await svc.readStream(who, ref);
          const back = Buffer.allocUnsafe(f.size); // what the SDK's read does with the declared length
          let off = 0;
          for await (const chunk of f.chunks) off += chunk.copy(back, off);
          mibs.ipR.push(rate(t0));
          if (off !== FILE_BYTES) throw new Error(`read back ${off} bytes, wrote ${FILE_BYTES}`);
        }
      } finally {
        await svc.close();
      }
    };
    for (let round = 0; round < ROUNDS; round++) {
      if (round % 2 === 0) { await viaDaemon(); await inProcess(); }
      else { await inProcess(); await viaDaemon(); }
    }
    const svc = await WorkspaceService.open(c);
    await svc.destroy(who, { workspace_id: ws.id }).finally(() => svc.close());
    const note = `baseline: in-process service, same VM, ${ROUNDS} rounds taking turns`;
    for (const [name, xs] of [['REST exec round trip, SDK', rest], ['MCP exec round trip, stdio via daemon', viaMcp]] as const) {
      for (const p of [50, 90]) {
        const v = pct(xs, p);
        const b = pct(inProc, p);
        record({ metric: `${name} (p${p})`, value: v, unit: 'ms', baseline: b, ratio: v / b, note: `${note}, ${xs.length} vs ${inProc.length} calls` });
      }
    }
    record({ metric: 'REST exec round trip over its own service call (p50)', value: pct(paired, 50), unit: 'x',
      note: `${pct(paired, 50).toFixed(3)}x paired per call: SDK round trip / svc.exec time inside the daemon (Server-Timing trailer); HTTP adds p50 ${pct(addedMs, 50).toFixed(2)} ms, p90 ${pct(addedMs, 90).toFixed(2)} ms` });
    const fnote = `${note}, median of ${mibs.restW.length} transfers each`;
    const w = pct(mibs.restW, 50), wb = pct(mibs.ipW, 50), r = pct(mibs.restR, 50), rb = pct(mibs.ipR, 50);
    record({ metric: `SDK file write, ${FILE_BYTES >> 20} MiB`, value: w, unit: 'MiB/s', baseline: wb, ratio: w / wb, note: fnote });
    record({ metric: `SDK file read, ${FILE_BYTES >> 20} MiB`, value: r, unit: 'MiB/s', baseline: rb, ratio: r / rb, note: fnote });
  } finally {
    stop();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(runDir, { recursive: true, force: true });
  }
}
