// The image catalog as the CLI shows it: every recipe, and every image that
// has a build in the cache (a recipe may have been removed since), read from
// the cache's meta.json files only, so listing never builds or boots.
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../core/config.js';
import { ImageNotFoundError, IsletError } from '../core/errors.js';
import { type CacheEntry, getCurrent, listEntries, removeTree } from './cache.js';
import { artifactsRoot, kindDir } from './paths.js';
import { IMAGE_NAME, listRecipeNames, loadRecipe, type ResolvedRecipe } from './recipe.js';
import { ROOTFS_FILE } from './rootfs.js';

/**
 * agentkernel's published rootfs sizes (its images/README.md, "Available
 * Runtimes": Alpine-based ext4 images), the figures islet's images are set
 * against in `islet image list` and the bench. Keyed by islet image: the slim
 * runtimes are the like-for-like comparison, the dev-grade ones (with a
 * compiler) are shown against the same figure so the gap stays visible.
 */
export const REFERENCE_SIZES: Readonly<Record<string, { mb: number; what: string }>> = {
  base: { mb: 64, what: 'agentkernel base: Alpine, busybox, guest agent' },
  'python-slim': { mb: 256, what: 'agentkernel python: base + Python 3, pip' },
  python: { mb: 256, what: 'agentkernel python: base + Python 3, pip' },
  'node-slim': { mb: 256, what: 'agentkernel node: base + Node.js, npm' },
  node: { mb: 256, what: 'agentkernel node: base + Node.js, npm' },
  go: { mb: 512, what: 'agentkernel go: base + Go toolchain' },
  rust: { mb: 512, what: 'agentkernel rust: base + Rust, Cargo' },
};

export function referenceMB(name: string): number | null {
  return Object.hasOwn(REFERENCE_SIZES, name) ? REFERENCE_SIZES[name]!.mb : null;
}

export interface CatalogRow {
  name: string;
  /** From the build when there is one, else from the recipe. */
  parent: string | null;
  initMode: string | null;
  hasRecipe: boolean;
  built: boolean;
  /** The current build's cache key, which hashes the whole recipe chain. */
  key: string | null;
  /** The filesystem shrunk to its contents (what sizeLimitMB is checked against). */
  usedBytes: number | null;
  /** Apparent size of rootfs.ext4, including the sparse extraFreeMB. */
  fileBytes: number | null;
  builtAt: string | null;
  buildMs: number | null;
  /** Cached builds of this image, current or not. */
  builds: number;
  /** agentkernel's size for the like image (REFERENCE_SIZES), in MB as it publishes them; null: no counterpart. */
  referenceMB: number | null;
}

async function cachedImageNames(config: Config): Promise<string[]> {
  const names = await readdir(path.join(artifactsRoot(config), 'images')).catch(() => [] as string[]);
  return names.filter((n) => IMAGE_NAME.test(n));
}

function rowFromEntry(name: string, e: CacheEntry, builds: number): CatalogRow {
  const r = (e.meta.recipe as { recipe?: Partial<ResolvedRecipe> } | null)?.recipe ?? {};
  return {
    name, parent: r.parent ?? null, initMode: r.initMode ?? null, hasRecipe: false, built: true, key: e.key,
    usedBytes: Number(e.meta.info.minBytes ?? 0) || null, fileBytes: e.meta.files[ROOTFS_FILE] ?? null,
    builtAt: e.meta.builtAt, buildMs: e.meta.buildMs, builds, referenceMB: referenceMB(name),
  };
}

export async function listImages(config: Config): Promise<CatalogRow[]> {
  const recipes = new Set(await listRecipeNames());
  const names = [...new Set([...recipes, ...(await cachedImageNames(config))])].sort();
  const rows: CatalogRow[] = [];
  for (const name of names) {
    const dir = kindDir.image(config, name);
    const builds = (await listEntries(dir)).length;
    const cur = await getCurrent(dir);
    if (cur && existsSync(path.join(cur.path, ROOTFS_FILE))) {
      rows.push({ ...rowFromEntry(name, cur, builds), hasRecipe: recipes.has(name) });
      continue;
    }
    const recipe = recipes.has(name) ? await loadRecipe(name).catch(() => undefined) : undefined;
    rows.push({
      name, parent: recipe?.parent ?? null, initMode: recipe?.initMode ?? null, hasRecipe: recipes.has(name), built: false,
      key: null, usedBytes: null, fileBytes: null, builtAt: null, buildMs: null, builds, referenceMB: referenceMB(name),
    });
  }
  return rows;
}

/**
 * Deletes every cached build of an image (the recipe stays). Whether a
 * workspace still uses it is the caller's question: the image layer does not
 * know about workspaces.
 */
export async function removeImageBuilds(config: Config, name: string): Promise<{ builds: number; bytes: number }> {
  if (!IMAGE_NAME.test(name)) throw new ImageNotFoundError(name, 'not a valid image name');
  const dir = kindDir.image(config, name);
  if (!existsSync(dir)) {
    throw new ImageNotFoundError(name, 'has no build to remove', '`islet image list` shows what is built');
  }
  const entries = await listEntries(dir);
  await removeTree(dir);
  return { builds: entries.length, bytes: entries.reduce((a, e) => a + e.meta.sizeBytes, 0) };
}
