// The custom kernel as the default without a slower setup: `islet setup`
// starts `islet kernel build` as a detached background process (the compile
// runs at nice 19, so VMs come first), and `[vm] kernel = "auto"` switches
// to the custom kernel once both it and its initramfs exist (custom-kernel.ts
// sets `current` last). Until then VMs boot the distro kernel.
import { mkdirSync, readFileSync, statfsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../core/config.js';
import { spawnIslet } from '../host/detached.js';
import { packagesToInstall } from '../host/packages.js';
import { pidAlive } from '../host/pid.js';
import { customKernelDir, findCustomKernel, installedVersion, KERNEL_BUILD_PACKAGES, SOURCE_PACKAGE, staleCustomKernel } from './custom-kernel.js';

/** Unpacked source (~1.3 GB) + build dir (~0.5 GB) + headroom for the images the user builds next. */
export const MIN_FREE_BYTES = 4 * 1024 ** 3;

const stateFile = (c: Config) => path.join(customKernelDir(c), 'background.json');
export const backgroundLog = (c: Config): string => path.join(customKernelDir(c), 'build.log');

export interface BackgroundFacts {
  setting: Config['vm']['kernel'];
  kernelPath: boolean;
  build: Config['vm']['kernel_build'];
  /** The current custom kernel's release, and what changed since it was built: fragment symbols, the source package's version. */
  current?: { release: string; changed: string[] };
  runningPid?: number;
  missing: string[];
  canInstall: boolean;
  installPackages: boolean;
  freeBytes?: number;
}

export type BackgroundPlan = { start: true; why: string } | { start: false; why: string };

/** Why the config alone rules a background build out, if it does: then nothing on the host needs looking at. */
function configVeto(f: Pick<BackgroundFacts, 'setting' | 'kernelPath' | 'build'>): string | undefined {
  if (f.kernelPath) return '[vm] kernel_path is set';
  if (f.setting === 'distro') return '[vm] kernel = "distro"';
  if (f.build === 'off') return '[vm] kernel_build = "off" (`islet kernel build` builds it by hand)';
  return undefined;
}

/** Whether setup should start a background build: pure, so every rule has a unit test. */
export function planBackgroundBuild(f: BackgroundFacts): BackgroundPlan {
  const veto = configVeto(f);
  if (veto) return { start: false, why: veto };
  if (f.runningPid) return { start: false, why: `a background build is already running (pid ${f.runningPid})` };
  if (f.current && !f.current.changed.length) return { start: false, why: `custom ${f.current.release} is built and current` };
  if (f.missing.length && !(f.canInstall && f.installPackages)) {
    return { start: false, why: `it needs host packages: ${f.missing.join(' ')} (as root: apt-get install ${f.missing.join(' ')}, then islet kernel build)` };
  }
  if (f.freeBytes !== undefined && f.freeBytes < MIN_FREE_BYTES) {
    return { start: false, why: `the cache's filesystem has ${(f.freeBytes / 1024 ** 3).toFixed(1)} GiB free; the build needs ${MIN_FREE_BYTES / 1024 ** 3} GiB` };
  }
  return { start: true, why: f.current ? `its inputs changed since custom ${f.current.release} was built (${f.current.changed.join(', ')})` : 'no custom kernel is built yet' };
}

interface BackgroundState { pid: number; startedAt: string; log: string }

/** The pid of a background build started by setup, while it runs (a reused pid that is not `islet kernel build` does not count). */
export async function runningBackgroundBuild(c: Config): Promise<(BackgroundState & { lastLine?: string }) | undefined> {
  let st: BackgroundState;
  try {
    st = JSON.parse(await readFile(stateFile(c), 'utf8')) as BackgroundState;
  } catch {
    return undefined;
  }
  if (!Number.isInteger(st.pid) || !pidAlive(st.pid)) return undefined;
  let cmdline = '';
  try { cmdline = readFileSync(`/proc/${st.pid}/cmdline`, 'utf8'); } catch { return undefined; }
  if (!/\0kernel\0build\0/.test(`${cmdline}`)) return undefined;
  return { ...st, lastLine: await lastLine(st.log) };
}

async function lastLine(file: string): Promise<string | undefined> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.trimEnd().split('\n').at(-1) || undefined;
}

export interface BackgroundStart { started: boolean; why: string; pid?: number; log?: string }

/**
 * Starts the background build when planBackgroundBuild says so. The child is
 * `islet kernel build` on the same config file, detached from this process
 * and its terminal, its output in build.log beside the cache entries.
 */
export async function startBackgroundKernelBuild(c: Config, o: { installPackages: boolean }): Promise<BackgroundStart> {
  const cfg = { setting: c.vm.kernel, kernelPath: !!c.vm.kernel_path, build: c.vm.kernel_build };
  const veto = configVeto(cfg);
  if (veto) return { started: false, why: veto };
  const [stale, built, running, pk, source] = await Promise.all([
    staleCustomKernel(c), findCustomKernel(c), runningBackgroundBuild(c), packagesToInstall(KERNEL_BUILD_PACKAGES), installedVersion(SOURCE_PACKAGE),
  ]);
  // An upgraded linux-source (a security update) is a new kernel to build, as a changed fragment is.
  const current = stale && built
    ? { release: stale.release, changed: [...stale.changed, ...(source && built.sourceVersion && source !== built.sourceVersion ? [`${SOURCE_PACKAGE} ${built.sourceVersion} → ${source}`] : [])] }
    : undefined;
  let freeBytes: number | undefined;
  try {
    const s = statfsSync(c.paths.cacheDir);
    freeBytes = s.bavail * s.bsize;
  } catch { /* no statfs: do not block on it */ }
  const plan = planBackgroundBuild({
    ...cfg, current, runningPid: running?.pid, missing: pk.missing.map((p) => p.name), canInstall: pk.canInstall,
    installPackages: o.installPackages, freeBytes,
  });
  if (!plan.start) return { started: false, why: plan.why, pid: running?.pid, log: running?.log };
  mkdirSync(customKernelDir(c), { recursive: true });
  const log = backgroundLog(c);
  const child = spawnIslet(c, ['kernel', 'build'], log, { truncate: true });
  if (!child.pid) return { started: false, why: 'spawning `islet kernel build` failed' };
  await writeFile(stateFile(c), `${JSON.stringify({ pid: child.pid, startedAt: new Date().toISOString(), log } satisfies BackgroundState)}\n`);
  return { started: true, why: plan.why, pid: child.pid, log };
}
