// `npm run stress -- --vms N [--parallel P] [--memory MB] [--image I] [--cold] [--restore-tb-mb MB]`: create N
// workspaces through the service, run `echo hello` in each and check every
// output, destroy them all. Prints total time, create->first-output
// p50/p95/max, peak host memory and per-VM overhead. Parallelism adapts to
// the host (TCG boots are CPU-bound: more at once only thrashes). Whatever
// happens — failure, Ctrl-C — every VM it made is destroyed, in its own data
// dir, so nothing of the user's is touched. Creates take islet's default
// path (a template restore, the template built by the first one); --cold
// turns templates off, so every VM boots its kernel: the baseline.
// `--soak [--minutes N]` runs the soak instead (bench/soak.ts).
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig, resolveConfig } from '../src/core/config.js';
import { WorkspaceService } from '../src/service/workspaces.js';
import { runSoak } from './soak.js';

const { values } = parseArgs({
  options: {
    vms: { type: 'string', default: '100' },
    parallel: { type: 'string' },
    memory: { type: 'string', default: '128' },
    image: { type: 'string', default: 'base' },
    cold: { type: 'boolean', default: false },
    soak: { type: 'boolean', default: false },
    minutes: { type: 'string', default: '10' },
    workers: { type: 'string', default: '2' },
    'server-heap-mb': { type: 'string' },
    /** [vm] restore_tcg_tb_size_mb for this run: the density lever, priced in create time. */
    'restore-tb-mb': { type: 'string' },
  },
});
const N = Number(values.vms);
const memoryMb = Number(values.memory);
const cores = os.availableParallelism();
// Boots are CPU-bound under TCG; two per core keeps the cores busy while
// others wait on I/O, and more only stretches every boot.
const parallel = Number(values.parallel ?? Math.max(2, cores * 2));
if (!Number.isInteger(N) || N < 1 || !Number.isInteger(parallel) || parallel < 1) {
  console.error('usage: npm run stress -- --vms N [--parallel P] [--memory MB] [--image I] [--cold]');
  process.exit(64);
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? NaN;

/** PSS of every QEMU of this run, from /proc (shared pages counted once overall). */
function qemuPssKb(runDir: string): { total: number; count: number } {
  let total = 0;
  let count = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (!(argv[argv.indexOf('-pidfile') + 1] ?? '').startsWith(runDir)) continue;
      const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${d}/smaps_rollup`, 'utf8'));
      if (m) { total += Number(m[1]); count++; }
    } catch { /* exited meanwhile */ }
  }
  return { total, count };
}

function memAvailableKb(): number {
  return Number(/^MemAvailable:\s+(\d+)/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0);
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'islet-stress-'));
  const config = resolveConfig({
    storage: { data_dir: dataDir, cache_dir: loadConfig().paths.cacheDir },
    resources: { max_workspaces: N, max_workspaces_per_owner: N, default_memory_mb: memoryMb },
    network: { mode: 'none' },
    pool: { template: !values.cold },
    ...(values['restore-tb-mb'] ? { vm: { restore_tcg_tb_size_mb: Number(values['restore-tb-mb']) } } : {}),
  });
  // How each create started, from the service's progress lines.
  const paths = { template: 0, boot: 0, pool: 0, builds: 0 };
  const progress = (line: string) => {
    if (/restored from template/.test(line)) paths.template++;
    else if (/assigned a warm pool VM/.test(line)) paths.pool++;
    else if (/: booting \(/.test(line)) paths.boot++;
    else if (/^building template/.test(line)) paths.builds++;
    else if (/template restore failed/.test(line)) console.log(`  ${line}`);
  };
  const svc = await WorkspaceService.open(config, { progress });
  const caller = { owner: 'stress' };
  let interrupted = false;
  const onSignal = () => { interrupted = true; console.error('stress: interrupted, destroying every VM...'); };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const baseAvail = memAvailableKb();
  let peakUsedKb = 0;
  let peakPss = { total: 0, count: 0 };
  const sampler = setInterval(() => {
    peakUsedKb = Math.max(peakUsedKb, baseAvail - memAvailableKb());
    const p = qemuPssKb(config.paths.runDir);
    if (p.total > peakPss.total) peakPss = p;
  }, 500);

  console.log(`stress: ${N} VMs of ${values.image}, ${parallel} at a time, ${memoryMb} MiB each, ${cores} cores, ${values.cold ? 'cold boots (templates off)' : 'default create path'}`);
  const latencies: number[] = [];
  const failures: string[] = [];
  const t0 = performance.now();
  let next = 0;
  const worker = async () => {
    while (!interrupted && next < N) {
      const i = next++;
      const start = performance.now();
      try {
        const w = await svc.create(caller, { name: `s${i}`, image: values.image });
        const r = await svc.exec(caller, { workspace_id: w.workspace_id, command: ['echo', 'hello'] });
        if (r.stdout !== 'hello\n' || r.exit_code !== 0) throw new Error(`output ${JSON.stringify(r.stdout)} exit ${r.exit_code}`);
        latencies.push(performance.now() - start);
        if (latencies.length % 10 === 0 || latencies.length === N) {
          console.log(`  ${latencies.length}/${N} answered hello (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
        }
      } catch (e) {
        failures.push(`s${i}: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(parallel, N) }, worker));
    const allUp = (performance.now() - t0) / 1000;
    const idle = qemuPssKb(config.paths.runDir);
    console.log(`\nall ${latencies.length}/${N} checked in ${allUp.toFixed(1)} s; failures: ${failures.length}`);
    console.log(`started by: template restore ${paths.template}, kernel boot ${paths.boot}, pool ${paths.pool}; templates built: ${paths.builds}`);
    for (const f of failures.slice(0, 10)) console.log(`  ${f}`);
    console.log(`create -> first output: p50 ${(pct(latencies, 50) / 1000).toFixed(2)} s, p95 ${(pct(latencies, 95) / 1000).toFixed(2)} s, max ${(pct(latencies, 100) / 1000).toFixed(2)} s`);
    console.log(`host memory used at peak: ${(peakUsedKb / 1024).toFixed(0)} MiB (${(peakUsedKb / 1024 / Math.max(1, latencies.length)).toFixed(1)} MiB per VM)`);
    console.log(`QEMU PSS with all VMs idle: ${(idle.total / 1024).toFixed(0)} MiB over ${idle.count} VMs = ${(idle.total / 1024 / Math.max(1, idle.count)).toFixed(1)} MiB per VM (peak ${(peakPss.total / 1024).toFixed(0)} MiB)`);
    if (failures.length || latencies.length !== N) process.exitCode = 1;
  } finally {
    clearInterval(sampler);
    const t1 = performance.now();
    const all = await svc.list({ owner: 'stress', admin: true });
    for (let i = 0; i < all.length; i += parallel) {
      await Promise.all(all.slice(i, i + parallel).map((w) => svc.destroy(caller, { workspace_id: w.workspace_id }).catch(() => undefined)));
    }
    await svc.close();
    const left = qemuPssKb(config.paths.runDir).count;
    console.log(`destroyed ${all.length} in ${((performance.now() - t1) / 1000).toFixed(1)} s; QEMU processes left: ${left}`);
    rmSync(dataDir, { recursive: true, force: true });
    if (left) process.exitCode = 1;
  }
}

if (values.soak) {
  const minutes = Number(values.minutes);
  const workers = Number(values.workers);
  if (!(minutes > 0) || !Number.isInteger(workers) || workers < 1) {
    console.error('usage: npm run stress -- --soak [--minutes N] [--workers W] [--image I] [--server-heap-mb M]');
    process.exit(64);
  }
  const heap = values['server-heap-mb'] === undefined ? undefined : Number(values['server-heap-mb']);
  await runSoak({ minutes, workers, image: values.image, serverHeapMb: heap });
} else {
  await main();
}
