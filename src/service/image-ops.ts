// Image operations that boot a VM or read the state database: verify (a
// recipe's checks, or the generic ones for an import), export, pull (an
// import under a name derived from a reference), and build with pruning.
// The CLI and the REST routes both call these; neither boots VMs itself.
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../core/config.js';
import { ImageNotFoundError, InvalidArgumentError, StateConflictError } from '../core/errors.js';
import { type Progress, silent } from '../core/progress.js';
import { run } from '../host/run.js';
import { genericChecks } from '../images/generic-checks.js';
import { ensureArtifacts, findArtifacts, listRecipeNames, loadRecipeChain, resolveVerify, type VerifyCheck } from '../images/index.js';
import { importImage, type ImportResult } from '../images/import.js';
import { INJECT_AGENT_WORD, readImportedMeta, sha256File } from '../images/imported-boot.js';
import { IMAGE_NAME } from '../images/recipe.js';
import { type CheckResult, runVerify } from '../images/verify.js';
import { resolveBootArtifacts } from './artifacts.js';
import { gcCache, type GcResult } from './image-gc.js';
import type { Runtime } from './runtime.js';

const GiB = 1024 ** 3;

export interface VerifyOptions {
  build?: boolean;
  memoryMb?: number;
  vcpus?: number;
  /** Recipes whose checks run too, e.g. ["agent-ready"] on an import meant to replace it. */
  checksFrom?: readonly string[];
  onResult?: (r: CheckResult) => void;
  progress?: Progress;
  signal?: AbortSignal;
}

export interface VerifyReport {
  image: string;
  kind: 'recipe' | 'imported';
  ok: boolean;
  bootMs: number;
  checks: CheckResult[];
}

/** The checks for an image: its recipe's, or for an import the generic ones; then those of checksFrom. */
export async function checksFor(config: Config, name: string, checksFrom: readonly string[] = []): Promise<{ kind: 'recipe' | 'imported'; checks: VerifyCheck[] }> {
  const recipes = await listRecipeNames();
  let kind: 'recipe' | 'imported';
  let checks: VerifyCheck[];
  if (recipes.includes(name)) {
    kind = 'recipe';
    checks = resolveVerify(await loadRecipeChain(name));
  } else {
    const imp = await readImportedMeta(config, name);
    if (!imp) throw new ImageNotFoundError(name, 'it has no recipe and was not imported');
    kind = 'imported';
    checks = genericChecks({ injectAgent: imp.meta.injectAgent === true });
  }
  for (const r of checksFrom) {
    if (!recipes.includes(r)) throw new InvalidArgumentError(`--checks-from ${r}: no such recipe`, `one of: ${recipes.join(', ')}`);
    const seen = new Set(checks.map((c) => c.name));
    checks = [...checks, ...resolveVerify(await loadRecipeChain(r)).filter((c) => !seen.has(c.name))];
  }
  if (!checks.length) throw new InvalidArgumentError(`image "${name}" has no verify checks`, 'add a "verify" list to its recipe (or its parent\'s)');
  return { kind, checks };
}

/** Boots a throwaway VM of the image and runs its checks, every one even after a failure. */
export async function verifyImage(config: Config, rt: Runtime, name: string, o: VerifyOptions = {}): Promise<VerifyReport> {
  const { kind, checks } = await checksFor(config, name, o.checksFrom);
  // Checks come from the recipe on disk; building first makes sure they run against that recipe's image.
  if (kind === 'recipe' && o.build !== false) await ensureArtifacts(config, o.progress ?? silent, { image: name, signal: o.signal });
  const t0 = performance.now();
  // The throwaway overlay must be at least as large as the image, or the guest sees a truncated filesystem.
  const imageBytes = (await findArtifacts(config, { image: name })).image?.sizeBytes ?? 0;
  const diskBytes = Math.max(2 * GiB, Math.ceil(imageBytes / GiB) * GiB);
  // An import gets a (restricted) NIC, so the generic network check has something to check.
  const net = kind === 'imported' ? { restrict: true } : undefined;
  const m = await rt.boot({ image: name, memoryMb: o.memoryMb ?? 1024, vcpus: o.vcpus, diskBytes, net, signal: o.signal });
  const bootMs = Math.round(performance.now() - t0);
  let results: CheckResult[];
  try {
    results = await runVerify(m, checks, o.onResult);
  } finally {
    await m.destroy();
  }
  return { image: name, kind, ok: results.every((r) => r.ok), bootMs, checks: results };
}

