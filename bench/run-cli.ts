// `islet run -- true` wall time, as a user sees it: a CLI process that talks
// to the daemon (docs/daemon.md). On a private data dir with the pool off, so
// that no pool VM of the run's daemon fills in the background while the later
// sections measure. One untimed run first: it starts the daemon and builds
// the template that later runs restore; the figure is the steady state, with
// the first run (daemon start included) beside it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../src/core/config.js';
import type { Row } from './mcp.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export function benchRunCli(config: Config, n: number, bareMs: number, record: (r: Row) => void): void {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'islet-bench-run-'));
  const runDir = mkdtempSync('/tmp/islet-br-');
  const cfg = path.join(dataDir, 'islet.toml');
  writeFileSync(cfg, `[storage]\ndata_dir = "${dataDir}"\ncache_dir = "${config.paths.cacheDir}"\nrun_dir = "${runDir}"\n[pool]\nenabled = false\n`);
  const bin = path.resolve('bin/islet.js');
  const once = () => {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [bin, 'run', '-q', '--config', cfg, '--', 'true'], { encoding: 'utf8', timeout: 300_000 });
    if (r.status !== 0) throw new Error(`islet run -- true exited ${r.status}: ${r.stderr}`);
    return performance.now() - t0;
  };
  try {
    const first = once();
    const runs = Array.from({ length: n }, once);
    record({ metric: '`islet run -- true` wall time, daemon up (median)', value: median(runs), unit: 'ms', baseline: bareMs, ratio: median(runs) / bareMs,
      note: `baseline: bare QEMU boot; a template restore through the daemon, CLI start included; the first run (daemon start, template build) took ${first.toFixed(0)} ms` });
  } finally {
    spawnSync(process.execPath, [bin, 'daemon', 'stop', '--config', cfg], { stdio: 'ignore', timeout: 60_000 });
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(runDir, { recursive: true, force: true });
  }
}
