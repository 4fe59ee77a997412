// Base images: mmdebstrap → directory → customize → mke2fs -d → shrink.
// The result is a read-only raw ext4 that every workspace's qcow2 overlay
// shares, so it is built once per recipe and never written again.
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../core/config.js';
import { HostPrerequisiteError } from '../core/errors.js';
import type { Progress } from '../core/progress.js';
import { run } from '../host/run.js';
import type { AgentArtifact } from './agent-build.js';
import type { KernelArtifact } from './kernel.js';
import { cached, cacheKey, setCurrent } from './cache.js';
import { imageBuildFailed } from './errors.js';
import { type BuildOptions, formatBytes, isRoot, kindDir } from './paths.js';
import { chainKeyInput, loadRecipeChain, type Recipe, type ResolvedRecipe, resolveChain } from './recipe.js';
import {
  AGENT_UNIT, AGENT_UNIT_FILE, enableUnitArgv, MASKED_UNITS, maskUnitArgv, NETWORK_SCRIPT, NETWORK_SCRIPT_FILE, NETWORK_UNIT, NETWORK_UNIT_FILE,
} from './systemd.js';

export const ROOTFS_FILE = 'rootfs.ext4';
export const AGENT_IN_IMAGE = '/usr/local/bin/islet-agent';
// 2: recipes with parents (the key hashes the whole chain), files, services, full init.
// 3: npm packages installed by the host's npm, recipe scripts, a tight mke2fs instead of a shrink.
const ROOTFS_FORMAT = 3;
const MiB = 1024 * 1024;
const JOURNAL_MB = 8;
// Installs usr-is-merged instead of usrmerge, which would pull in perl (~50 MB).
const MERGED_USR_HOOKS = '/usr/share/mmdebstrap/hooks/merged-usr';

export interface ImageArtifact {
  name: string;
  rootfs: string;
  /** Apparent size of rootfs.ext4 (the extra free space is sparse). */
  sizeBytes: number;
  /** Size of the filesystem shrunk to its minimum, before extraFreeMB was added. */
  minBytes: number;
  key: string;
  recipe: ResolvedRecipe;
  reused: boolean;
}

// Docs, man pages and translations are dead weight in a workspace's base;
// copyright files stay (they go wherever the binaries go).
const DPKG_EXCLUDES = [
  'path-exclude=/usr/share/doc/*',
  'path-include=/usr/share/doc/*/copyright',
  'path-exclude=/usr/share/man/*',
  'path-exclude=/usr/share/info/*',
  'path-exclude=/usr/share/locale/*',
  'path-include=/usr/share/locale/locale.alias',
  'path-exclude=/usr/share/lintian/*',
];

const NPM_INSTALL = [
  'npm', 'install', '--global', '--prefix', '"$1/usr/local"', '--os=linux', '--cpu=x64', '--libc=glibc',
  '--no-audit', '--no-fund', '--no-update-notifier', '--loglevel=warn',
];

/** One argument for sh -c, whatever it contains. */
export function shellQuote(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}

/** The suite an image is built from: its chain's own, else the config's default. */
export function imageSuite(recipe: ResolvedRecipe, config: Config): string {
  return recipe.suite ?? config.images.suite;
}

export function mmdebstrapArgv(recipe: ResolvedRecipe, config: Config, target: string, mergedUsrHooks: boolean): string[] {
  return [
    'mmdebstrap',
    // Also as root: a private mount namespace, so a build killed half-way
    // leaves no /proc or /sys mounted inside the tree on the host.
    '--mode=unshare',
    '--format=directory',
    `--variant=${recipe.variant}`,
    ...(mergedUsrHooks ? [`--hook-dir=${MERGED_USR_HOOKS}`] : []),
    ...(recipe.packages.length ? [`--include=${recipe.packages.join(',')}`] : []),
    '--aptopt=Acquire::Languages "none"',
    // The build host's npm installs into the tree (the guest has no network
    // here, and Debian's npm would be a 100 MB detour): --prefix puts the
    // packages in /usr/local/lib/node_modules and their bins in
    // /usr/local/bin. Optional dependencies are chosen for the guest
    // (linux/x64/glibc), not the host. Only the npm registry is contacted.
    ...(recipe.npmPackages.length
      ? [`--customize-hook=${NPM_INSTALL.join(' ')} ${recipe.npmPackages.join(' ')}`]
      : []),
    // Then the recipes' scripts, chrooted, while the tree still has /dev, /proc and the host's resolver.
    ...recipe.scripts.map((sc) => `--customize-hook=chroot "$1" /bin/sh -ec ${shellQuote(sc)}`),
    ...DPKG_EXCLUDES.map((o) => `--dpkgopt=${o}`),
    imageSuite(recipe, config),
    target,
    config.images.mirror,
  ];
}