export interface ExportResult {
  image: string;
  dir: string;
  files: { rootfs: string; vmlinux: string; initrd: string; manifest: string };
  cmdline: string;
}

/**
 * Writes the image's rootfs (raw ext4, sparse, writable copy), the kernel
 * and initramfs it boots with under islet, and manifest.json (sha256 of
 * each, the kernel command line islet uses) into outDir, which must be
 * empty or absent: nothing is overwritten.
 */
export async function exportImage(config: Config, name: string, outDir: string): Promise<ExportResult> {
  if (!IMAGE_NAME.test(name)) throw new InvalidArgumentError(`invalid image name "${name}"`);
  const art = await resolveBootArtifacts(config, name);
  const dir = path.resolve(outDir);
  if (existsSync(dir) && (await readdir(dir)).length) {
    throw new StateConflictError(`${dir} is not empty`, 'export into a new or empty directory: nothing is overwritten', { dir });
  }
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const files = { rootfs: path.join(dir, 'rootfs.ext4'), vmlinux: path.join(dir, 'vmlinux'), initrd: path.join(dir, 'initrd.cpio'), manifest: path.join(dir, 'manifest.json') };
  await run(['cp', '--reflink=auto', '--sparse=always', art.rootfs, files.rootfs], { timeoutMs: 30 * 60_000 });
  await run(['cp', '--reflink=auto', art.vmlinux, files.vmlinux]);
  await run(['cp', '--reflink=auto', art.initrd, files.initrd]);
  for (const f of [files.rootfs, files.vmlinux, files.initrd]) await chmod(f, 0o644);
  const words = ['console=ttyS0', 'islet.root=/dev/vda', 'islet.rootfstype=ext4', `islet.init=${art.initMode}`, ...(art.injectAgent ? [INJECT_AGENT_WORD] : [])];
  const cmdline = words.join(' ');
  const manifest = {
    image: name,
    initMode: art.initMode,
    rootfs: { file: 'rootfs.ext4', format: 'raw ext4', sha256: await sha256File(files.rootfs) },
    kernel: { file: 'vmlinux', format: 'ELF vmlinux (PVH entry)', sha256: await sha256File(files.vmlinux) },
    initrd: { file: 'initrd.cpio', format: 'newc cpio: islet\'s stage 1 (mounts the root disk, then execs the agent or /sbin/init)', sha256: await sha256File(files.initrd) },
    cmdline,
    notes: 'The root is the first virtio block device. Without the initrd, boot with root=/dev/vda rw init=/usr/local/bin/islet-agent (fast images that carry the agent) or init=/sbin/init.',
  };
  await writeFile(files.manifest, JSON.stringify(manifest, null, 2) + '\n');
  return { image: name, dir, files, cmdline };
}

/**
 * An image name from a pull reference ("registry/org/name:tag" → "name-tag"):
 * lowercase, anything outside [a-z0-9-] becomes "-", at most 40 characters.
 */
export function imageNameFromReference(reference: string): string {
  const last = reference.trim().toLowerCase().split('/').pop() ?? '';
  const name = last.replace(/[^a-z0-9-]+/g, '-').replace(/-+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40).replace(/-+$/, '');
  if (!IMAGE_NAME.test(name)) {
    throw new InvalidArgumentError(`cannot make an image name from reference ${JSON.stringify(reference.slice(0, 100))}`, 'use letters, digits, "-", ":" or "/" in the reference');
  }
  return name;
}

/** POST /api/images/pull: an import whose files are named by absolute host paths (no "..", confined as imports are, size-bounded). */
export async function pullImage(config: Config, req: { reference: string; kernelPath: string; rootfsPath: string; init?: 'fast' | 'full' }): Promise<ImportResult & { reference: string }> {
  const name = imageNameFromReference(req.reference);
  const r = await importImage(config, { name, kernel: req.kernelPath, rootfs: req.rootfsPath, initMode: req.init }, silent, { absolute: true });
  return { ...r, reference: req.reference };
}

/** Build (or reuse) an image; when something new was built, prune that image's superseded builds. */
export async function buildImage(config: Config, name: string, o: { progress?: Progress; signal?: AbortSignal; prune?: boolean } = {}) {
  const a = await ensureArtifacts(config, o.progress ?? silent, { image: name, signal: o.signal });
  let pruned: GcResult | undefined;
  if (!a.image.reused && o.prune !== false) pruned = await gcCache(config, { only: `image:${name}` });
  return { artifacts: a, pruned };
}
