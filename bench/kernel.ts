// Kernel figures: the vmlinux size of the distro kernel and of the custom
// kernel (`islet kernel build`, docs/kernel.md), and boot-to-agent (Machine
// bootMs: overlay, QEMU start, agent hello) of the base image under each,
// interleaved so drift in host load hits both alike. The distro kernel is the
// baseline. Without a custom kernel, only the distro rows are recorded and a
// note says how to get the rest.
import type { Config } from '../src/core/config.js';
import { chooseKernel } from '../src/images/custom-kernel.js';
import { findArtifacts } from '../src/images/index.js';
import type { Accel } from '../src/vmm/argv.js';
import { Runtime } from '../src/service/runtime.js';
import type { Row } from './mcp.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const MB = 1e6;

export async function benchKernel(config: Config, accel: Accel, n: number, record: (r: Row) => void): Promise<void> {
  const found = await findArtifacts(config);
  const distro = found.kernel;
  if (!distro) throw new Error('no distro kernel built: run `islet setup`');
  const distroNote = `${distro.version}, + initramfs ${((found.initramfs?.sizeBytes ?? 0) / MB).toFixed(1)} MB with ${distro.modules.length} modules`;
  record({ metric: 'distro kernel vmlinux size', value: distro.vmlinuxBytes / MB, unit: 'MB', note: distroNote });

  // Both runtimes get the accelerator already chosen, so neither runs a canary of its own.
  const cfg = (kernel: 'auto' | 'distro' | 'custom'): Config => ({ ...config, vm: { ...config.vm, kernel, accel, kernel_path: undefined, initrd_path: undefined } });
  const custom = (await chooseKernel(cfg('auto'), found.agent?.key)).custom;
  if (!custom) {
    record({ metric: 'custom kernel', value: 0, unit: '-', note: 'not built: run `islet kernel build` (docs/kernel.md) for its size and boot figures' });
    return;
  }
  record({
    metric: 'custom kernel vmlinux size', value: custom.vmlinuxBytes / MB, unit: 'MB', baseline: distro.vmlinuxBytes / MB,
    ratio: custom.vmlinuxBytes / distro.vmlinuxBytes,
    note: `${custom.release}, built in ${(custom.buildMs / 60_000).toFixed(1)} min${custom.incremental ? ' (incremental)' : ''}, ${custom.compiledFiles} files`,
  });

  const runtimes = { distro: await Runtime.open(cfg('distro')), custom: await Runtime.open(cfg('custom')) };
  const boots: Record<'distro' | 'custom', number[]> = { distro: [], custom: [] };
  for (let i = 0; i < Math.max(3, n); i++) {
    for (const k of ['distro', 'custom'] as const) {
      const m = await runtimes[k].boot({ memoryMb: 256 });
      boots[k].push(m.bootMs);
      await m.destroy();
    }
  }
  const d = median(boots.distro);
  const c = median(boots.custom);
  const samples = (xs: number[]) => `samples ${xs.join(', ')} ms`;
  record({ metric: `distro kernel boot to agent (median of ${boots.distro.length})`, value: d, unit: 'ms', note: samples(boots.distro) });
  record({ metric: `custom kernel boot to agent (median of ${boots.custom.length})`, value: c, unit: 'ms', baseline: d, ratio: c / d, note: samples(boots.custom) });
}
