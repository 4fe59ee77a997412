// Which kernel modules the initramfs must load, and in what order. The Debian
// cloud kernel builds its virtio drivers as modules; after `dpkg -x` there is
// no modules.dep, so dependencies come from each .ko's `depends=`.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { moduleDepends } from './elf.js';
import { imageBuildFailed } from './errors.js';

/** The virtio stack for microvm: MMIO transport, block, console (the agent port), net. */
export const GUEST_MODULES: readonly string[] = [
  'virtio_ring', 'virtio', 'virtio_mmio', 'virtio_blk', 'virtio_console', 'failover', 'net_failover', 'virtio_net',
];

/**
 * Directories under lib/modules/<release>/kernel whose modules (plus their
 * dependencies) go into the root filesystem of images that install `kmod`,
 * with depmod's index, so the guest kernel loads them on demand through
 * /sbin/modprobe. Netfilter: iptables (nft and legacy), nft, conntrack, NAT.
 * They stay out of the initramfs: loading them at every boot would cost
 * every VM boot time and kernel memory for what few workspaces use.
 */
export const ROOTFS_MODULE_DIRS: readonly string[] = ['net/netfilter', 'net/ipv4/netfilter', 'net/ipv6/netfilter'];

/** Copied beside the modules so modprobe knows built-in modules (and succeeds on them) and depmod keeps the kernel's order. */
export const ROOTFS_MODULE_INDEX_FILES: readonly string[] = ['modules.builtin', 'modules.builtin.modinfo', 'modules.order'];

/** Module names are file names with '-' and '_' interchangeable; the kernel reports '_'. */
export function normalizeModuleName(n: string): string {
  return n.replace(/-/g, '_');
}

/**
 * Load order for `wanted`: every module after all its dependencies, otherwise
 * in the order asked for. Throws on an unknown module or a dependency cycle.
 */
export function moduleLoadOrder(wanted: readonly string[], dependsOf: (name: string) => readonly string[] | undefined): string[] {
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, chain: string[]): void => {
    const n = normalizeModuleName(name);
    const s = state.get(n);
    if (s === 'done') return;
    if (s === 'visiting') {
      throw imageBuildFailed(`kernel module dependency cycle: ${[...chain, n].join(' → ')}`, 'the kernel package is inconsistent; pin another one with images.kernel_package');
    }
    const deps = dependsOf(n);
    if (deps === undefined) {
      const via = chain.length ? ` (needed by ${chain[chain.length - 1]})` : '';
      throw imageBuildFailed(`kernel module ${n}${via} is not in the kernel package`,
        'this kernel may build it in, or lack it; pin a linux-image-*-cloud-amd64 with images.kernel_package', { module: n });
    }
    state.set(n, 'visiting');
    for (const d of deps) visit(d, [...chain, n]);
    state.set(n, 'done');
    order.push(n);
  };
  for (const w of wanted) visit(w, []);
  return order;
}

export interface ModuleFile {
  name: string;
  file: string;
  depends: string[];
}

/** Every module under lib/modules/<release>/kernel, by normalized name. */
export async function indexModules(releaseDir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const entries = await readdir(releaseDir, { recursive: true, withFileTypes: true });
  for (const d of entries) {
    if (!d.isFile()) continue;
    const m = /^(.+)\.ko(\.(xz|zst|gz))?$/.exec(d.name);
    if (m?.[1]) out.set(normalizeModuleName(m[1]), path.join(d.parentPath ?? d.path, d.name));
  }
  return out;
}

/** Resolves `wanted` plus dependencies to files, in load order. */
export async function resolveModules(releaseDir: string, wanted: readonly string[]): Promise<ModuleFile[]> {
  const index = await indexModules(releaseDir);
  const deps = new Map<string, string[]>();
  const dependsOf = (n: string): string[] | undefined => deps.get(n);
  // Read the dependency closure first, so the ordering itself stays a pure function.
  const pending = wanted.map(normalizeModuleName);
  while (pending.length) {
    const n = pending.pop() as string;
    if (deps.has(n)) continue;
    const file = index.get(n);
    if (!file) continue; // moduleLoadOrder reports it with who needed it
    if (!file.endsWith('.ko')) {
      throw imageBuildFailed(`kernel module ${n} is compressed (${path.basename(file)}); islet loads plain .ko files`,
        'use a kernel package with uncompressed modules (Debian 6.1 cloud kernels have them)', { file });
    }
    const d = moduleDepends(await readFile(file)).map(normalizeModuleName);
    deps.set(n, d);
    pending.push(...d);
  }
  return moduleLoadOrder(wanted, dependsOf).map((name) => ({ name, file: index.get(name) as string, depends: deps.get(name) ?? [] }));
}

/**
 * Every module under `dirs` (relative to releaseDir/kernel) and, wherever
 * they live, their dependencies: paths relative to releaseDir, sorted.
 */
export async function resolveModuleDirs(releaseDir: string, dirs: readonly string[]): Promise<string[]> {
  const index = await indexModules(releaseDir);
  const prefixes = dirs.map((d) => path.join(releaseDir, 'kernel', d) + path.sep);
  const wanted = [...index].filter(([, f]) => prefixes.some((p) => f.startsWith(p))).map(([n]) => n);
  if (!wanted.length) {
    throw imageBuildFailed(`no kernel modules under ${dirs.join(', ')} in ${releaseDir}`,
      'this kernel builds them in or lacks them; pin a linux-image-*-cloud-amd64 with images.kernel_package', { dirs });
  }
  const files = await resolveModules(releaseDir, wanted);
  return files.map((m) => path.relative(releaseDir, m.file)).sort();
}
