// What a VM boots from: the built artifacts (or the config's overrides).
// Looking only, never building: building is `islet setup`'s job.
import { existsSync } from 'node:fs';
import type { Config } from '../core/config.js';
import { ImageNotFoundError } from '../core/errors.js';
import { chooseKernel } from '../images/custom-kernel.js';
import { findArtifacts } from '../images/index.js';
import { importedBoot } from '../images/imported-boot.js';
import type { BootArtifacts } from './machine.js';

export async function resolveBootArtifacts(config: Config, image: string): Promise<BootArtifacts & { kernelKey: string }> {
  const found = await findArtifacts(config, { image });
  // [vm] kernel: the custom kernel (islet kernel build) boots with its own module-less initramfs.
  const custom = (await chooseKernel(config, found.agent?.key)).custom;
  // An imported image may bring its own kernel (imported-boot.ts); [vm] kernel_path still wins.
  const known = [custom && { vmlinux: custom.vmlinux, initrd: custom.initrd }, found.kernel && found.initramfs && { vmlinux: found.kernel.vmlinux, initrd: found.initramfs.path }]
    .filter((k): k is { vmlinux: string; initrd: string } => !!k);
  const imp = config.vm.kernel_path ? undefined : await importedBoot(config, image, found.agent, known);
  const own = imp?.kernelUse === 'own' ? imp : undefined;
  const vmlinux = config.vm.kernel_path ?? own?.vmlinux ?? custom?.vmlinux ?? found.kernel?.vmlinux;
  const initrd = config.vm.initrd_path ?? own?.initrd ?? custom?.initrd ?? found.initramfs?.path;
  if (!vmlinux) throw new ImageNotFoundError(image, 'no kernel has been built');
  if (!initrd) throw new ImageNotFoundError(image, 'no initramfs has been built');
  if (!found.image) throw new ImageNotFoundError(image, 'this image has not been built');
  if (config.vm.kernel_path && !existsSync(vmlinux)) throw new ImageNotFoundError(image, `[vm] kernel_path ${vmlinux} does not exist`);
  if (config.vm.initrd_path && !existsSync(initrd)) throw new ImageNotFoundError(image, `[vm] initrd_path ${initrd} does not exist`);
  return {
    vmlinux,
    initrd,
    rootfs: found.image.rootfs,
    initMode: found.image.recipe.initMode,
    injectAgent: imp?.injectAgent ?? false,
    kernelKey: config.vm.kernel_path ? `path:${vmlinux}` : (own?.kernelKey ?? custom?.key ?? found.kernel?.key ?? 'unknown'),
  };
}