/** Forwards mmdebstrap's own status lines, and a sample of the rest so a long install visibly moves. */
function mmdebstrapLines(progress: Progress, name: string): (line: string) => void {
  let last = 0;
  return (line) => {
    const now = Date.now();
    if (/^[IWE]: /.test(line) || now - last > 3000) {
      last = now;
      progress(`image ${name}: ${line}`);
    }
  };
}

/**
 * The cache key of an image: every recipe of its chain (minus verify checks),
 * the agent baked into it, and where its packages come from (`env.suite` is
 * the config's default, replaced by the chain's own suite when it has one). `recipe` is
 * derived from `chain`; it is kept in the meta for findArtifacts, which must
 * not re-read recipes.
 */
export function imageKey(
  chain: readonly Recipe[], env: { agent: string; suite: string; mirror: string; mergedUsr: boolean; kernelModules?: KernelModulesKey },
) {
  const recipe = resolveChain(chain);
  // What islet writes into a full-init tree is an input too; fast images do not depend on it.
  const systemd = recipe.initMode === 'full'
    ? { unit: AGENT_UNIT, masked: MASKED_UNITS, network: { unit: NETWORK_UNIT, script: NETWORK_SCRIPT } } : undefined;
  // Only images that get the kernel's modules depend on the kernel.
  const { kernelModules, ...rest } = env;
  const modules = wantsKernelModules(recipe) ? kernelModules : undefined;
  const recipeKey = { recipe, chain: chainKeyInput(chain), ...rest, suite: recipe.suite ?? env.suite, systemd, modules, format: ROOTFS_FORMAT };
  return { recipe, recipeKey, key: cacheKey(['image', recipeKey]) };
}

/** What of the kernel an image with modules depends on: they must match the kernel that boots it. */
export interface KernelModulesKey {
  release: string;
  packageVersion: string;
  modules: string[];
}

/**
 * Images that install kmod get the kernel's rootfs module set (netfilter,
 * see modules.ts) and depmod's index: without modprobe in the guest the
 * kernel could not load them on demand anyway.
 */
export function wantsKernelModules(recipe: ResolvedRecipe): boolean {
  return recipe.packages.includes('kmod');
}

