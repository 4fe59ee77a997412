// The Debian packages islet needs on the host, what each is for, and how to
// get them: installed for root, or named in an exact command for everyone else.
import { existsSync } from 'node:fs';
import { HostPrerequisiteError } from '../core/errors.js';
import type { Progress } from '../core/progress.js';
import { run, which } from './run.js';

export interface HostPackage {
  /** Debian package name. */
  name: string;
  /** Programs it provides that islet runs; the package counts as present when all are in PATH. */
  programs: string[];
  why: string;
  /** Needed only when islet runs as a normal user. */
  rootlessOnly?: boolean;
  /** Files it provides (headers, source tarballs); present when these exist too. */
  files?: string[];
  /** Needed only as root: bridge networking, which only root can set up. */
  rootOnly?: boolean;
}

export const requiredHostPackages: readonly HostPackage[] = [
  { name: 'qemu-system-x86', programs: ['qemu-system-x86_64'], why: 'runs every workspace VM (microvm machine)' },
  { name: 'qemu-utils', programs: ['qemu-img'], why: 'creates the qcow2 overlays, snapshots and forks' },
  { name: 'mmdebstrap', programs: ['mmdebstrap'], why: 'builds the Debian root filesystem of an image' },
  { name: 'e2fsprogs', programs: ['mke2fs', 'e2fsck', 'resize2fs'], why: 'turns the root filesystem into a shrunk ext4 image' },
  { name: 'golang-go', programs: ['go'], why: 'compiles the guest agent (static, std only)' },
  { name: 'lz4', programs: ['lz4'], why: "decompresses the Debian kernel's LZ4 vmlinuz into the vmlinux QEMU boots" },
  { name: 'openssh-client', programs: ['ssh-keygen', 'ssh'], why: 'makes each workspace\'s own SSH key pair (images that run sshd), and ssh to log in' },
  { name: 'iproute2', programs: ['ip'], why: 'bridge networking: creates the bridge and attaches each VM\'s TAP to it', rootOnly: true },
  { name: 'nftables', programs: ['nft'], why: 'bridge networking: the islet firewall tables (policies, NAT, port forwards)', rootOnly: true },
  { name: 'uidmap', programs: ['newuidmap', 'newgidmap'], why: 'lets mmdebstrap build images without root (--mode=unshare)', rootlessOnly: true },
  { name: 'tmux', programs: ['tmux'], why: 'the terminal tests (test/vm/shell.vm.test) drive islet ws shell in a real terminal through it' },
];

/**
 * Present on every Debian host; islet cannot install them, only say that
 * this host is not the Debian (or derivative) it expects.
 */
export const baseHostPrograms: readonly string[] = ['apt-get', 'apt-cache', 'dpkg', 'dpkg-query'];

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

async function present(p: HostPackage): Promise<boolean> {
  for (const prog of p.programs) if (!(await which(prog))) return false;
  for (const f of p.files ?? []) if (!existsSync(f)) return false;
  return true;
}

/**
 * Installs whichever of `packages` are missing (an optional feature's own
 * list, e.g. `islet kernel build`'s), as ensureHostPackages does: as root
 * through apt-get, otherwise a HostPrerequisiteError with the exact command.
 */
export async function ensurePackages(packages: readonly HostPackage[], progress: Progress, opts: { signal?: AbortSignal } = {}): Promise<void> {
  const found = await Promise.all(packages.map(present));
  const missing = packages.filter((_, i) => !found[i]);
  if (!missing.length) return;
  if (!isRoot()) throw missingPackagesError(missing);
  await aptInstall(missing, progress, opts);
}

/** Which of `packages` are not installed, and whether this process could install them (apt as root). */
export async function packagesToInstall(packages: readonly HostPackage[]): Promise<{ missing: HostPackage[]; canInstall: boolean }> {
  const found = await Promise.all(packages.map(present));
  return { missing: packages.filter((_, i) => !found[i]), canInstall: isRoot() };
}

/** The packages whose programs are not all in PATH (for this user: root or not). */
export async function checkHostPackages(): Promise<HostPackage[]> {
  const root = isRoot();
  const wanted = requiredHostPackages.filter((p) => (!p.rootlessOnly || !root) && (!p.rootOnly || root));
  const found = await Promise.all(wanted.map(present));
  return wanted.filter((_, i) => !found[i]);
}

export function installCommand(missing: readonly HostPackage[]): string[] {
  return ['apt-get', 'install', '-y', '--no-install-recommends', ...missing.map((p) => p.name)];
}

export function missingPackagesError(missing: readonly HostPackage[]): HostPrerequisiteError {
  const names = missing.map((p) => p.name);
  return new HostPrerequisiteError(
    `missing host packages: ${names.join(' ')} (${missing.map((p) => `${p.name}: ${p.why}`).join('; ')})`,
    `sudo ${installCommand(missing).join(' ')}`,
    { missing: names },
  );
}

/**
 * Installs what is missing when running as root; otherwise throws a
 * HostPrerequisiteError whose hint is the exact command to run.
 */
export async function ensureHostPackages(progress: Progress, opts: { signal?: AbortSignal } = {}): Promise<void> {
  const missingBase: string[] = [];
  for (const prog of baseHostPrograms) if (!(await which(prog))) missingBase.push(prog);
  if (missingBase.length) {
    throw new HostPrerequisiteError(`this host has no ${missingBase.join(', ')}: islet builds its images with Debian's tools`,
      'run islet on Debian 12 (bookworm) or a derivative', { missing: missingBase });
  }
  const missing = await checkHostPackages();
  if (!missing.length) return;
  if (!isRoot()) throw missingPackagesError(missing);
  await aptInstall(missing, progress, opts);
}

async function aptInstall(missing: readonly HostPackage[], progress: Progress, opts: { signal?: AbortSignal }): Promise<void> {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const names = missing.map((p) => p.name).join(' ');
  progress(`host packages: installing ${names}`);
  progress('host packages: apt-get update');
  await run(['apt-get', 'update', '-q'], { env, signal: opts.signal, timeoutMs: 10 * 60_000 });
  progress(`host packages: apt-get install ${names}`);
  let last = 0;
  await run(installCommand(missing), {
    env,
    signal: opts.signal,
    timeoutMs: 30 * 60_000,
    onLine: (line) => {
      // dpkg prints a line per unpack/setup: show them, but not a flood.
      const now = Date.now();
      if (/^(Get:|Setting up|E:|W:)/.test(line) && now - last > 500) {
        last = now;
        progress(`host packages: ${line}`);
      }
    },
  });
  const ok = await Promise.all(missing.map(present));
  const still = missing.filter((_, i) => !ok[i]);
  if (still.length) {
    throw new HostPrerequisiteError(`apt-get installed ${names} but ${still.flatMap((p) => [...p.programs, ...(p.files ?? [])]).join(', ')} still not found`,
      'check PATH (programs may be in /usr/sbin) and the apt output', { missing: still.map((p) => p.name) });
  }
  progress(`host packages: installed ${names}`);
}
