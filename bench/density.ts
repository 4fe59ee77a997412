// Host memory per idle VM: proportional set size (PSS, from
// /proc/PID/smaps_rollup, so pages shared between VMs count once in total)
// of K idle `base` VMs booted side by side, under QEMU's default TCG settings
// (translation cache default size, anonymous RAM, cold boot) and under
// islet's (tb-size from [vm] tcg_tb_size_mb; cold boot, then restored from a
// template: guest RAM a private copy-on-write mapping of the template file).
// Then one row per density lever, each against the default restore of the
// same run: a smaller translation cache for restores ([vm]
// restore_tcg_tb_size_mb), and KSM over guest RAM where the host has it.
// Each restore row also gives create → first exec (the lever's price) and
// the private part (USS): what one more VM adds once K is large.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../src/core/config.js';
import { silent } from '../src/core/progress.js';
import { Machine, newMachineId } from '../src/service/machine.js';
import { Runtime } from '../src/service/runtime.js';
import { freshIdentity } from '../src/service/identity.js';
import { Templates, type Template } from '../src/service/templates.js';
import type { Row } from './mcp.js';
import { meanBreakdown, smapsBreakdown, type PartMem, type Part } from './smaps.js';

const K = Number(process.env.BENCH_DENSITY_VMS ?? 3);
const SETTLE_MS = 5_000;
const NET = { restrict: true };
const KSM = '/sys/kernel/mm/ksm';

const rollup = (pid: number, k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? NaN) / 1024;

interface Idle { pss: number; uss: number; firstExecMs: number; parts: Array<Map<Part, PartMem>> }

/**
 * Boots K VMs with `boot`, each to its first exec, lets them idle (and runs
 * `during` on them), and returns their mean PSS and USS in MiB.
 */
async function idle(boot: () => Promise<Machine>, o: { ramPath?: string; tbMiB?: number; during?: () => Promise<void> } = {}): Promise<Idle> {
  const ms: Machine[] = [];
  let firstExec = 0;
  try {
    for (let i = 0; i < K; i++) {
      const t0 = performance.now();
      const m = await boot();
      ms.push(m);
      await m.exec({ argv: ['true'] });
      firstExec += performance.now() - t0;
    }
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    await o.during?.();
    const mean = (f: (pid: number) => number) => ms.reduce((n, m) => n + f(m.vm.pid), 0) / ms.length;
    return {
      pss: mean((p) => rollup(p, 'Pss')), uss: mean((p) => rollup(p, 'Private_Clean') + rollup(p, 'Private_Dirty')), firstExecMs: firstExec / K,
      parts: ms.map((m) => smapsBreakdown(m.vm.pid, { ramPath: o.ramPath, tbMiB: o.tbMiB ?? 0 })),
    };
  } finally {
    await Promise.all(ms.map((m) => m.destroy({ graceMs: 500 })));
  }
}

