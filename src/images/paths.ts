// Where sources and artifacts live. Sources (agent/, images/) ship inside the
// npm package, so they are found from this file's own location, never from the
// working directory: dist/src/images/paths.js → ../../../ is the package root.
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { Config } from '../core/config.js';

export const packageRoot = fileURLToPath(new URL('../../../', import.meta.url));

export const agentSourceDir = path.join(packageRoot, 'agent');

/** Where recipes live; $ISLET_IMAGES_DIR points elsewhere (tests, a user's own catalog). */
export function imagesDir(): string {
  const d = process.env.ISLET_IMAGES_DIR;
  return d && path.isAbsolute(d) ? d : path.join(packageRoot, 'images');
}

export function recipePath(image: string): string {
  return path.join(imagesDir(), image, 'recipe.json');
}

/** The root of every built artifact (agent, kernel, initramfs, images, Go's build cache). */
export function artifactsRoot(config: Config): string {
  return config.paths.cacheDir;
}

export const kindDir = {
  agent: (c: Config) => path.join(artifactsRoot(c), 'agent'),
  kernel: (c: Config) => path.join(artifactsRoot(c), 'kernel'),
  initramfs: (c: Config) => path.join(artifactsRoot(c), 'initramfs'),
  image: (c: Config, name: string) => path.join(artifactsRoot(c), 'images', name),
  go: (c: Config) => path.join(artifactsRoot(c), 'go'),
};

/** Options every ensure* step takes. */
export interface BuildOptions {
  signal?: AbortSignal;
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function formatMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}
