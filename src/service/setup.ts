// `islet setup`: everything a host needs before its first VM, idempotent.
import type { Config } from '../core/config.js';
import { Progress, silent } from '../core/progress.js';
import { checkHostPackages, missingPackagesError } from '../host/packages.js';
import { ensureArtifacts } from '../images/index.js';
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
  const a = await ensureArtifacts(config, progress, { image: o.image });
  const rt = await Runtime.open(config, { progress });
  const accel = await rt.accel();
  const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
  return {
    summary: [
      `agent      ${a.agent.path} (${mb(a.agent.sizeBytes)}, ${a.agent.goVersion})`,
      `kernel     ${a.kernel.vmlinux} (${a.kernel.version}, ${mb(a.kernel.vmlinuxBytes)})`,
      `initramfs  ${a.initramfs.path} (${mb(a.initramfs.sizeBytes)})`,
      `image      ${a.image.name}: ${a.image.rootfs} (${mb(a.image.minBytes)} used, ${a.image.recipe.initMode} init)`,
      `accel      ${accel.accel}: ${accel.reason}`,
    ],
  };
}
