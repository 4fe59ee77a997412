// The config schema: TOML with agentiso's sections, every key optional with a
// documented default (docs/config.md), unknown keys rejected with their path.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { z } from 'zod';
import { ConfigError } from './errors.js';

function defaultDataDir(): string {
  const xdg = process.env.XDG_DATA_HOME;
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.local', 'share'), 'islet');
}

function defaultRunDir(): string {
  // Unix socket paths must stay under ~100 bytes, so prefer a short base.
  const xdg = process.env.XDG_RUNTIME_DIR;
  if (xdg && path.isAbsolute(xdg) && xdg.length < 40) return path.join(xdg, 'islet');
  return `/tmp/islet-${process.getuid?.() ?? 0}`;
}

const absPath = z.string().min(1).refine((p) => path.isAbsolute(p), 'must be an absolute path');

const StorageSchema = z.object({
  data_dir: absPath.optional().describe('where workspace disks and state live; default $XDG_DATA_HOME/islet or ~/.local/share/islet'),
  cache_dir: absPath.optional().describe('built kernel, agent and images; default <data_dir>/cache'),
  run_dir: absPath.optional().describe('sockets and pid files; default $XDG_RUNTIME_DIR/islet or /tmp/islet-<uid>'),
}).strict();

const VmSchema = z.object({
  accel: z.enum(['auto', 'kvm', 'tcg']).default('auto').describe('auto = KVM if a canary boot succeeds, else TCG'),
  kernel_path: absPath.optional().describe('a vmlinux to boot instead of the built one'),
  initrd_path: absPath.optional().describe('an initramfs to use instead of the built one'),
  qemu_binary: z.string().min(1).default('qemu-system-x86_64'),
  boot_timeout_ms: z.number().int().min(1000).max(600_000).default(120_000).describe('QEMU start to agent hello'),
  request_timeout_ms: z.number().int().min(100).max(600_000).default(30_000).describe('one agent request round trip'),
  tcg_tb_size_mb: z.number().int().min(0).max(1024).default(32).describe('TCG translation cache size; 0 = QEMU default'),
  canary_timeout_ms: z.number().int().min(500).max(120_000).default(8_000).describe('how long the KVM canary boot may take'),
}).strict();

const ResourcesSchema = z.object({
  default_vcpus: z.number().int().min(1).max(64).default(1),
  default_memory_mb: z.number().int().min(64).max(65536).default(256),
}).strict();

const ImagesSchema = z.object({
  mirror: z.string().url().default('http://deb.debian.org/debian').describe('Debian mirror for mmdebstrap'),
  suite: z.string().min(1).default('bookworm'),
  kernel_package: z.string().regex(/^linux-image-[a-z0-9.+-]+$/).optional()
    .describe('Debian kernel package; default: the newest linux-image-*-cloud-amd64 apt offers'),
}).strict();

export const ConfigSchema = z.object({
  storage: StorageSchema.default({}),
  vm: VmSchema.default({}),
  resources: ResourcesSchema.default({}),
  images: ImagesSchema.default({}),
}).strict();

export type ConfigInput = z.input<typeof ConfigSchema>;
type Parsed = z.output<typeof ConfigSchema>;

export interface Paths {
  dataDir: string;
  cacheDir: string;
  runDir: string;
}

export type Config = Parsed & { paths: Paths; source: string | undefined };

export function resolveConfig(raw: unknown, source?: string): Config {
  const r = ConfigSchema.safeParse(raw ?? {});
  if (!r.success) {
    const lines = r.error.issues.map((i) => {
      const key = i.path.join('.') || '(top level)';
      if (i.code === 'unrecognized_keys') {
        const where = i.path.length ? `[${i.path.join('.')}]` : 'top level';
        return `unknown key(s) ${i.keys.map((k) => `"${k}"`).join(', ')} in ${where}`;
      }
      return `${key}: ${i.message}`;
    });
    throw new ConfigError(`invalid config${source ? ` ${source}` : ''}: ${lines.join('; ')}`, undefined, { issues: r.error.issues });
  }
  const c = r.data;
  const dataDir = c.storage.data_dir ?? defaultDataDir();
  return {
    ...c,
    paths: {
      dataDir,
      cacheDir: c.storage.cache_dir ?? path.join(dataDir, 'cache'),
      runDir: c.storage.run_dir ?? defaultRunDir(),
    },
    source,
  };
}

/** Loads a TOML config file; with no file, the defaults (and $ISLET_CONFIG if set). */
export function loadConfig(file?: string): Config {
  const f = file ?? process.env.ISLET_CONFIG;
  if (!f) return resolveConfig({});
  let text: string;
  try {
    text = readFileSync(f, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config file ${f}: ${(e as Error).message}`, 'pass an existing file with --config', { file: f });
  }
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (e) {
    throw new ConfigError(`config file ${f} is not valid TOML: ${(e as Error).message}`, undefined, { file: f });
  }
  return resolveConfig(raw, f);
}
