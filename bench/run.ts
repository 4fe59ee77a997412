// `npm run bench`: measures and prints; asserts nothing. Every timing is
// shown beside a baseline measured in the same run (a bare QEMU boot of the
// same kernel, initramfs and image, with no islet machinery), because our
// hosts are noisy and emulated. Results: bench/results/latest.{md,json}.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/core/config.js';
import { FrameType, PROTOCOL_VERSION, encodeJson } from '../src/guest/frame.js';
import { Runtime } from '../src/service/runtime.js';
import { createOverlay } from '../src/storage/overlay.js';
import { tscKhz } from '../src/vmm/accel.js';
import { buildQemuArgv } from '../src/vmm/argv.js';
import { benchDaemon } from './daemon.js';
import { benchExec } from './exec.js';
import { benchMcp, Row } from './mcp.js';
import { benchKernel } from './kernel.js';
import { benchDensity } from './density.js';
import { benchImages } from './images.js';
import { benchNet } from './net.js';
import { benchPool } from './pool.js';
import { benchProcs } from './procs.js';
import { benchSessions } from './sessions.js';
import { benchSnapshots } from './snapshots.js';
import { benchStarts } from './starts.js';
import { benchRunCli } from './run-cli.js';
import { benchStress } from './stress-section.js';

const N = Number(process.env.BENCH_BOOTS ?? 5);
/** `npm run bench -- --only daemon,procs`: just those sections (the bare-boot baseline runs when boot or pool is asked). */
const SECTIONS = ['boot', 'exec', 'mcp', 'daemon', 'procs', 'net', 'snapshots', 'starts', 'pool', 'density', 'stress', 'kernel', 'images', 'sessions'] as const;
const onlyArg = process.argv.indexOf('--only');
const only = onlyArg >= 0 ? new Set((process.argv[onlyArg + 1] ?? '').split(',')) : undefined;
for (const o of only ?? []) if (!(SECTIONS as readonly string[]).includes(o)) throw new Error(`--only: unknown section ${o}; sections: ${SECTIONS.join(', ')}`);
const want = (s: (typeof SECTIONS)[number]) => !only || only.has(s);
const EXECS = Number(process.env.BENCH_EXECS ?? 200);

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const median = (xs: number[]) => pct(xs, 50);
const ms = (t0: number) => performance.now() - t0;

const rows: Row[] = [];
const record = (r: Row) => {
  rows.push(r);
  const base = r.baseline !== undefined ? `  (baseline ${r.baseline.toFixed(1)} ${r.unit}, ratio ${r.ratio?.toFixed(2)}x)` : '';
  console.log(`${r.metric.padEnd(44)} ${r.value.toFixed(1).padStart(9)} ${r.unit}${base}${r.note ? `  ${r.note}` : ''}`);
};

/** Bare QEMU: same argv islet uses, spawned directly; ready = first agent reply byte. */
async function bareBoot(rt: Runtime, accel: 'kvm' | 'tcg', work: string, i: number): Promise<number> {
  const art = await rt.artifacts('base');
  const dir = path.join(work, `bare${i}`);
  await mkdir(dir, { recursive: true });
  const disk = path.join(dir, 'disk.qcow2');
  await createOverlay(art.rootfs, disk);
  const argv = buildQemuArgv({
    id: `bare${i}`, dir, disk, kernel: art.vmlinux, initrd: art.initrd, vcpus: 1, memoryMb: 256, accel,
    initMode: art.initMode, hostname: 'bare', tcgTbSizeMb: rt.config.vm.tcg_tb_size_mb, tscKhz: tscKhz(),
  }, rt.config.vm.qemu_binary);
  const t0 = performance.now();
  const child = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
  try {
    const sock = path.join(dir, 'agent.sock');
    await new Promise<void>((resolve, reject) => {
      const deadline = Date.now() + 300_000;
      const tryConnect = () => {
        const s = net.createConnection(sock);
        s.once('connect', () => {
          s.write(encodeJson(FrameType.HELLO, 1, { protocol: PROTOCOL_VERSION, client: 'bench' }));
          s.once('data', () => { s.destroy(); resolve(); });
        });
        s.once('error', () => {
          if (Date.now() > deadline) reject(new Error('bare boot timed out'));
          else setTimeout(tryConnect, 5);
        });
      };
      tryConnect();
    });
    return ms(t0);
  } finally {
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
  }
}

