// How an imported image boots. Two decisions, both made from the image's
// cache entry (meta.json), never from the user's original files:
//
// - The agent. A fast-init import is booted with islet.agent=initramfs:
//   stage 1 copies the agent it runs as (the initramfs /init) onto a tmpfs
//   on the new root's /run and execs that copy as PID 1. The image needs
//   no agent of its own, and one it has (possibly older than the host's
//   protocol) is ignored. Full-init imports keep their own agent and unit.
// - The kernel. The imported vmlinux boots when it has the PVH entry note
//   QEMU's microvm needs; otherwise (decided at import, recorded as
//   kernelUse "islet") islet's own kernel does. An imported kernel has no
//   modules islet could load, so it gets an initramfs with none, unless it
//   is byte for byte the distro or custom kernel islet built, which keep
//   their own initramfs.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../core/config.js';
import { cached, cacheKey, getCurrent } from './cache.js';
import { writeCpio } from './cpio.js';
import { hasPvhNote } from './kernel-config.js';
import { sectionData } from './elf.js';
import { INITRAMFS_FILE, INITRAMFS_FORMAT, initramfsEntries } from './initramfs.js';
import { kindDir } from './paths.js';

export const IMPORTED_KERNEL_FILE = 'vmlinux';
/** The kernel command-line word that makes stage 1 inject the agent. */
export const INJECT_AGENT_WORD = 'islet.agent=initramfs';

/** What import records in meta.recipe.imported (format 2; format 1 had neither kernelUse nor injectAgent). */
export interface ImportedMeta {
  rootfs: string;
  kernel: string;
  rootfsSha256: string;
  kernelSha256: string;
  kernelUse?: 'own' | 'islet';
  kernelReason?: string;
  injectAgent?: boolean;
}

export interface ImportedBoot {
  injectAgent: boolean;
  kernelUse: 'own' | 'islet';
  /** Set when kernelUse is "own". */
  vmlinux?: string;
  initrd?: string;
  kernelKey?: string;
}

/** True when the ELF kernel has the Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY), i.e. QEMU's microvm can boot it. */
export async function isPvhBootable(vmlinux: string): Promise<boolean> {
  const notes = sectionData(await readFile(vmlinux), '.notes');
  return notes !== undefined && hasPvhNote(notes);
}

export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

// A vmlinux is ~50 MB: hash each file once per process (and only when the sizes match).
const hashes = new Map<string, Promise<string>>();
async function sameFile(a: string, b: string): Promise<boolean> {
  const [sa, sb] = await Promise.all([stat(a).catch(() => undefined), stat(b).catch(() => undefined)]);
  if (!sa || !sb || sa.size !== sb.size) return false;
  const h = (f: string, s: { mtimeMs: number }) => {
    const k = `${f}\0${s.mtimeMs}`;
    let p = hashes.get(k);
    if (!p) hashes.set(k, (p = sha256File(f)));
    return p;
  };
  return (await h(a, sa)) === (await h(b, sb));
}

/** The initramfs for a kernel islet knows nothing about: the agent, no modules (the kernel must have virtio and ext4 built in). */
export async function ensureBareInitramfs(config: Config, agent: { path: string; key: string }): Promise<string> {
  const e = await cached(kindDir.initramfs(config), cacheKey(['initramfs-bare', { agent: agent.key, format: INITRAMFS_FORMAT }]), async (tmp) => {
    await writeFile(path.join(tmp, INITRAMFS_FILE), writeCpio(initramfsEntries(await readFile(agent.path), [])));
    return { recipe: { bare: true, agent: agent.key, format: INITRAMFS_FORMAT } };
  });
  return path.join(e.path, INITRAMFS_FILE);
}

export async function readImportedMeta(config: Config, image: string): Promise<{ dir: string; key: string; meta: ImportedMeta } | undefined> {
  const e = await getCurrent(kindDir.image(config, image));
  const imported = (e?.meta.recipe as { imported?: ImportedMeta } | null | undefined)?.imported;
  return e && imported ? { dir: e.path, key: e.key, meta: imported } : undefined;
}

/**
 * The boot plan of an imported image, or undefined for a built one.
 * `known` are islet's own kernels ({vmlinux, initrd}) that an imported
 * kernel may be a copy of.
 */
export async function importedBoot(
  config: Config, image: string, agent: { path: string; key: string } | undefined,
  known: readonly { vmlinux: string; initrd: string }[],
): Promise<ImportedBoot | undefined> {
  const found = await readImportedMeta(config, image);
  if (!found) return undefined;
  const { meta, dir, key } = found;
  const injectAgent = meta.injectAgent === true;
  if (meta.kernelUse !== 'own') return { injectAgent, kernelUse: 'islet' };
  const vmlinux = path.join(dir, IMPORTED_KERNEL_FILE);
  let initrd: string | undefined;
  for (const k of known) {
    if (existsSync(k.initrd) && await sameFile(vmlinux, k.vmlinux)) {
      initrd = k.initrd;
      break;
    }
  }
  if (!initrd && agent) initrd = await ensureBareInitramfs(config, agent);
  return { injectAgent, kernelUse: 'own', vmlinux, initrd, kernelKey: `import:${image}:${key}` };
}
