// Image recipes are data (images/<name>/recipe.json), validated here so a
// typo in a recipe fails with its path instead of as a strange build.
//
// A recipe may name a parent. A child is not layered on its parent's
// filesystem: the chain is flattened into one recipe (union of packages,
// files, services; the nearest recipe's settings win) and built from scratch.
// That costs a full mmdebstrap per image but keeps every image a single
// self-contained ext4, and the cache key covers every recipe of the chain, so
// editing a parent rebuilds its children.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { ImageNotFoundError } from '../core/errors.js';
import { imageBuildFailed } from './errors.js';
import { imagesDir as defaultImagesDir } from './paths.js';

export const IMAGE_NAME = /^[a-z0-9][a-z0-9-]{0,39}$/;
/** Deep enough for base → dev → python → project; deeper is more likely a mistake. */
export const MAX_CHAIN = 8;

const debianPackage = z.string().regex(/^[a-z0-9][a-z0-9+.-]+$/, 'must be a Debian package name');
// Scoped or plain, with an optional version or tag: "pnpm", "@scope/x@1.2".
const npmPackage = z.string().regex(/^(@[a-z0-9][a-z0-9._-]*\/)?[a-z0-9][a-z0-9._-]*(@[A-Za-z0-9.^~<>=*|+-]+)?$/, 'must be an npm package spec');
// A Debian suite or codename as the mirror's dists/ names it: "trixie", "bookworm-backports", "stable".
export const DEBIAN_SUITE = /^[a-z][a-z0-9]{1,19}(-[a-z]{1,20})?$/;
const unitName = z.string().regex(/^[A-Za-z0-9@:._-]+\.(service|socket|timer|path|target)$/, 'must be a systemd unit file name');

const FileSchema = z.object({
  path: z.string().regex(/^\/[^\0]+$/, 'must be an absolute path')
    .refine((p) => !p.split('/').includes('..') && !p.endsWith('/'), 'must not contain ".." or end with "/"'),
  content: z.string().max(1 << 20),
  mode: z.string().regex(/^0?[0-7]{3}$/, 'must be an octal mode such as "0644"').default('0644'),
}).strict();

/** Login names as useradd takes them; the user must exist in the image, with a home directory. */
export const SshSchema = z.object({
  user: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'must be a Unix user name'),
}).strict();

export const VerifyCheckSchema = z.object({
  name: z.string().min(1).max(100),
  run: z.string().min(1).describe('a /bin/sh script run as root in a throwaway VM; must exit 0'),
  expect: z.string().optional().describe('stdout, trimmed, must contain this'),
  timeoutMs: z.number().int().min(1000).max(1_800_000).optional(),
}).strict();

export const RecipeSchema = z.object({
  name: z.string().regex(IMAGE_NAME),
  description: z.string().max(500).optional(),
  parent: z.string().regex(IMAGE_NAME).nullable().default(null).describe('image this one extends; null = built from scratch'),
  packages: z.array(debianPackage).default([]).describe('installed on top of the variant'),
  npmPackages: z.array(npmPackage).default([]).describe('installed into the tree\'s /usr/local by the build host\'s npm (npm install -g --prefix)'),
  scripts: z.array(z.string().min(1).max(1 << 16)).default([])
    .describe('/bin/sh -e scripts run as root chrooted in the tree, after packages and npmPackages, before files'),
  files: z.array(FileSchema).default([]).describe('written into the tree after packages'),
  services: z.array(unitName).default([]).describe('systemd units enabled for multi-user.target (full init)'),
  suite: z.string().regex(DEBIAN_SUITE, 'must be a Debian suite such as "bookworm" or "trixie"').optional()
    .describe('Debian suite the whole image is built from; the nearest recipe of the chain that sets it wins; unset: [images] suite'),
  variant: z.enum(['minbase', 'required', 'important', 'standard']).optional().describe('mmdebstrap --variant; root recipe only'),
  initMode: z.enum(['fast', 'full']).optional().describe('fast: the agent is PID 1; full: systemd starts the agent'),
  sizeLimitMB: z.number().int().min(8).max(65536).optional().describe('fail the build if the shrunk filesystem is larger'),
  extraFreeMB: z.number().int().min(0).max(65536).optional().describe('free space added after shrinking (sparse in the file)'),
  verify: z.array(VerifyCheckSchema).default([]).describe('checks `islet image verify` runs in a booted VM'),
  ssh: SshSchema.optional().describe('the image runs sshd for this user: islet gives each workspace its own key pair'),
}).strict();