async function main(): Promise<void> {
  const config = loadConfig();
  const rt = await Runtime.open(config);
  const accel = await rt.accel();
  const work = await mkdtemp(path.join(config.paths.runDir, 'bench-'));
  console.log(`islet bench: accel=${accel.accel} (${accel.reason}), cores=${os.cpus().length}, boots=${N}, execs=${EXECS}`);
  try {
    // Interleave bare and islet boots so drift in host load hits both alike.
    const bare: number[] = [];
    const cold: number[] = [];
    for (let i = 0; i < (want('boot') || want('pool') ? N : 0); i++) {
      bare.push(await bareBoot(rt, accel.accel, work, i));
      const t0 = performance.now();
      const m = await rt.boot();
      cold.push(ms(t0));
      await m.destroy();
    }
    const bareMed = bare.length ? median(bare) : NaN;
    if (bare.length) {
      record({ metric: 'bare QEMU boot to first agent reply (median)', value: bareMed, unit: 'ms' });
      record({ metric: 'islet cold boot to agent ready (median)', value: median(cold), unit: 'ms', baseline: bareMed, ratio: median(cold) / bareMed });
    }

    if (want('boot')) benchRunCli(config, Math.min(N, 3), bareMed, record);

    if (want('exec')) await benchExec(rt, EXECS, record);
    if (want('mcp')) await benchMcp(config, rt, Math.min(N, 3), record);
    if (want('daemon')) await benchDaemon(config, Math.min(EXECS, 100), record);
    if (want('procs')) await benchProcs(rt, N, record);
    if (want('net')) await benchNet(config, record);
    if (want('snapshots')) await benchSnapshots(config, Math.min(N, 3), record);
    if (want('starts')) await benchStarts(config, Math.min(N, 3), record);
    if (want('pool')) await benchPool(config, Math.max(Math.min(N, 5), 3), bareMed, record);
    if (want('density')) await benchDensity(config, record);
    if (want('stress')) await benchStress(record, rows.find((r) => r.metric.startsWith('create -> first exec, template restore'))?.value);
    if (want('kernel')) await benchKernel(config, accel.accel, Math.min(N, 3), record);
    if (want('images')) await benchImages(config, record);
    // --sessions-cold adds the cold OpenCode start (6+ minutes under TCG) as the baseline.
    if (want('sessions')) await benchSessions(config, Math.min(N, 3), process.argv.includes('--sessions-cold'), record);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const outDir = path.resolve('bench/results');
  await mkdir(outDir, { recursive: true });
  const meta = { date: new Date().toISOString(), accel: accel.accel, cores: os.cpus().length, host: os.release(), boots: N, execs: EXECS };
  if (only) { // a partial run does not replace the full report
    console.log(`\n--only ${[...only].join(',')}: bench/results/latest.* left as they were`);
    return;
  }
  await writeFile(path.join(outDir, 'latest.json'), JSON.stringify({ meta, rows }, null, 2));
  const md = [`# islet bench ${meta.date}`, '', `accel ${meta.accel}, ${meta.cores} cores, host kernel ${meta.host}`, '',
    '| metric | value | unit | baseline | ratio |', '|---|---:|---|---:|---:|',
    ...rows.map((r) => `| ${r.metric} | ${r.value.toFixed(1)} | ${r.unit} | ${r.baseline?.toFixed(1) ?? ''} | ${r.ratio ? `${r.ratio.toFixed(2)}x` : ''} |`)];
  await writeFile(path.join(outDir, 'latest.md'), `${md.join('\n')}\n`);
  console.log(`\nwrote ${path.join(outDir, 'latest.md')} and latest.json`);
}

await main();
