// The guest kernel: Debian's cloud kernel, fetched with apt-get download (not
// installed), reduced to the uncompressed vmlinux QEMU boots plus the few
// virtio modules the initramfs loads. Everything else in the .deb is dropped.
import { copyFile, mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../core/config.js';
import { HostPrerequisiteError } from '../core/errors.js';
import type { Progress } from '../core/progress.js';
import { run } from '../host/run.js';
import { cached, cacheKey, removeTree, setCurrent } from './cache.js';
import { imageBuildFailed } from './errors.js';
import { GUEST_MODULES, resolveModuleDirs, resolveModules, ROOTFS_MODULE_DIRS, ROOTFS_MODULE_INDEX_FILES } from './modules.js';
import { type BuildOptions, formatBytes, isRoot, kindDir } from './paths.js';
import { extractVmlinux } from './vmlinux.js';

// 6.1 is the series measured to boot under microvm with this module list
// (LAB.md); a newer series needs its own check before it becomes the default.
const KERNEL_SEARCH = '^linux-image-6\\.1\\.0-[0-9]+-cloud-amd64$';
const KERNEL_NAME = /^linux-image-6\.1\.0-(\d+)-cloud-amd64$/;
const APT_LISTS = '/var/lib/apt/lists';
// 2: also keeps the rootfs module set (ROOTFS_MODULE_DIRS) under rootfs-modules/.
const KERNEL_FORMAT = 2;
/** lib/modules/<release> of the modules images with kmod get (same layout, relative paths kept). */
export const ROOTFS_MODULES_DIR = 'rootfs-modules';

export interface KernelArtifact {
  vmlinux: string;
  /** Holds <module>.ko for each module in `modules`, and `order`. */
  modulesDir: string;
  /** Module names in load order, dependencies first. */
  modules: string[];
  /** The rootfs module set as lib/modules/<release>/ (kernel/..., modules.builtin, ...); depmod runs in the image. */
  rootfsModulesDir: string;
  /** Its .ko files, relative to rootfsModulesDir. */
  rootfsModules: string[];
  /** Kernel release, as `uname -r` will print it in the guest. */
  version: string;
  package: string;
  packageVersion: string;
  key: string;
  vmlinuxBytes: number;
  reused: boolean;
}

export interface KernelPackage {
  name: string;
  version: string;
}

/** The newest linux-image-6.1.0-N-cloud-amd64 among `apt-cache search` output lines. */
export function newestKernelPackage(searchOutput: string): string | undefined {
  const names = searchOutput.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => KERNEL_NAME.test(n));
  return names.sort((a, b) => Number(KERNEL_NAME.exec(a)?.[1]) - Number(KERNEL_NAME.exec(b)?.[1])).pop();
}

// apt-cache reparses every package list (~0.5 s each call here), which would
// make a fully cached run slow. The answer only changes when the lists do,
// so it is remembered against their names, sizes and mtimes.
async function aptListsStamp(): Promise<string> {
  try {
    const names = (await readdir(APT_LISTS)).filter((n) => n.includes('_Packages')).sort();
    const parts = await Promise.all(names.map(async (n) => {
      const s = await stat(path.join(APT_LISTS, n));
      return `${n}:${s.size}:${s.mtimeMs}`;
    }));
    return parts.join('\n');
  } catch {
    return '';
  }
}

async function aptCache(args: string[], signal?: AbortSignal) {
  return run(['apt-cache', ...args], { signal, allowFailure: true, timeoutMs: 60_000 });
}

async function queryKernelPackage(configured: string | undefined, signal?: AbortSignal): Promise<KernelPackage | undefined> {
  const name = configured ?? newestKernelPackage((await aptCache(['search', '--names-only', KERNEL_SEARCH], signal)).stdout);
  if (!name) return undefined;
  const show = await aptCache(['show', '--no-all-versions', name], signal);
  const version = /^Version: (\S+)$/m.exec(show.stdout)?.[1];
  return version ? { name, version } : undefined;
}

