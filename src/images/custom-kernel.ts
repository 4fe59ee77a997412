// `islet kernel build`: a minimal microVM kernel compiled from Debian's
// linux-source package with everything built in (no modules), and the small
// initramfs it boots with (the agent alone, no modules to load). Optional:
// the distro kernel + initramfs remain the default until one is built.
import { existsSync } from 'node:fs';
import { appendFile, copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../core/config.js';
import { IsletError } from '../core/errors.js';
import type { Progress } from '../core/progress.js';
import { ensurePackages, type HostPackage } from '../host/packages.js';
import { run } from '../host/run.js';
import type { AgentArtifact } from './agent-build.js';
import { cached, cacheKey, getCurrent, readEntry, removeTree, setCurrent } from './cache.js';
import { writeCpio } from './cpio.js';
import { sectionData } from './elf.js';
import { imageBuildFailed } from './errors.js';
import { INITRAMFS_FILE, INITRAMFS_FORMAT, initramfsEntries } from './initramfs.js';
import {
  BASE_CONFIG, CUSTOM_KERNEL_FORMAT, customKernelKey, type Fragment, hasPvhNote, parseDotConfig, parseFragment, renderFragment, unappliedSymbols,
} from './kernel-config.js';
import { artifactsRoot, type BuildOptions, formatBytes, formatMs, packageRoot } from './paths.js';

/** The same series as the distro kernel (kernel.ts), so both boot the same way. */
export const SOURCE_PACKAGE = 'linux-source-6.1';
export const SOURCE_TARBALL = `/usr/src/${SOURCE_PACKAGE}.tar.xz`;
const VMLINUX = 'vmlinux';
const CONFIG_FILE = 'config';

export const fragmentPath = (): string => path.join(packageRoot, 'images', 'kernel', 'microvm.config');
export const customKernelDir = (c: Config): string => path.join(artifactsRoot(c), 'kernel-custom');
const initramfsDir = (c: Config) => path.join(customKernelDir(c), 'initramfs');

/** What `islet kernel build` needs on the host, beyond islet's own packages. */
export const KERNEL_BUILD_PACKAGES: readonly HostPackage[] = [
  { name: SOURCE_PACKAGE, programs: [], files: [SOURCE_TARBALL], why: "Debian's kernel source, the series of the distro kernel" },
  { name: 'make', programs: ['make'], why: 'runs the kernel build' },
  { name: 'gcc', programs: ['gcc'], why: 'compiles the kernel' },
  { name: 'libc6-dev', programs: [], files: ['/usr/include/stdio.h'], why: "the kernel build's host tools (fixdep, kconfig, objtool)" },
  { name: 'flex', programs: ['flex'], why: 'Kconfig and dtc lexers' },
  { name: 'bison', programs: ['bison'], why: 'Kconfig parser' },
  { name: 'bc', programs: ['bc'], why: 'the kernel build computes timer constants with it' },
  { name: 'libelf-dev', programs: [], files: ['/usr/include/gelf.h'], why: 'objtool, which every x86_64 6.1 build runs' },
  { name: 'xz-utils', programs: ['xz'], why: 'unpacks the source tarball' },
];

export interface CustomKernel {
  vmlinux: string;
  key: string;
  /** `uname -r` in the guest. */
  release: string;
  sourcePackage: string;
  sourceVersion: string;
  vmlinuxBytes: number;
  /** Whole build (unpack, configure, compile), as measured when it was built. */
  buildMs: number;
  /** Files compiled, and whether the build dir already held an earlier build (then buildMs is not a from-scratch time). */
  compiledFiles: number;
  incremental: boolean;
  builtAt: string;
  reused: boolean;
}

export interface CustomKernelBuild extends CustomKernel {
  initrd: string;
  initrdBytes: number;
}

export interface KernelBuildOptions extends BuildOptions {
  /** make -j; default: every core (the build runs at nice 19, so it yields to VMs). */
  jobs?: number;
  /** Build again even when the cache holds this key. */
  force?: boolean;
  /** Keep the unpacked source tree (~1.5 GB) after the build; default: remove it (the next build unpacks it again). */
  keepSource?: boolean;
}

export async function installedVersion(pkg: string, signal?: AbortSignal): Promise<string | undefined> {
  const r = await run(['dpkg-query', '-W', '-f=${Version}', pkg], { allowFailure: true, signal, timeoutMs: 30_000 });
  return r.code === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
}

export async function loadFragment(): Promise<Fragment> {
  const file = fragmentPath();
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw imageBuildFailed(`cannot read the kernel config fragment ${file}: ${(e as Error).message}`, 'reinstall islet (the file ships with it)', { file });
  }
  return parseFragment(text, path.relative(packageRoot, file));
}

