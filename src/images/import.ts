// `islet image import`: a user's own ext4 root filesystem and kernel,
// validated and registered in the image cache next to the built images, so
// workspaces and `islet image verify` find it by name like any other.
//
// Allowed sources: files under the user's home directory or under [storage]
// data_dir, after resolving symlinks (realpath), so a link cannot point the
// import at /etc/shadow or another user's files. The rootfs is copied (a
// reflink where the filesystem supports it) and made read-only; the source
// is never modified.
//
// How the import then boots (the agent injected from the initramfs, the
// imported kernel when it is PVH-bootable, else islet's with a warning) is
// imported-boot.ts's job.
import { createHash } from 'node:crypto';
import { chmod, open, realpath, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../core/config.js';
import { FileNotFoundError, FileTooLargeError, InvalidArgumentError, PathOutsideAllowedError } from '../core/errors.js';
import { type Progress, silent } from '../core/progress.js';
import { run } from '../host/run.js';
import { cached, setCurrent } from './cache.js';
import { EM_X86_64, isElf } from './elf.js';
import { IMPORTED_KERNEL_FILE, type ImportedMeta, isPvhBootable, sha256File } from './imported-boot.js';
import { formatBytes, kindDir } from './paths.js';
import { IMAGE_NAME, listRecipeNames } from './recipe.js';
import { AGENT_IN_IMAGE, ROOTFS_FILE } from './rootfs.js';

export { IMPORTED_KERNEL_FILE } from './imported-boot.js';
/** Bump when what an import records changes: a new format is a new cache key (2: kernelUse, injectAgent). */
export const IMPORT_FORMAT = 2;
/** ext2/3/4 superblock: 1024 bytes in, s_magic at offset 56 of it. */
export const EXT4_MAGIC_OFFSET = 1080;
export const EXT4_MAGIC = 0xef53;
const ET_EXEC = 2;

export interface ImportRequest {
  name: string;
  kernel: string;
  rootfs: string;
  initMode?: 'fast' | 'full';
}

export interface ImportResult {
  name: string;
  key: string;
  rootfs: string;
  kernel: string;
  sizeBytes: number;
  reused: boolean;
  /** The rootfs has /usr/local/bin/islet-agent (needed only by full-init imports: fast ones get it injected). */
  hasAgent: boolean | null;
  /** "own": the imported vmlinux boots (it is PVH-bootable); "islet": islet's kernel does, and a warning says why. */
  kernelUse: 'own' | 'islet';
  injectAgent: boolean;
  warnings: string[];
}

/** Where imports may come from: the user's home and islet's data dir, symlinks resolved. */
export async function allowedImportRoots(config: Config): Promise<string[]> {
  const roots = [os.homedir(), config.paths.dataDir];
  const out: string[] = [];
  for (const r of roots) {
    const real = await realpath(r).catch(() => undefined);
    if (real && !out.includes(real)) out.push(real);
  }
  return out;
}

const within = (root: string, p: string) => {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
};

/**
 * realpath of an existing regular file inside one of roots, at most
 * maxBytes long, or a FILE_NOT_FOUND / PATH_OUTSIDE_ALLOWED / FILE_TOO_LARGE /
 * INVALID_ARGUMENT error. `absolute`: refuse relative paths and any ".."
 * segment outright (REST callers, whose working directory is not theirs).
 */
export async function resolveImportSource(
  what: 'kernel' | 'rootfs', p: string, roots: readonly string[], o: { maxBytes?: number; absolute?: boolean } = {},
): Promise<string> {
  if (!p) throw new InvalidArgumentError(`--${what} is required`);
  if (p.includes('\0')) throw new InvalidArgumentError(`${what} path contains a NUL byte`);
  if (o.absolute && (!path.isAbsolute(p) || p.split('/').includes('..'))) {
    throw new InvalidArgumentError(`${what} path ${JSON.stringify(p.slice(0, 200))} must be absolute, without ".." segments`, 'pass the file\'s absolute path on the daemon\'s host');
  }
  const abs = path.resolve(p);
  let real: string;
  try {
    real = await realpath(abs);
  } catch {
    throw new FileNotFoundError(`${what} ${abs} does not exist`, `check the --${what} path`, { [what]: abs });
  }
  if (!roots.some((r) => within(r, real))) {
    throw new PathOutsideAllowedError(
      `${what} ${abs}${real !== abs ? ` (→ ${real})` : ''} is outside the directories images may be imported from: ${roots.join(', ')}`,
      'copy the file under your home directory or [storage] data_dir first', { [what]: real, allowed: roots });
  }
  const st = await stat(real);
  if (!st.isFile()) throw new InvalidArgumentError(`${what} ${real} is not a regular file`, `pass a ${what === 'kernel' ? 'vmlinux' : 'raw ext4 image'} file`);
  if (o.maxBytes !== undefined && st.size > o.maxBytes) {
    throw new FileTooLargeError(`${what} ${real} is ${st.size} bytes, above the ${o.maxBytes} bytes imports may have`,
      'raise [images] import_max_mb, or shrink the filesystem (resize2fs -M)', { [what]: real, sizeBytes: st.size, maxBytes: o.maxBytes });
  }
  return real;
}

async function readAt(file: string, offset: number, length: number): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, offset);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** A raw ext2/3/4 filesystem (superblock magic 0xEF53 at byte 1080); not a partitioned disk, qcow2 or tarball. */
export async function assertExt4(file: string): Promise<void> {
  const b = await readAt(file, EXT4_MAGIC_OFFSET, 2);
  if (b.length === 2 && b.readUInt16LE(0) === EXT4_MAGIC) return;
  const head = await readAt(file, 0, 512);
  let what = 'no ext4 superblock magic (0xEF53 at byte 1080)';
  if (head.subarray(0, 4).toString('latin1') === 'QFI\xfb') what = 'it is a qcow2 image';
  else if (head.length === 512 && head.readUInt16LE(510) === 0xaa55) what = 'it looks like a partitioned disk (MBR/GPT), not a filesystem';
  throw new InvalidArgumentError(`rootfs ${file} is not an ext4 filesystem: ${what}`,
    'pass a raw ext4 filesystem image (e.g. made with mke2fs -t ext4 -d <tree>); convert qcow2 with qemu-img convert -O raw and extract the partition');
}