export async function resolveKernelPackage(config: Config, progress: Progress, opts: BuildOptions = {}): Promise<KernelPackage> {
  const configured = config.images.kernel_package;
  const memoFile = path.join(kindDir.kernel(config), 'resolved.json');
  const stamp = await aptListsStamp();
  try {
    const m = JSON.parse(await readFile(memoFile, 'utf8')) as { stamp: string; configured: string | null; pkg: KernelPackage };
    if (stamp && m.stamp === stamp && m.configured === (configured ?? null)) return m.pkg;
  } catch { /* no memo yet */ }

  let pkg = await queryKernelPackage(configured, opts.signal);
  if (!pkg && isRoot()) {
    // Empty or stale lists (fresh container, or a pinned version apt has not seen).
    progress('kernel: apt has no matching package; running apt-get update');
    await run(['apt-get', 'update', '-q'], { signal: opts.signal, timeoutMs: 10 * 60_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    pkg = await queryKernelPackage(configured, opts.signal);
  }
  if (!pkg) {
    const what = configured ?? 'linux-image-6.1.0-*-cloud-amd64';
    if (!stamp || !isRoot()) {
      throw new HostPrerequisiteError(`apt knows no package ${what} (its package lists may be empty or stale)`, 'sudo apt-get update', { package: what });
    }
    throw imageBuildFailed(`apt offers no package ${what} even after apt-get update`,
      configured ? 'fix images.kernel_package in the config' : 'add a Debian bookworm mirror to the apt sources', { package: what });
  }
  await mkdir(path.dirname(memoFile), { recursive: true });
  const tmp = `${memoFile}.${process.pid}`;
  await writeFile(tmp, JSON.stringify({ stamp: await aptListsStamp(), configured: configured ?? null, pkg }) + '\n');
  await rename(tmp, memoFile);
  return pkg;
}

export async function ensureKernel(config: Config, progress: Progress, opts: BuildOptions = {}): Promise<KernelArtifact> {
  const pkg = await resolveKernelPackage(config, progress, opts);
  const recipe = { package: pkg.name, version: pkg.version, modules: GUEST_MODULES, rootfsModules: ROOTFS_MODULE_DIRS, format: KERNEL_FORMAT };
  const key = cacheKey(['kernel', recipe]);
  const dir = kindDir.kernel(config);

  const entry = await cached(dir, key, async (tmp) => {
    const dl = path.join(tmp, 'download');
    const tree = path.join(tmp, 'tree');
    await mkdir(dl);
    progress(`kernel: apt-get download ${pkg.name}=${pkg.version}`);
    await run(['apt-get', 'download', '-q', `${pkg.name}=${pkg.version}`], {
      cwd: dl, signal: opts.signal, timeoutMs: 20 * 60_000,
      onLine: (l) => { if (l.startsWith('Get:')) progress(`kernel: ${l}`); },
    });
    const deb = (await readdir(dl)).find((n) => n.endsWith('.deb'));
    if (!deb) throw imageBuildFailed(`apt-get download ${pkg.name} produced no .deb`, 'run the command by hand', { dir: dl });
    await run(['dpkg', '-x', path.join(dl, deb), tree], { signal: opts.signal });

    const boot = await readdir(path.join(tree, 'boot')).catch(() => [] as string[]);
    const vmlinuz = boot.find((n) => n.startsWith('vmlinuz-'));
    if (!vmlinuz) {
      throw imageBuildFailed(`${pkg.name} contains no /boot/vmlinuz-*`,
        'images.kernel_package must name a versioned kernel image (linux-image-<release>-cloud-amd64), not a metapackage', { package: pkg.name });
    }
    const release = vmlinuz.slice('vmlinuz-'.length);
    progress(`kernel: extracting vmlinux from ${vmlinuz}`);
    const found = await extractVmlinux(path.join(tree, 'boot', vmlinuz), path.join(tmp, 'vmlinux'), tmp, opts);

    const mods = await resolveModules(path.join(tree, 'lib', 'modules', release), GUEST_MODULES);
    const modulesDir = path.join(tmp, 'modules');
    await mkdir(modulesDir);
    for (const m of mods) await copyFile(m.file, path.join(modulesDir, `${m.name}.ko`));
    await writeFile(path.join(modulesDir, 'order'), mods.map((m) => m.name).join('\n') + '\n');

    const releaseDir = path.join(tree, 'lib', 'modules', release);
    const rootfsMods = await resolveModuleDirs(releaseDir, ROOTFS_MODULE_DIRS);
    for (const rel of [...rootfsMods, ...ROOTFS_MODULE_INDEX_FILES]) {
      const dest = path.join(tmp, ROOTFS_MODULES_DIR, rel);
      await mkdir(path.dirname(dest), { recursive: true });
      // The index files only help modprobe and depmod; a package without them still works.
      const optional = ROOTFS_MODULE_INDEX_FILES.includes(rel);
      await copyFile(path.join(releaseDir, rel), dest).catch((e: NodeJS.ErrnoException) => { if (!optional || e.code !== 'ENOENT') throw e; });
    }

    await removeTree(dl);
    await removeTree(tree);
    progress(`kernel: ${release}: vmlinux ${formatBytes(found.sizeBytes)} (${found.kind} at offset ${found.offset}), ${mods.length} modules` +
      ` for the initramfs, ${rootfsMods.length} for images with kmod`);
    return {
      recipe,
      info: {
        release,
        compression: found.kind,
        payloadOffset: found.offset,
        modules: mods.map((m) => ({ name: m.name, depends: m.depends })),
        rootfsModules: rootfsMods,
      },
    };
  });
  await setCurrent(dir, key);
  return kernelFromEntry(entry.path, entry.meta.info, pkg, key, entry.meta.files, entry.reused);
}

/** Rebuilds the artifact view from a cache entry (also used by findArtifacts). */
export function kernelFromEntry(
  dir: string, info: Record<string, unknown>, pkg: KernelPackage, key: string, files: Record<string, number>, reused: boolean,
): KernelArtifact {
  const modules = ((info.modules ?? []) as { name: string }[]).map((m) => m.name);
  return {
    vmlinux: path.join(dir, 'vmlinux'),
    modulesDir: path.join(dir, 'modules'),
    modules,
    rootfsModulesDir: path.join(dir, ROOTFS_MODULES_DIR),
    rootfsModules: Array.isArray(info.rootfsModules) ? (info.rootfsModules as string[]) : [],
    version: String(info.release ?? ''),
    package: pkg.name,
    packageVersion: pkg.version,
    key,
    vmlinuxBytes: files.vmlinux ?? 0,
    reused,
  };
}
