// The kernel and initramfs built from this checkout, as [vm] overrides. The
// image cache's "current" pointers are shared by every checkout on the host
// and move whenever one builds; a test of a stage-1 change pins its own.
import { silent } from '../src/core/progress.js';
import { loadConfig } from '../src/core/config.js';
import { ensureAgent } from '../src/images/agent-build.js';
import { chooseKernel } from '../src/images/custom-kernel.js';
import { ensureInitramfs } from '../src/images/initramfs.js';
import { ensureKernel } from '../src/images/kernel.js';

export async function pinnedBoot(): Promise<{ kernel_path: string; initrd_path: string }> {
  const config = loadConfig();
  const agent = await ensureAgent(config, silent);
  // The kernel VMs boot by default ([vm] kernel = "auto": the custom one once built), with this checkout's agent.
  const custom = (await chooseKernel(config, agent.key)).custom;
  if (custom) return { kernel_path: custom.vmlinux, initrd_path: custom.initrd };
  const kernel = await ensureKernel(config, silent);
  const initrd = await ensureInitramfs(config, kernel, agent, silent);
  return { kernel_path: kernel.vmlinux, initrd_path: initrd.path };
}
