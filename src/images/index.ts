// The image pipeline's public face: build (or reuse) everything a workspace
// VM boots from, or just look at what is already built.
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../core/config.js';
import { type Progress, silent } from '../core/progress.js';
import { ensureHostPackages } from '../host/packages.js';
import { AGENT_BINARY, type AgentArtifact, ensureAgent } from './agent-build.js';
import { type CacheEntry, getCurrent, listEntries } from './cache.js';
import { refreshCustomInitramfs } from './custom-kernel.js';
import { ensureInitramfs, INITRAMFS_FILE, type InitramfsArtifact } from './initramfs.js';
import { ensureKernel, type KernelArtifact, kernelFromEntry } from './kernel.js';
import { artifactsRoot, type BuildOptions, formatBytes, formatMs, kindDir } from './paths.js';
import type { ResolvedRecipe } from './recipe.js';
import { ensureImage, type ImageArtifact, ROOTFS_FILE } from './rootfs.js';

export { artifactsRoot, type BuildOptions } from './paths.js';
export { type AgentArtifact, ensureAgent, assertStaticAgent } from './agent-build.js';
export { type KernelArtifact, ensureKernel, resolveKernelPackage } from './kernel.js';
export { type InitramfsArtifact, ensureInitramfs, STAGE1_MARKER, MODULES_DIR } from './initramfs.js';
export { type ImageArtifact, ensureImage, AGENT_IN_IMAGE } from './rootfs.js';
export {
  type Recipe, type ResolvedRecipe, type VerifyCheck, loadRecipe, loadRecipeChain, resolveChain, resolveVerify, listRecipeNames,
} from './recipe.js';
export { GUEST_MODULES } from './modules.js';
export { type CacheEntry, type CacheMeta, cacheKey } from './cache.js';

export const DEFAULT_IMAGE = 'base';

export interface Artifacts {
  agent: AgentArtifact;
  kernel: KernelArtifact;
  initramfs: InitramfsArtifact;
  image: ImageArtifact;
}

export interface EnsureOptions extends BuildOptions {
  /** Image recipe to build (images/<name>/recipe.json); default "base". */
  image?: string;
}

async function step<T>(n: number, name: string, progress: Progress, fn: () => Promise<T>, describe: (v: T) => string): Promise<T> {
  const t0 = performance.now();
  progress(`[${n}/5] ${name}`);
  const v = await fn();
  progress(`[${n}/5] ${name}: ${describe(v)} (${formatMs(performance.now() - t0)})`);
  return v;
}

const how = (a: { reused: boolean }) => (a.reused ? 'cached' : 'built');

/**
 * Builds whatever is missing, in dependency order, and returns every
 * artifact. Each is content-addressed, so a second run only hashes inputs.
 */
export async function ensureArtifacts(config: Config, progress: Progress = silent, opts: EnsureOptions = {}): Promise<Artifacts> {
  const t0 = performance.now();
  const name = opts.image ?? DEFAULT_IMAGE;
  await step(1, 'host packages', progress, () => ensureHostPackages(progress, opts), () => 'present');
  const agent = await step(2, 'agent', progress, () => ensureAgent(config, progress, opts),
    (a) => `${how(a)} ${formatBytes(a.sizeBytes)} static (${a.key})`);
  const kernel = await step(3, 'kernel', progress, () => ensureKernel(config, progress, opts),
    (k) => `${how(k)} ${k.version}, vmlinux ${formatBytes(k.vmlinuxBytes)}, ${k.modules.length} modules (${k.key})`);
  const initramfs = await step(4, 'initramfs', progress, () => ensureInitramfs(config, kernel, agent, progress, opts),
    (i) => `${how(i)} ${formatBytes(i.sizeBytes)} (${i.key})`);
  // A custom kernel (islet kernel build) has its own initramfs holding the agent: keep it current too.
  await refreshCustomInitramfs(config, agent);
  const image = await step(5, `image ${name}`, progress, () => ensureImage(config, name, agent, progress, opts, kernel),
    (i) => `${how(i)} ${formatBytes(i.sizeBytes)} (${formatBytes(i.minBytes)} used) (${i.key})`);
  progress(`artifacts ready in ${formatMs(performance.now() - t0)} under ${artifactsRoot(config)}`);
  return { agent, kernel, initramfs, image };
}

export type FoundArtifacts = { [K in keyof Artifacts]: Artifacts[K] | undefined };

const have = (e: CacheEntry | undefined, file: string) => (e && existsSync(path.join(e.path, file)) ? e : undefined);

/**
 * What the last successful ensure* left as current, without building or
 * querying anything (for `islet check`). Whether it is still up to date with
 * the sources is only known to ensureArtifacts.
 */
export async function findArtifacts(config: Config, opts: { image?: string } = {}): Promise<FoundArtifacts> {
  const name = opts.image ?? DEFAULT_IMAGE;
  const a = have(await getCurrent(kindDir.agent(config)), AGENT_BINARY);
  const k = have(await getCurrent(kindDir.kernel(config)), 'vmlinux');
  const i = have(await getCurrent(kindDir.initramfs(config)), INITRAMFS_FILE);
  const m = have(await getCurrent(kindDir.image(config, name)), ROOTFS_FILE);
  const kr = k?.meta.recipe as { package?: string; version?: string } | undefined;
  const mr = m?.meta.recipe as { recipe?: ResolvedRecipe } | undefined;
  return {
    agent: a && {
      path: path.join(a.path, AGENT_BINARY), key: a.key, sizeBytes: a.meta.files[AGENT_BINARY] ?? 0,
      goVersion: String(a.meta.info.goVersion ?? ''), reused: true,
    },
    kernel: k && kernelFromEntry(k.path, k.meta.info, { name: kr?.package ?? '', version: kr?.version ?? '' }, k.key, k.meta.files, true),
    initramfs: i && { path: path.join(i.path, INITRAMFS_FILE), key: i.key, sizeBytes: i.meta.files[INITRAMFS_FILE] ?? 0, reused: true },
    image: m && mr?.recipe && {
      name, rootfs: path.join(m.path, ROOTFS_FILE), sizeBytes: m.meta.files[ROOTFS_FILE] ?? 0,
      minBytes: Number(m.meta.info.minBytes ?? 0), key: m.key, recipe: mr.recipe, reused: true,
    },
  };
}

/** Every cached entry per kind, current or not (nothing is garbage-collected yet). */
export async function listArtifacts(config: Config, images: readonly string[] = [DEFAULT_IMAGE]): Promise<Record<string, CacheEntry[]>> {
  const out: Record<string, CacheEntry[]> = {
    agent: await listEntries(kindDir.agent(config)),
    kernel: await listEntries(kindDir.kernel(config)),
    initramfs: await listEntries(kindDir.initramfs(config)),
  };
  for (const n of images) out[`image:${n}`] = await listEntries(kindDir.image(config, n));
  return out;
}