/** Phase lines with the time since the build started. */
function phases(progress: Progress, total: number) {
  const t0 = performance.now();
  return {
    t0,
    line: (n: number, msg: string) => progress(`kernel build: [${n}/${total}] ${msg} (${formatMs(performance.now() - t0)})`),
  };
}

/** One build at a time per cache dir: the source tree and build dir are shared. */
async function withBuildLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const lock = path.join(dir, 'build.lock');
  await mkdir(dir, { recursive: true });
  for (let attempt = 0; ; attempt++) {
    try {
      await mkdir(lock);
      await writeFile(path.join(lock, 'pid'), `${process.pid}\n`);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw e;
      const pid = Number((await readFile(path.join(lock, 'pid'), 'utf8').catch(() => '')).trim());
      if (pid && pid !== process.pid && alive(pid)) {
        throw imageBuildFailed(`another islet kernel build is running (pid ${pid})`, 'wait for it to finish', { pid });
      }
      await rm(lock, { recursive: true, force: true });
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the unpacked source tree after a build. The build dir stays:
 * tar restores the sources' mtimes when the next build unpacks them again,
 * so make still sees the old objects as up to date and rebuilds only what
 * a changed option touches.
 */
export async function removeSourceTree(dir: string): Promise<void> {
  await removeTree(path.join(dir, 'source'));
}

/** The unpacked source tree, reused while the installed package version stays the same. */
async function ensureSource(dir: string, version: string, opts: BuildOptions): Promise<string> {
  const srcDir = path.join(dir, 'source');
  const tree = path.join(srcDir, SOURCE_PACKAGE);
  const marker = path.join(srcDir, '.unpacked');
  if (existsSync(tree) && (await readFile(marker, 'utf8').catch(() => '')).trim() === version) return tree;
  await rm(marker, { force: true });
  await removeTree(tree);
  await mkdir(srcDir, { recursive: true });
  await run(['nice', '-n', '19', 'tar', '-xf', SOURCE_TARBALL, '-C', srcDir], { signal: opts.signal, timeoutMs: 30 * 60_000 });
  if (!existsSync(path.join(tree, 'Makefile'))) {
    throw imageBuildFailed(`${SOURCE_TARBALL} did not unpack into ${tree}`, `check the ${SOURCE_PACKAGE} package`, { tree });
  }
  await writeFile(marker, `${version}\n`);
  return tree;
}

/**
 * Builds (or finds in the cache) the custom kernel and its initramfs. The
 * compile is the slow part (tens of minutes on two shared cores); a cached
 * key only costs a dpkg-query and a hash.
 */
export async function buildCustomKernel(
  config: Config, agent: AgentArtifact, progress: Progress, opts: KernelBuildOptions = {},
): Promise<CustomKernelBuild> {
  const ph = phases(progress, 6);
  ph.line(1, `host packages: ${KERNEL_BUILD_PACKAGES.map((p) => p.name).join(' ')}`);
  await ensurePackages(KERNEL_BUILD_PACKAGES, progress, opts);
  const version = await installedVersion(SOURCE_PACKAGE, opts.signal);
  if (!version) throw imageBuildFailed(`${SOURCE_PACKAGE} is not installed`, `apt-get install ${SOURCE_PACKAGE}`, { package: SOURCE_PACKAGE });
  const fragment = await loadFragment();
  const source = { package: SOURCE_PACKAGE, version };
  const key = customKernelKey(source, fragment);
  const dir = customKernelDir(config);
  ph.line(1, `${SOURCE_PACKAGE} ${version}, fragment ${path.relative(packageRoot, fragmentPath())} (${fragment.size} symbols), key ${key}`);

  const existing = opts.force ? undefined : await readEntry(dir, key);
  const entry = existing ?? await withBuildLock(dir, async () => {
    if (opts.force) await removeTree(path.join(dir, key));
    const e = await buildEntry(dir, key, source, fragment, ph, opts);
    if (!opts.keepSource) await removeSourceTree(dir);
    return e;
  });
  const kernel = customFromEntry(entry.path, entry.key, entry.meta, entry.reused);
  ph.line(5, `${kernel.reused ? 'cached' : 'built'} ${kernel.release}: vmlinux ${formatBytes(kernel.vmlinuxBytes)}` +
    `${kernel.reused ? ` (built ${kernel.builtAt} in ${formatMs(kernel.buildMs)})` : ''}`);

  ph.line(6, 'initramfs (the agent, no modules)');
  const initrd = await ensureCustomInitramfs(config, kernel.key, agent);
  ph.line(6, `initramfs ${formatBytes(initrd.sizeBytes)}`);
  // Current only once both halves exist: "auto" never sees a kernel without its initramfs.
  await setCurrent(dir, key);
  return { ...kernel, initrd: initrd.path, initrdBytes: initrd.sizeBytes };
}

/**
 * Unpack, configure, compile, check. Writes the source tree and the build
 * dir beside the cache entries (kept for the next build), and the entry
 * itself into cached()'s temp dir.
 */
function buildEntry(
  dir: string, key: string, source: { package: string; version: string }, fragment: Fragment,
  ph: ReturnType<typeof phases>, opts: KernelBuildOptions,
) {
  const version = source.version;
  return cached(dir, key, async (tmp) => {
    ph.line(2, `unpacking ${SOURCE_TARBALL}`);
    const tree = await ensureSource(dir, version, opts);
    // One build dir, reused across fragment changes: make rebuilds only what
    // a changed option touches.
    const build = path.join(dir, 'build');
    await mkdir(build, { recursive: true });
    const make = (args: string[], o: { onLine?: (l: string) => void; timeoutMs?: number } = {}) => run(
      ['nice', '-n', '19', 'make', '-C', tree, `O=${build}`, 'ARCH=x86_64', ...args],
      {
        signal: opts.signal, timeoutMs: o.timeoutMs ?? 10 * 60_000, onLine: o.onLine,
        // Nothing of this host (user, hostname) ends up in the guest's uname -v.
        env: { ...process.env, KBUILD_BUILD_USER: 'islet', KBUILD_BUILD_HOST: 'islet', LC_ALL: 'C' },
      },
    );

    ph.line(3, `configuring: make ${BASE_CONFIG} + fragment + olddefconfig`);
    await make(['-s', BASE_CONFIG]);
    await appendFile(path.join(build, '.config'), renderFragment(fragment));
    await make(['-s', 'olddefconfig']);
    const finalConfig = await readFile(path.join(build, '.config'), 'utf8');
    const unapplied = unappliedSymbols(fragment, parseDotConfig(finalConfig));
    if (unapplied.length) {
      throw imageBuildFailed(
        `${unapplied.length} fragment line(s) did not survive olddefconfig: ${unapplied.map((u) => `${u.symbol}=${u.want} (got ${u.got})`).join(', ')}`,
        `add the options they depend on to ${path.relative(packageRoot, fragmentPath())} (see the kernel's Kconfig files)`, { unapplied },
      );
    }

    // A build dir holding an earlier vmlinux makes this an incremental build: its time is not a from-scratch figure.
    const incremental = existsSync(path.join(build, VMLINUX));
    const jobs = opts.jobs ?? Math.max(1, os.availableParallelism());
    ph.line(4, `compiling vmlinux: nice -n 19 make -j${jobs} vmlinux`);
    const tc = performance.now();
    let objects = 0;
    let lastReport = performance.now();
    await make([`-j${jobs}`, VMLINUX], {
      timeoutMs: 6 * 60 * 60_000,
      onLine: (l) => {
        if (!/^\s+CC\s/.test(l)) return;
        objects++;
        if (performance.now() - lastReport >= 30_000) {
          lastReport = performance.now();
          ph.line(4, `compiling: ${objects} files compiled, now ${l.trim().split(/\s+/)[1] ?? ''}`);
        }
      },
    });
    const compileMs = Math.round(performance.now() - tc);

    ph.line(5, 'checking vmlinux');
    const built = path.join(build, VMLINUX);
    const buf = await readFile(built);
    const notes = sectionData(buf, '.notes');
    if (!notes || !hasPvhNote(notes)) {
      throw imageBuildFailed(`${built} has no PVH entry note: QEMU cannot boot it`, 'keep CONFIG_PVH=y in the fragment', { vmlinux: built });
    }
    await copyFile(built, path.join(tmp, VMLINUX));
    await writeFile(path.join(tmp, CONFIG_FILE), finalConfig);
    const release = (await make(['-s', 'kernelrelease'])).stdout.trim();
    return {
      recipe: { source, base: BASE_CONFIG, fragment: Object.fromEntries(fragment), format: CUSTOM_KERNEL_FORMAT },
      info: { release, sourcePackage: SOURCE_PACKAGE, sourceVersion: version, jobs, compileMs, objects, incremental },
    };
  });
}

function customFromEntry(dir: string, key: string, meta: { info: Record<string, unknown>; files: Record<string, number>; buildMs: number; builtAt: string }, reused: boolean): CustomKernel {
  return {
    vmlinux: path.join(dir, VMLINUX),
    key,
    release: String(meta.info.release ?? ''),
    sourcePackage: String(meta.info.sourcePackage ?? SOURCE_PACKAGE),
    sourceVersion: String(meta.info.sourceVersion ?? ''),
    vmlinuxBytes: meta.files[VMLINUX] ?? 0,
    buildMs: meta.buildMs,
    compiledFiles: Number(meta.info.objects ?? 0),
    incremental: meta.info.incremental === true,
    builtAt: meta.builtAt,
    reused,
  };
}

const initramfsKey = (kernelKey: string, agentKey: string) => cacheKey(['initramfs-custom', { kernel: kernelKey, agent: agentKey, format: INITRAMFS_FORMAT }]);

/**
 * The custom kernel's initramfs: the same stage-1 agent as the distro one
 * (it mounts the root disk, grows it, and switches to the agent or systemd),
 * with an empty module list since every driver is built in.
 */
export async function ensureCustomInitramfs(config: Config, kernelKey: string, agent: AgentArtifact): Promise<{ path: string; sizeBytes: number; reused: boolean }> {
  const e = await cached(initramfsDir(config), initramfsKey(kernelKey, agent.key), async (tmp) => {
    await writeFile(path.join(tmp, INITRAMFS_FILE), writeCpio(initramfsEntries(await readFile(agent.path), [])));
    return { recipe: { kernel: kernelKey, agent: agent.key, format: INITRAMFS_FORMAT } };
  });
  return { path: path.join(e.path, INITRAMFS_FILE), sizeBytes: e.meta.files[INITRAMFS_FILE] ?? 0, reused: e.reused };
}

/** The current custom kernel, without building or querying anything. */
export async function findCustomKernel(config: Config): Promise<CustomKernel | undefined> {
  const e = await getCurrent(customKernelDir(config));
  if (!e || !existsSync(path.join(e.path, VMLINUX))) return undefined;
  return customFromEntry(e.path, e.key, e.meta, true);
}

/** Rebuilds the custom initramfs after the agent changed (islet setup); nothing when no custom kernel exists. */
export async function refreshCustomInitramfs(config: Config, agent: AgentArtifact): Promise<void> {
  const k = await findCustomKernel(config);
  if (k) await ensureCustomInitramfs(config, k.key, agent);
}

export interface KernelChoice {
  kind: 'custom' | 'distro';
  /** Why this one: `islet check` prints it. */
  reason: string;
  custom?: CustomKernel & { initrd: string };
}

/**
 * Which kernel a VM boots, from [vm] kernel: "distro", "custom" (an error
 * when none is built), or "auto" (custom when built for the current agent).
 * Looks only; never builds.
 */
export async function chooseKernel(config: Config, agentKey: string | undefined): Promise<KernelChoice> {
  const mode = config.vm.kernel;
  if (config.vm.kernel_path) return { kind: 'distro', reason: `[vm] kernel_path = ${config.vm.kernel_path}` };
  if (mode === 'distro') return { kind: 'distro', reason: '[vm] kernel = "distro"' };
  const notBuilt = (why: string): KernelChoice => {
    if (mode === 'custom') {
      throw new IsletError('IMAGE_NOT_FOUND', `[vm] kernel = "custom" but ${why}`, 'run `islet kernel build`, or set [vm] kernel = "auto"', { kernel: mode });
    }
    return { kind: 'distro', reason: `${why}; \`islet kernel build\` builds one` };
  };
  const k = await findCustomKernel(config);
  if (!k) return notBuilt('no custom kernel has been built');
  const initrd = agentKey ? await readEntry(initramfsDir(config), initramfsKey(k.key, agentKey)) : undefined;
  if (!initrd || !existsSync(path.join(initrd.path, INITRAMFS_FILE))) return notBuilt('the custom kernel has no initramfs for the current agent');
  return {
    kind: 'custom',
    reason: `${mode === 'auto' ? 'auto: ' : ''}custom ${k.release}, vmlinux ${formatBytes(k.vmlinuxBytes)} (key ${k.key})`,
    custom: { ...k, initrd: path.join(initrd.path, INITRAMFS_FILE) },
  };
}

/**
 * Whether the current custom kernel was built from another fragment than
 * images/kernel/microvm.config says today (edited since, or islet updated):
 * the symbols whose wanted value differs. undefined when no custom kernel
 * is built. Compared by content, so touching the file without changing a
 * value is not "stale".
 */
export async function staleCustomKernel(config: Config): Promise<{ release: string; builtAt: string; changed: string[] } | undefined> {
  const e = await getCurrent(customKernelDir(config));
  if (!e) return undefined;
  const built = new Map(Object.entries((e.meta.recipe as { fragment?: Record<string, string> } | null)?.fragment ?? {}));
  const now = await loadFragment();
  const changed = [...new Set([...built.keys(), ...now.keys()])].filter((k) => built.get(k) !== now.get(k)).sort();
  return { release: String(e.meta.info.release ?? ''), builtAt: e.meta.builtAt, changed };
}
