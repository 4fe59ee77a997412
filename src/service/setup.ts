// `islet setup`: everything a host needs before its first VM, idempotent.
import type { Config } from '../core/config.js';
import { Progress, silent } from '../core/progress.js';
import { checkHostPackages, missingPackagesError } from '../host/packages.js';
import { chooseKernel } from '../images/custom-kernel.js';
import { DEFAULT_IMAGE, ensureArtifacts } from '../images/index.js';
import { startBackgroundKernelBuild } from '../images/kernel-background.js';
import { ensureEgressHelper } from '../net/egress-build.js';
import { gcCache } from './image-gc.js';
import { Runtime } from './runtime.js';

export interface SetupResult {
  summary: string[];
}

export async function setupHost(config: Config, o: { progress?: Progress; image?: string; installPackages?: boolean } = {}): Promise<SetupResult> {
  const progress = o.progress ?? silent;
  if (o.installPackages === false) {
    const missing = await checkHostPackages();
    if (missing.length) throw missingPackagesError(missing);
  }
  // base: `islet run`'s default and the KVM canary's image; [resources] default_image: what workspace_create boots
  // when no image is named (dev unless configured); --image: whatever else was asked for.
  const images = [...new Set([DEFAULT_IMAGE, config.resources.default_image, ...(o.image ? [o.image] : [])])];
  const built = [];
  for (const image of images) {
    const a = await ensureArtifacts(config, progress, { image });
    built.push(a);
    // A rebuild supersedes the image's older builds: prune those nothing uses (image-gc.ts).
    if (!a.image.reused) {
      const g = await gcCache(config, { only: `image:${image}` });
      if (g.removed.length) progress(`pruned ${g.removed.length} superseded build(s) of ${image}`);
    }
  }
  const a = built[0]!;
  // User mode's egress proxy (a guestfwd starts it per connection); any mode may switch to user mode later.
  const egress = await ensureEgressHelper(config, progress);
  const rt = await Runtime.open(config, { progress });
  const accel = await rt.accel();
  const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
  // Last, so the compile never competes with setup itself (docs/kernel.md).
  const bg = await startBackgroundKernelBuild(config, { installPackages: o.installPackages !== false });
  const choice = await chooseKernel(config, a.agent.key).catch((e: Error) => ({ kind: 'none', reason: e.message }));
  const kernelLine = bg.started
    ? `guest      ${choice.kind} kernel now; the custom kernel is building in the background (pid ${bg.pid}, nice 19, ~15 min on 2 cores; log ${bg.log}); ` +
      'VMs switch to it when it is ready (islet kernel status)'
    : `guest      ${choice.kind} kernel (${choice.reason})${bg.pid ? `; background build running (pid ${bg.pid}, log ${bg.log})` : choice.kind === 'custom' ? '' : `; no background build: ${bg.why}`}`;
  return {
    summary: [
      `agent      ${a.agent.path} (${mb(a.agent.sizeBytes)}, ${a.agent.goVersion})`,
      `kernel     distro ${a.kernel.vmlinux} (${a.kernel.version}, ${mb(a.kernel.vmlinuxBytes)})`,
      `initramfs  ${a.initramfs.path} (${mb(a.initramfs.sizeBytes)})`,
      kernelLine,
      `egress     ${egress}`,
      ...built.map(({ image: i }) => `image      ${i.name}: ${i.rootfs} (${mb(i.minBytes)} used, ${i.recipe.initMode} init)` +
        `${i.name === config.resources.default_image ? ' [workspace default]' : ''}`),
      `accel      ${accel.accel}: ${accel.reason}`,
    ],
  };
}