/** KSM over the VMs' mergeable memory (QEMU marks guest RAM so) for the time of `f`, when the host has it and it is off; restored after. */
async function withKsm<T>(f: (scan: () => Promise<void>) => Promise<T>): Promise<T | undefined> {
  const run = (v?: string) => (v === undefined ? readFileSync(`${KSM}/run`, 'utf8').trim() : writeFileSync(`${KSM}/run`, v));
  if (!existsSync(`${KSM}/run`) || run() !== '0') return undefined;
  const knobs = ['pages_to_scan', 'sleep_millisecs'].map((k) => [k, readFileSync(`${KSM}/${k}`, 'utf8').trim()] as const);
  try {
    writeFileSync(`${KSM}/pages_to_scan`, '20000');
    writeFileSync(`${KSM}/sleep_millisecs`, '20');
    return await f(async () => {
      run('1');
      // Two full scans: a page merges when it is seen unchanged on the second.
      const scans = () => Number(readFileSync(`${KSM}/full_scans`, 'utf8'));
      const s0 = scans();
      const t0 = Date.now();
      while (scans() < s0 + 3 && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 250));
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EACCES' || (e as NodeJS.ErrnoException).code === 'EROFS') return undefined;
    throw e;
  } finally {
    try { run('2'); run('0'); } catch { /* not ours to set */ } // 2: unmerge what this run merged
    for (const [k, v] of knobs) try { writeFileSync(`${KSM}/${k}`, v); } catch { /* as above */ }
  }
}

export async function benchDensity(config: Config, record: (r: Row) => void): Promise<void> {
  const qemuDefault = await Runtime.open({ ...config, vm: { ...config.vm, tcg_tb_size_mb: 0 } });
  const rt = await Runtime.open(config);
  const shape = { vcpus: 1, memoryMb: 256 };
  const def = await idle(() => qemuDefault.boot({ ...shape, net: NET }));
  const cold = await idle(() => rt.boot({ ...shape, net: NET }), { tbMiB: config.vm.tcg_tb_size_mb });
  // restore_tcg_tb_size_mb is not in the template key: every runtime here restores the same template.
  const t: Template = await new Templates(rt, silent).ensure({ image: 'base', ...shape, diskGb: 2, net: NET });
  const restored = async (r: Runtime, during?: () => Promise<void>) => {
    const templates = new Templates(r, silent);
    return idle(async () => {
      const id = newMachineId();
      const m = await templates.restore(t, { id, disk: path.join(r.diskDir, `${id}.qcow2`), hostname: 'density', net: NET, detached: false });
      await freshIdentity(m, `density-${id}`);
      return m;
    }, { ramPath: t.mem, tbMiB: r.config.vm.restore_tcg_tb_size_mb || r.config.vm.tcg_tb_size_mb, during });
  };
  const restoreTb = config.vm.restore_tcg_tb_size_mb || config.vm.tcg_tb_size_mb;
  const base = await restored(rt);
  const tbs: Array<[number, Idle]> = [];
  for (const tb of [32, 24, 16, 8].filter((n) => n !== restoreTb)) {
    tbs.push([tb, await restored(await Runtime.open({ ...config, vm: { ...config.vm, restore_tcg_tb_size_mb: tb } }))]);
  }
  const ksm = await withKsm((scan) => restored(rt, scan));

  const note = `mean of ${K} idle 256 MiB base VMs side by side`;
  const uss = (i: Idle) => `USS ${i.uss.toFixed(1)} MiB`;
  record({ metric: 'idle VM PSS, QEMU default TCG settings', value: def.pss, unit: 'MiB', note: `${note}; default tb-size, cold boot; ${uss(def)}` });
  record({ metric: `idle VM PSS, islet cold boot (tb-size ${config.vm.tcg_tb_size_mb})`, value: cold.pss, unit: 'MiB', baseline: def.pss, ratio: cold.pss / def.pss, note: `${note}; ${uss(cold)}` });
  record({ metric: `idle VM PSS, islet template restore (CoW RAM, tb-size ${restoreTb})`, value: base.pss, unit: 'MiB', baseline: def.pss, ratio: base.pss / def.pss,
    note: `${note}; baseline: QEMU default TCG settings; ${uss(base)}; restore to first exec ${base.firstExecMs.toFixed(0)} ms` });
  for (const b of meanBreakdown(base.parts)) {
    record({ metric: `  restore (tb-size ${restoreTb}) PSS: ${b.part}`, value: b.pssMiB, unit: 'MiB', note: `private dirty ${b.privateDirtyMiB.toFixed(1)} MiB, RSS ${b.rssMiB.toFixed(1)} MiB` });
  }
  for (const [tb, v] of tbs) {
    const tbPart = meanBreakdown(v.parts).find((p) => p.part === 'TCG translation cache')?.pssMiB ?? NaN;
    record({ metric: `idle VM PSS, template restore, restore_tcg_tb_size_mb = ${tb}`, value: v.pss, unit: 'MiB', baseline: base.pss, ratio: v.pss / base.pss,
      note: `${note}; baseline: the restore above; ${uss(v)}; translation cache ${tbPart.toFixed(1)} MiB; restore to first exec ${v.firstExecMs.toFixed(0)} ms (default ${base.firstExecMs.toFixed(0)})` });
  }
  if (ksm) {
    record({ metric: 'idle VM PSS, template restore, host KSM on (guest RAM mergeable)', value: ksm.pss, unit: 'MiB', baseline: base.pss, ratio: ksm.pss / base.pss,
      note: `${note}; baseline: the restore above; ${uss(ksm)}; after 3 full KSM scans; KSM was off and is off again` });
  } else {
    record({ metric: 'idle VM PSS, template restore, host KSM on', value: NaN, unit: 'MiB', note: 'not measured: no /sys/kernel/mm/ksm, not writable, or already on (then every row above has it)' });
  }
}