export async function ensureImage(
  config: Config, name: string, agent: AgentArtifact, progress: Progress, opts: BuildOptions = {}, kernel?: KernelArtifact,
): Promise<ImageArtifact> {
  const chain = await loadRecipeChain(name);
  const mergedUsr = existsSync(MERGED_USR_HOOKS);
  const kernelModules = kernel && { release: kernel.version, packageVersion: kernel.packageVersion, modules: kernel.rootfsModules };
  const { recipe, recipeKey, key } = imageKey(chain, {
    agent: agent.key, suite: config.images.suite, mirror: config.images.mirror, mergedUsr, kernelModules,
  });
  if (wantsKernelModules(recipe) && !kernel?.rootfsModules.length) {
    throw imageBuildFailed(`image ${name} installs kmod, so it gets the kernel's modules, but the kernel artifact has none`,
      'build through ensureArtifacts (islet image build), which builds the kernel first', { image: name });
  }
  const dir = kindDir.image(config, name);
  const root = isRoot();

  const entry = await cached(dir, key, async (tmp) => {
    if (!root) await assertSubordinateIds();
    if (recipe.npmPackages.length) await assertHostNpm();
    const tree = path.join(tmp, 'root');
    const img = path.join(tmp, ROOTFS_FILE);
    // Not root: the tree's files belong to subordinate uids, so everything
    // that touches it runs inside mmdebstrap's user namespace.
    const inTree = (argv: string[]) => (root ? argv : ['mmdebstrap', '--unshare-helper', ...argv]);
    const sig = { signal: opts.signal };

    const t0 = Date.now();
    progress(`image ${name}: mmdebstrap ${recipe.variant} + ${recipe.packages.length} package(s) (${recipe.chain.join(' → ')})` +
      `${recipe.npmPackages.length ? ` + npm ${recipe.npmPackages.join(' ')}` : ''}, ${recipe.initMode} init, ${imageSuite(recipe, config)} from ${config.images.mirror}` +
      (root ? '' : ' (not root: --mode=unshare, needs subuid/subgid entries for this user)'));
    await run(mmdebstrapArgv(recipe, config, tree, mergedUsr), {
      ...sig, timeoutMs: 60 * 60_000, onLine: mmdebstrapLines(progress, name),
    });
    progress(`image ${name}: debootstrapped in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    await customize(tree, tmp, recipe, agent, inTree, sig);
    if (wantsKernelModules(recipe) && kernel) await installKernelModules(tree, kernel, inTree, sig, (m) => progress(`image ${name}: ${m}`));
    const used = Number((await run(inTree(['du', '-s', '--block-size=1', tree]), sig)).stdout.split(/\s/)[0]);
    if (!Number.isFinite(used) || used <= 0) throw imageBuildFailed(`could not measure ${tree}`, 'run du -s on it by hand');
    // resize2fs -M's estimate is conservative (about 1.5x the used blocks with
    // flex_bg), so shrinking a generous filesystem leaves a third of it empty:
    // instead, start tight (files + 4% + journal + 16 MiB) and
    // grow by 6% until mke2fs -d fits; -M then only trims what it can.
    const mkfs = (mib: number) => run(inTree([
      'mke2fs', '-q', '-t', 'ext4', '-b', '4096', '-i', '16384', '-I', '256', '-L', 'islet-root',
      // Tables initialized now: otherwise each guest's ext4lazyinit would write them into its overlay.
      '-E', 'root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0',
      // mke2fs would pick 16 MiB for this size, which alone puts minbase over
      // its 100 MiB budget; the journal never grows with the fs, so pin it.
      '-J', `size=${JOURNAL_MB}`,
      '-d', tree, '-F', img, `${mib}M`,
    ]), { ...sig, allowFailure: true });
    // ext4's own overhead is ~2% (inode tables at -i 16384 -I 256, bitmaps, directories).
    let mib = Math.ceil((used * 1.04) / MiB) + JOURNAL_MB + 16;
    for (let attempt = 1; ; attempt++) {
      progress(`image ${name}: mke2fs ${mib} MiB from ${formatBytes(used)} of files`);
      await rm(img, { force: true }); // mke2fs keeps a larger existing file's size
      const r = await mkfs(mib);
      if (r.code === 0) break;
      if (attempt >= 8) {
        throw imageBuildFailed(`image ${name}: mke2fs -d failed at ${mib} MiB (exit ${r.code})`, 'see the output; is the host disk full?',
          { stderr: r.stderr.slice(-2000) });
      }
      mib = Math.ceil(mib * 1.06);
    }
    await fsck(img, sig);
    // Only ever shrinks: when its estimate is above the current size it reports "Nothing to do".
    await run(['resize2fs', '-M', img], { ...sig, allowFailure: true });
    const minBytes = (await stat(img)).size;
    if (minBytes > recipe.sizeLimitMB * MiB) {
      throw imageBuildFailed(`image ${name}: filesystem is ${formatBytes(minBytes)} shrunk, over its ${recipe.sizeLimitMB} MiB budget`,
        'drop packages from the recipe, or raise sizeLimitMB in images/' + name + '/recipe.json', { minBytes, sizeLimitMB: recipe.sizeLimitMB });
    }
    if (recipe.extraFreeMB > 0) {
      // Free space for a workspace's first writes without an online resize; sparse, so it costs no disk here.
      await run(['resize2fs', img, `${Math.ceil(minBytes / 1024) + recipe.extraFreeMB * 1024}K`], sig);
    }
    await fsck(img, sig);
    await run(inTree(['rm', '-rf', '--one-file-system', tree]), sig);
    await chmod(img, 0o444);
    const st = await stat(img);
    progress(`image ${name}: ${ROOTFS_FILE} ${formatBytes(st.size)} (${formatBytes(minBytes)} shrunk, ${formatBytes(st.blocks * 512)} on disk)`);
    return { recipe: recipeKey, info: { usedBytes: used, minBytes, allocatedBytes: st.blocks * 512, mode: root ? 'root' : 'unshare' } };
  });
  await setCurrent(dir, key);
  return {
    name, rootfs: path.join(entry.path, ROOTFS_FILE), sizeBytes: entry.meta.files[ROOTFS_FILE] ?? 0,
    minBytes: Number(entry.meta.info.minBytes ?? 0), key, recipe, reused: entry.reused,
  };
}

/** Unshare mode maps the tree's owners onto this user's subordinate ids; without them mmdebstrap fails obscurely. */
async function assertSubordinateIds(): Promise<void> {
  const { username, uid } = os.userInfo();
  for (const f of ['/etc/subuid', '/etc/subgid']) {
    const lines = (await readFile(f, 'utf8').catch(() => '')).split('\n');
    if (!lines.some((l) => l.startsWith(`${username}:`) || l.startsWith(`${uid}:`))) {
      throw new HostPrerequisiteError(`building images as ${username} (not root) needs subordinate ids for ${username} in ${f}`,
        `sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${username}  (or build as root)`, { file: f });
    }
  }
}

/** npmPackages are installed by the host's npm (see mmdebstrapArgv). */
async function assertHostNpm(): Promise<void> {
  const r = await run(['npm', '--version'], { allowFailure: true }).catch(() => undefined);
  if (!r || r.code !== 0) {
    throw new HostPrerequisiteError('this image has npmPackages, which the build host\'s npm installs into the tree, but npm is not on PATH',
      'install Node.js and npm on the build host (apt-get install npm)');
  }
}

/** e2fsck -fy: exit 1 means it fixed something, which is fine on a fresh filesystem; 4 and up is not. */
async function fsck(img: string, sig: { signal?: AbortSignal }): Promise<void> {
  const r = await run(['e2fsck', '-fy', img], { ...sig, allowFailure: true });
  if (r.code !== 0 && r.code !== 1) {
    throw imageBuildFailed(`e2fsck found uncorrectable errors in ${img} (exit ${r.code})`, 'rebuild the image', { stdout: r.stdout.slice(-2000) });
  }
}

// What makes the generic Debian tree an islet image. Files are staged beside
// the tree and installed with install(1) so the same argv works inside the
// user namespace when not root.
async function customize(
  tree: string, tmp: string, recipe: ResolvedRecipe, agent: AgentArtifact, inTree: (argv: string[]) => string[], sig: { signal?: AbortSignal },
): Promise<void> {
  const files: [string, string][] = [
    ['/etc/hostname', 'islet\n'],
    ['/etc/hosts', '127.0.0.1\tlocalhost\n127.0.1.1\tislet\n::1\tlocalhost ip6-localhost ip6-loopback\n'],
    // Empty: each boot gets a fresh id (a fork must not share its parent's).
    ['/etc/machine-id', ''],
    // mmdebstrap copied the build host's resolver in; 10.0.2.3 is QEMU user-mode net's DNS.
    ['/etc/resolv.conf', 'nameserver 10.0.2.3\n'],
  ];
  const stage = path.join(tmp, 'stage');
  await mkdir(stage, { recursive: true });
  for (const [dest, body] of files) {
    const src = path.join(stage, path.basename(dest));
    await writeFile(src, body);
    await run(inTree(['install', '-m', '0644', '-o', '0', '-g', '0', '-T', src, tree + dest]), sig);
  }
  await run(inTree(['install', '-D', '-m', '0755', '-o', '0', '-g', '0', '-T', agent.path, tree + AGENT_IN_IMAGE]), sig);
  // The recipe's own files, after islet's so a recipe can override them (e.g. /etc/hosts).
  for (const [i, f] of recipe.files.entries()) {
    const src = path.join(stage, `file-${i}`);
    await writeFile(src, f.content);
    await run(inTree(['install', '-D', '-m', f.mode, '-o', '0', '-g', '0', '-T', src, tree + f.path]), sig);
  }
  if (recipe.initMode === 'full') {
    for (const [name, body, dest, mode] of [
      ['agent-unit', AGENT_UNIT, AGENT_UNIT_FILE, '0644'], ['network-unit', NETWORK_UNIT, NETWORK_UNIT_FILE, '0644'],
      ['network-up', NETWORK_SCRIPT, NETWORK_SCRIPT_FILE, '0755'],
    ] as const) {
      const src = path.join(stage, name);
      await writeFile(src, body);
      await run(inTree(['install', '-D', '-m', mode, '-o', '0', '-g', '0', '-T', src, tree + dest]), sig);
    }
    for (const unit of ['islet-agent.service', 'islet-network.service', ...recipe.services]) await run(inTree(enableUnitArgv(tree, unit)), sig);
    for (const unit of MASKED_UNITS) await run(inTree(maskUnitArgv(tree, unit)), sig);
  }
  // mmdebstrap already cleans these by default; a recipe hook could have refilled them.
  await run(inTree(['find', `${tree}/var/cache/apt/archives`, '-maxdepth', '1', '-type', 'f', '-name', '*.deb', '-delete']), sig);
  await run(inTree(['find', `${tree}/var/lib/apt/lists`, '-maxdepth', '1', '-type', 'f', '!', '-name', 'lock', '-delete']), sig);
  await rm(stage, { recursive: true, force: true });
}

/**
 * Copies the kernel's rootfs module set to /lib/modules/<release> and runs
 * the image's own depmod there (the host need not have kmod), so that the
 * guest kernel's request_module finds them through /sbin/modprobe.
 */
async function installKernelModules(
  tree: string, kernel: KernelArtifact, inTree: (argv: string[]) => string[], sig: { signal?: AbortSignal }, progress: (m: string) => void,
): Promise<void> {
  const dest = `${tree}/lib/modules/${kernel.version}`;
  await run(inTree(['mkdir', '-p', dest]), sig);
  // Keeps the layout (kernel/net/..., modules.builtin, modules.order); root owns it, whoever built the kernel artifact.
  await run(inTree(['cp', '-R', '--no-preserve=ownership', '-T', kernel.rootfsModulesDir, dest]), sig);
  await run(inTree(['chown', '-R', '0:0', dest]), sig);
  await run(inTree(['chroot', tree, 'depmod', kernel.version]), sig);
  progress(`${kernel.rootfsModules.length} kernel modules in /lib/modules/${kernel.version} (depmod ran)`);
}
