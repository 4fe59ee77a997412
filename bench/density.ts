// Host memory per idle VM: proportional set size (PSS, from
// /proc/PID/smaps_rollup, so pages shared between VMs count once in total)
// of K idle `base` VMs booted side by side, under QEMU's default TCG settings
// (translation cache default size, anonymous RAM, cold boot) and under
// islet's (tb-size from [vm] tcg_tb_size_mb; cold boot, then restored from a
// template: guest RAM a private copy-on-write mapping of the template file),
// and restored with a smaller translation cache ([vm] restore_tcg_tb_size_mb:
// the cache is the largest part of an idle restored VM under TCG).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../src/core/config.js';
import { silent } from '../src/core/progress.js';
import { Machine, newMachineId } from '../src/service/machine.js';
import { Runtime } from '../src/service/runtime.js';
import { freshIdentity } from '../src/service/identity.js';
import { Templates } from '../src/service/templates.js';
import type { Row } from './mcp.js';

const K = Number(process.env.BENCH_DENSITY_VMS ?? 3);
const SETTLE_MS = 5_000;
const NET = { restrict: true };

const pssMiB = (pid: number) => Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? NaN) / 1024;

/** Boots K VMs with `boot`, lets them idle, and returns their mean PSS in MiB. */
async function meanPss(boot: () => Promise<Machine>): Promise<number> {
  const ms: Machine[] = [];
  try {
    for (let i = 0; i < K; i++) ms.push(await boot());
    for (const m of ms) await m.exec({ argv: ['true'] });
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    return ms.reduce((n, m) => n + pssMiB(m.vm.pid), 0) / ms.length;
  } finally {
    await Promise.all(ms.map((m) => m.destroy({ graceMs: 500 })));
  }
}

export async function benchDensity(config: Config, record: (r: Row) => void): Promise<void> {
  const qemuDefault = await Runtime.open({ ...config, vm: { ...config.vm, tcg_tb_size_mb: 0 } });
  const rt = await Runtime.open(config);
  const shape = { vcpus: 1, memoryMb: 256 };
  const def = await meanPss(() => qemuDefault.boot({ ...shape, net: NET }));
  const cold = await meanPss(() => rt.boot({ ...shape, net: NET }));
  const restoredPss = async (r: Runtime) => {
    const templates = new Templates(r, silent);
    // restore_tcg_tb_size_mb is not in the template key: every runtime here restores the same template.
    const t = await templates.ensure({ image: 'base', ...shape, diskGb: 2, net: NET });
    return meanPss(async () => {
      const id = newMachineId();
      const m = await templates.restore(t, { id, disk: path.join(r.diskDir, `${id}.qcow2`), hostname: 'density', net: NET, detached: false });
      await freshIdentity(m, `density-${id}`);
      return m;
    });
  };
  const restored = await restoredPss(rt);
  const smallCache: Array<[number, number]> = [];
  for (const tb of [16, 8]) smallCache.push([tb, await restoredPss(await Runtime.open({ ...config, vm: { ...config.vm, restore_tcg_tb_size_mb: tb } }))]);
  const note = `mean of ${K} idle 256 MiB base VMs side by side`;
  record({ metric: 'idle VM PSS, QEMU default TCG settings', value: def, unit: 'MiB', note: `${note}; default tb-size, cold boot` });
  record({ metric: `idle VM PSS, islet cold boot (tb-size ${config.vm.tcg_tb_size_mb})`, value: cold, unit: 'MiB', baseline: def, ratio: cold / def, note });
  const restoreTb = config.vm.restore_tcg_tb_size_mb || config.vm.tcg_tb_size_mb;
  record({ metric: `idle VM PSS, islet template restore (CoW RAM, tb-size ${restoreTb})`, value: restored, unit: 'MiB', baseline: def, ratio: restored / def,
    note: `${note}; baseline: QEMU default TCG settings` });
  for (const [tb, v] of smallCache) {
    record({ metric: `idle VM PSS, template restore, restore_tcg_tb_size_mb = ${tb}`, value: v, unit: 'MiB', baseline: restored, ratio: v / restored,
      note: `${note}; baseline: the restore above` });
  }
}