/** An uncompressed x86-64 ELF kernel (vmlinux), which QEMU's microvm boots via PVH. */
export async function assertVmlinux(file: string): Promise<void> {
  const head = await readAt(file, 0, 64);
  const bad = (why: string, hint = 'pass an uncompressed vmlinux (e.g. from linux-image-*-dbg, or extract-vmlinux on a bzImage)') =>
    new InvalidArgumentError(`kernel ${file} cannot boot in an islet microVM: ${why}`, hint);
  if (!isElf(head)) {
    const setup = await readAt(file, 0x202, 4);
    if (setup.toString('latin1') === 'HdrS') throw bad('it is a compressed bzImage, not an ELF vmlinux');
    throw bad('not an ELF file');
  }
  if (head[4] !== 2 || head[5] !== 1) throw bad('not a 64-bit little-endian ELF');
  if (head.readUInt16LE(18) !== EM_X86_64) throw bad(`built for ELF machine ${head.readUInt16LE(18)}, not x86-64`);
  if (head.readUInt16LE(16) !== ET_EXEC) throw bad('an ELF but not an executable (a module or shared object?)');
}

/** Does the ext4 image contain path? null if debugfs is not available. */
async function ext4Has(img: string, p: string): Promise<boolean | null> {
  const r = await run(['debugfs', '-R', `stat ${p}`, img], { allowFailure: true }).catch(() => undefined);
  if (!r) return null;
  return r.code === 0 && /Inode:/.test(r.stdout);
}

export async function importImage(
  config: Config, req: ImportRequest, progress: Progress = silent, o: { absolute?: boolean } = {},
): Promise<ImportResult> {
  const { name } = req;
  if (!IMAGE_NAME.test(name)) {
    throw new InvalidArgumentError(`invalid image name "${name}"`, 'use lowercase letters, digits and "-" (at most 40 characters)');
  }
  if ((await listRecipeNames()).includes(name)) {
    throw new InvalidArgumentError(`"${name}" is an image of the catalog (images/${name}/recipe.json)`, 'import under another name');
  }
  const roots = await allowedImportRoots(config);
  const limit = { maxBytes: config.images.import_max_mb * 1024 * 1024, absolute: o.absolute };
  const kernel = await resolveImportSource('kernel', req.kernel, roots, limit);
  const rootfs = await resolveImportSource('rootfs', req.rootfs, roots, limit);
  await assertVmlinux(kernel);
  await assertExt4(rootfs);
  const pvh = await isPvhBootable(kernel);

  progress(`import ${name}: hashing ${rootfs} and ${kernel}`);
  const [rh, kh] = await Promise.all([sha256File(rootfs), sha256File(kernel)]);
  const initMode = req.initMode ?? 'fast';
  const key = createHash('sha256').update(`import\0${IMPORT_FORMAT}\0${rh}\0${kh}\0${initMode}`).digest('hex').slice(0, 16);
  const imported: ImportedMeta = {
    rootfs, kernel, rootfsSha256: rh, kernelSha256: kh,
    kernelUse: pvh ? 'own' : 'islet',
    kernelReason: pvh ? 'the kernel has the PVH entry note' : 'KERNEL_NOT_PVH: the kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY), which QEMU\'s microvm boots through',
    injectAgent: initMode === 'fast',
  };
  const dir = kindDir.image(config, name);
  const entry = await cached(dir, key, async (tmp) => {
    const dst = path.join(tmp, ROOTFS_FILE);
    progress(`import ${name}: copying ${formatBytes((await stat(rootfs)).size)} rootfs`);
    await run(['cp', '--reflink=auto', '--sparse=always', rootfs, dst]);
    await run(['cp', '--reflink=auto', kernel, path.join(tmp, IMPORTED_KERNEL_FILE)]);
    await chmod(dst, 0o444);
    await chmod(path.join(tmp, IMPORTED_KERNEL_FILE), 0o444);
    const st = await stat(dst);
    // Shaped like a built image's meta (findArtifacts reads recipe.recipe.initMode).
    const recipe = { name, parent: null, chain: [name], initMode, imported: true, packages: [], npmPackages: [], scripts: [], files: [], services: [] };
    return {
      recipe: { recipe, imported },
      info: { imported: true, minBytes: st.size, allocatedBytes: st.blocks * 512 },
    };
  });
  await setCurrent(dir, key);
  const dst = path.join(entry.path, ROOTFS_FILE);
  const hasAgent = await ext4Has(dst, AGENT_IN_IMAGE);
  const warnings: string[] = [];
  if (initMode === 'full' && hasAgent === false) {
    warnings.push(`the rootfs has no ${AGENT_IN_IMAGE}: a full-init import starts the image's own agent through its systemd unit; install both, or import with --init fast (the agent is then injected)`);
  }
  if (!pvh) warnings.push(`${imported.kernelReason}: workspaces of ${name} boot islet's kernel instead`);
  return {
    name, key, rootfs: dst, kernel: path.join(entry.path, IMPORTED_KERNEL_FILE), sizeBytes: entry.meta.files[ROOTFS_FILE] ?? 0,
    reused: entry.reused, hasAgent, kernelUse: imported.kernelUse ?? 'islet', injectAgent: imported.injectAgent ?? false, warnings,
  };
}
