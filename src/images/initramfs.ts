// The initramfs: the agent as /init (stage 1), the virtio modules it loads
// before it can see the root disk and its port, and /dev/console so that
// init's output reaches the serial console before devtmpfs is mounted.
// Uncompressed on purpose: ~2 MB, and unpacking is faster than decompressing
// under TCG.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../core/config.js';
import type { Progress } from '../core/progress.js';
import type { AgentArtifact } from './agent-build.js';
import { cached, cacheKey, setCurrent } from './cache.js';
import { type CpioEntry, writeCpio } from './cpio.js';
import type { KernelArtifact } from './kernel.js';
import { type BuildOptions, formatBytes, kindDir } from './paths.js';

/** Bump whenever the archive's layout changes: the agent relies on it. */
export const INITRAMFS_FORMAT = 1;
export const INITRAMFS_FILE = 'initramfs.cpio';
/** Present only in the initramfs: tells the agent it runs as stage 1. */
export const STAGE1_MARKER = 'islet-initramfs';
export const MODULES_DIR = 'lib/modules/islet';

export interface InitramfsArtifact {
  path: string;
  key: string;
  sizeBytes: number;
  reused: boolean;
}

/** The archive entries, in an order where every directory precedes its contents. */
export function initramfsEntries(agent: Buffer, modules: readonly { name: string; data: Buffer }[]): CpioEntry[] {
  return [
    { type: 'dir', path: 'dev' },
    { type: 'char', path: 'dev/console', mode: 0o600, major: 5, minor: 1 },
    { type: 'dir', path: 'proc' },
    { type: 'dir', path: 'sys' },
    { type: 'dir', path: 'newroot' },
    { type: 'dir', path: 'lib' },
    { type: 'dir', path: 'lib/modules' },
    { type: 'dir', path: MODULES_DIR },
    ...modules.map((m): CpioEntry => ({ type: 'file', path: `${MODULES_DIR}/${m.name}.ko`, mode: 0o644, data: m.data })),
    // Load order, dependencies first, whitespace separated.
    { type: 'file', path: `${MODULES_DIR}/order`, mode: 0o644, data: Buffer.from(modules.map((m) => m.name).join('\n') + '\n') },
    { type: 'file', path: STAGE1_MARKER, mode: 0o644, data: Buffer.alloc(0) },
    { type: 'file', path: 'init', mode: 0o755, data: agent },
  ];
}

export async function ensureInitramfs(
  config: Config, kernel: KernelArtifact, agent: AgentArtifact, progress: Progress, _opts: BuildOptions = {},
): Promise<InitramfsArtifact> {
  const recipe = { kernel: kernel.key, agent: agent.key, modules: kernel.modules, format: INITRAMFS_FORMAT };
  const key = cacheKey(['initramfs', recipe]);
  const dir = kindDir.initramfs(config);
  const entry = await cached(dir, key, async (tmp) => {
    const modules = await Promise.all(kernel.modules.map(async (name) => ({
      name, data: await readFile(path.join(kernel.modulesDir, `${name}.ko`)),
    })));
    const archive = writeCpio(initramfsEntries(await readFile(agent.path), modules));
    await writeFile(path.join(tmp, INITRAMFS_FILE), archive);
    progress(`initramfs: ${formatBytes(archive.length)} (agent + ${modules.length} modules)`);
    return { recipe };
  });
  await setCurrent(dir, key);
  return { path: path.join(entry.path, INITRAMFS_FILE), key, sizeBytes: entry.meta.files[INITRAMFS_FILE] ?? 0, reused: entry.reused };
}