export type Recipe = z.infer<typeof RecipeSchema>;
export type VerifyCheck = z.infer<typeof VerifyCheckSchema>;
export type RecipeFile = z.infer<typeof FileSchema>;

/** A flattened chain: what one mmdebstrap build needs. */
export interface ResolvedRecipe {
  name: string;
  parent: string | null;
  /** Root first, this image last. */
  chain: string[];
  variant: NonNullable<Recipe['variant']>;
  packages: string[];
  npmPackages: string[];
  /** Every recipe's scripts, root first (not deduplicated: order and repetition are the author's). */
  scripts: string[];
  files: RecipeFile[];
  services: string[];
  initMode: NonNullable<Recipe['initMode']>;
  sizeLimitMB: number;
  extraFreeMB: number;
  /** The nearest recipe's; absent: [images] suite from the config (and the cache key of a recipe without one stays as it was). */
  suite?: string;
  /** The nearest recipe's; absent: no sshd for islet to give keys to. */
  ssh?: { user: string };
}

const invalid = (file: string, what: string) => imageBuildFailed(`invalid recipe ${file}: ${what}`, 'fix the recipe file', { file });

/** Validates one recipe's JSON value; `file` only names it in errors. */
export function parseRecipe(raw: unknown, file: string, expectedName?: string): Recipe {
  const r = RecipeSchema.safeParse(raw);
  if (!r.success) {
    const issues = r.error.issues.map((i) => {
      const at = i.path.join('.') || '(top level)';
      if (i.code === 'unrecognized_keys') return `unknown field(s) ${i.keys.map((k) => `"${k}"`).join(', ')} in ${at}`;
      return `${at}: ${i.message}`;
    });
    throw invalid(file, issues.join('; '));
  }
  const v = r.data;
  if (expectedName !== undefined && v.name !== expectedName) {
    throw imageBuildFailed(`${file} names itself "${v.name}"`, `set "name": "${expectedName}"`, { file });
  }
  if (v.parent === v.name) throw invalid(file, 'an image cannot be its own parent');
  if (v.parent === null) {
    const missing = (['variant', 'initMode', 'sizeLimitMB', 'extraFreeMB'] as const).filter((k) => v[k] === undefined);
    if (missing.length) throw invalid(file, `a recipe without a parent must set ${missing.map((k) => `"${k}"`).join(', ')}`);
  } else if (v.variant !== undefined) {
    throw invalid(file, '"variant" is only allowed in a recipe without a parent (the chain\'s root decides it)');
  }
  const names = v.verify.map((c) => c.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw invalid(file, `two verify checks are named "${dup}"`);
  return v;
}

export function recipeFile(name: string, dir = defaultImagesDir()): string {
  return path.join(dir, name, 'recipe.json');
}

export async function loadRecipe(name: string, dir = defaultImagesDir()): Promise<Recipe> {
  if (!IMAGE_NAME.test(name)) throw new ImageNotFoundError(name, 'not a valid image name');
  const file = recipeFile(name, dir);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new ImageNotFoundError(name, `no recipe at ${file}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw imageBuildFailed(`${file} is not valid JSON: ${(e as Error).message}`, 'fix the recipe file', { file });
  }
  return parseRecipe(raw, file, name);
}

/** The recipe and its ancestors, root first. */
export async function loadRecipeChain(name: string, dir = defaultImagesDir()): Promise<Recipe[]> {
  const chain: Recipe[] = [];
  for (let next: string | null = name; next !== null;) {
    if (chain.some((r) => r.name === next)) {
      throw imageBuildFailed(`image ${name}: parent cycle ${[...chain.map((r) => r.name), next].join(' → ')}`,
        'break the cycle: one recipe of the chain must have "parent": null', { chain: chain.map((r) => r.name) });
    }
    if (chain.length >= MAX_CHAIN) {
      throw imageBuildFailed(`image ${name}: more than ${MAX_CHAIN} recipes in its parent chain`, 'flatten the chain');
    }
    const want: string = next;
    const r: Recipe = await loadRecipe(want, dir).catch((e: unknown) => {
      if (want !== name && e instanceof ImageNotFoundError) {
        throw imageBuildFailed(`image ${chain[chain.length - 1]?.name}: parent "${want}" has no recipe (${recipeFile(want, dir)})`,
          'fix "parent" or add the parent recipe', { parent: want });
      }
      throw e;
    });
    chain.push(r);
    next = r.parent;
  }
  return chain.reverse();
}

const union = <T>(lists: T[][]): T[] => [...new Set(lists.flat())];

/** Flattens a root-first chain (see the header comment for the rules). */
export function resolveChain(chain: readonly Recipe[]): ResolvedRecipe {
  const root = chain[0];
  const self = chain[chain.length - 1];
  if (!root || !self) throw new TypeError('resolveChain: empty chain');
  const last = <K extends 'initMode' | 'sizeLimitMB' | 'extraFreeMB'>(k: K): NonNullable<Recipe[K]> => {
    for (let i = chain.length - 1; i >= 0; i--) {
      const v = chain[i]?.[k];
      if (v !== undefined) return v as NonNullable<Recipe[K]>;
    }
    throw invalid(recipeFile(root.name), `"${k}" is not set anywhere in the chain`);
  };
  // Later recipes replace an earlier file at the same path.
  const files = new Map<string, RecipeFile>();
  for (const r of chain) for (const f of r.files) files.set(f.path, f);
  const out: ResolvedRecipe = {
    name: self.name,
    parent: self.parent,
    chain: chain.map((r) => r.name),
    variant: root.variant ?? 'minbase',
    packages: union(chain.map((r) => r.packages)),
    npmPackages: union(chain.map((r) => r.npmPackages)),
    scripts: chain.flatMap((r) => r.scripts),
    files: [...files.values()],
    services: union(chain.map((r) => r.services)),
    initMode: last('initMode'),
    sizeLimitMB: last('sizeLimitMB'),
    extraFreeMB: last('extraFreeMB'),
  };
  // The chain is flattened and built from scratch, so a child on another suite
  // installs its parents' packages from that suite too: suites are never mixed in one tree.
  const suite = [...chain].reverse().find((r) => r.suite !== undefined)?.suite;
  if (suite !== undefined) out.suite = suite;
  const ssh = [...chain].reverse().find((r) => r.ssh)?.ssh;
  if (ssh) out.ssh = { user: ssh.user }; // absent otherwise: images without it keep their cache keys
  const file = recipeFile(self.name);
  if (out.initMode === 'full' && !out.packages.includes('systemd-sysv')) {
    throw invalid(file, 'initMode "full" needs systemd as /sbin/init: add "systemd-sysv" to packages');
  }
  if (out.ssh && (out.initMode !== 'full' || !out.packages.includes('openssh-server'))) {
    throw invalid(file, '"ssh" needs sshd running: initMode "full" and "openssh-server" in packages');
  }
  if (out.services.length && out.initMode !== 'full') {
    throw invalid(file, `services (${out.services.join(', ')}) are only started with initMode "full"`);
  }
  return out;
}

/** Every check of the chain, ancestors' first; a child's check replaces an ancestor's of the same name. */
export function resolveVerify(chain: readonly Recipe[]): VerifyCheck[] {
  const byName = new Map<string, VerifyCheck>();
  for (const r of chain) for (const c of r.verify) byName.set(c.name, c);
  return [...byName.values()];
}

/**
 * What the cache key hashes: every recipe of the chain minus what cannot
 * change the built filesystem (verify checks, description), so editing a
 * check does not rebuild the image but editing a parent's packages does.
 */
export function chainKeyInput(chain: readonly Recipe[]): unknown[] {
  return chain.map(({ verify: _v, description: _d, ...build }) => build);
}

/** Names of the recipes under dir (images/<name>/recipe.json). */
export async function listRecipeNames(dir = defaultImagesDir()): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const out: string[] = [];
  for (const n of names.sort()) {
    if (IMAGE_NAME.test(n) && (await readFile(recipeFile(n, dir)).then(() => true, () => false))) out.push(n);
  }
  return out;
}
