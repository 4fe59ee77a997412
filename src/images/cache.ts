// Content-addressed build cache. An entry is a directory <dir>/<key> that
// appears in one rename(2), with meta.json written before the rename: if the
// directory exists, the artifact is complete. A crash leaves only a
// .tmp-<key>-<pid> directory, which a later run removes once <pid> is dead.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { imageBuildFailed } from './errors.js';

export const META_FILE = 'meta.json';

export interface CacheMeta {
  key: string;
  /** What the artifact was built from (the inputs of the key, readable). */
  recipe: unknown;
  /** Anything the builder wants to remember (versions, offsets, timings). */
  info: Record<string, unknown>;
  /** Relative path → bytes, for every file in the entry except meta.json. */
  files: Record<string, number>;
  sizeBytes: number;
  builtAt: string;
  buildMs: number;
}

export interface CacheEntry {
  key: string;
  path: string;
  meta: CacheMeta;
  /** False when this call built it. */
  reused: boolean;
}

export interface BuildResult {
  recipe?: unknown;
  info?: Record<string, unknown>;
}

/** JSON with object keys sorted, so equal values always hash equally. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') {
    if (typeof v === 'number' && !Number.isFinite(v)) throw new TypeError('canonicalJson: non-finite number');
    if (typeof v === 'function' || typeof v === 'symbol' || typeof v === 'bigint') {
      throw new TypeError(`canonicalJson: cannot encode ${typeof v}`);
    }
    return JSON.stringify(v) ?? 'null';
  }
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(v as Record<string, unknown>)
    .filter(([, x]) => x !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(',')}}`;
}

/** 16 hex chars of sha256: 64 bits is plenty for a per-host cache, and short paths keep argv readable. */
export function cacheKey(parts: unknown[]): string {
  return createHash('sha256').update(canonicalJson(parts)).digest('hex').slice(0, 16);
}

export async function readEntry(dir: string, key: string): Promise<CacheEntry | undefined> {
  const p = path.join(dir, key);
  try {
    const meta = JSON.parse(await readFile(path.join(p, META_FILE), 'utf8')) as CacheMeta;
    return { key, path: p, meta, reused: true };
  } catch {
    return undefined;
  }
}

/** Every complete entry in dir, oldest first (older ones are kept: no GC yet). */
export async function listEntries(dir: string): Promise<CacheEntry[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const out: CacheEntry[] = [];
  for (const n of names) {
    if (n.startsWith('.') || !/^[0-9a-f]{16}$/.test(n)) continue;
    const e = await readEntry(dir, n);
    if (e) out.push(e);
  }
  return out.sort((a, b) => a.meta.builtAt.localeCompare(b.meta.builtAt));
}

// Concurrent callers in one process share one build (the temp name has only
// the pid to tell builders apart); other processes race on the rename.
const inFlight = new Map<string, Promise<CacheEntry>>();

/**
 * Returns the entry <dir>/<key>, building it first if absent. `build` fills
 * the temp directory it is given; it must not write anywhere else.
 */
export function cached(dir: string, key: string, build: (tmp: string) => Promise<BuildResult | void>): Promise<CacheEntry> {
  const final = path.join(dir, key);
  let p = inFlight.get(final);
  if (!p) {
    p = buildOnce(dir, key, build).finally(() => inFlight.delete(final));
    inFlight.set(final, p);
  }
  return p;
}

async function buildOnce(dir: string, key: string, build: (tmp: string) => Promise<BuildResult | void>): Promise<CacheEntry> {
  const existing = await readEntry(dir, key);
  if (existing) return existing;
  await mkdir(dir, { recursive: true });
  await removeStaleTemps(dir);
  const tmp = path.join(dir, `.tmp-${key}-${process.pid}`);
  await removeTree(tmp);
  await mkdir(tmp);
  const t0 = Date.now();
  try {
    const res = (await build(tmp)) ?? {};
    const files = await fileSizes(tmp);
    delete files[META_FILE];
    const meta: CacheMeta = {
      key,
      recipe: res.recipe ?? null,
      info: res.info ?? {},
      files,
      sizeBytes: Object.values(files).reduce((a, b) => a + b, 0),
      builtAt: new Date().toISOString(),
      buildMs: Date.now() - t0,
    };
    await writeFile(path.join(tmp, META_FILE), JSON.stringify(meta, null, 2) + '\n');
    try {
      await rename(tmp, path.join(dir, key));
    } catch (e) {
      // Another process finished the same key first: theirs is as good as ours.
      const code = (e as NodeJS.ErrnoException).code;
      const clash = code === 'ENOTEMPTY' || code === 'EEXIST';
      const other = clash ? await readEntry(dir, key) : undefined;
      if (!other) {
        throw clash
          ? imageBuildFailed(`${path.join(dir, key)} exists but is not a complete cache entry (no ${META_FILE})`,
            `remove it (rm -rf ${path.join(dir, key)}) and run again`, { path: path.join(dir, key) }, e)
          : e;
      }
      await removeTree(tmp);
      return other;
    }
    return { key, path: path.join(dir, key), meta, reused: false };
  } catch (e) {
    await removeTree(tmp).catch(() => { /* keep the original error */ });
    throw e;
  }
}

async function fileSizes(root: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const walk = async (rel: string): Promise<void> => {
    for (const d of await readdir(path.join(root, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (d.isDirectory()) await walk(r);
      else if (d.isFile()) out[r] = (await stat(path.join(root, r))).size;
    }
  };
  await walk('');
  return out;
}

async function removeStaleTemps(dir: string): Promise<void> {
  for (const n of await readdir(dir)) {
    const m = /^\.tmp-[0-9a-f]+-(\d+)$/.exec(n);
    if (m && !processAlive(Number(m[1]))) await removeTree(path.join(dir, n)).catch(() => { /* retried next run */ });
  }
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return false; // our own leftover from a previous life of this pid
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * rm -rf that refuses to cross into a mount: a build killed half-way
 * (mmdebstrap in root mode mounts /proc and /sys inside its tree) must never
 * make us delete the host's files through a leftover mount.
 */
export async function removeTree(p: string): Promise<void> {
  if (!existsSync(p)) return;
  const abs = path.resolve(p) + '/';
  let mounts = '';
  try {
    mounts = await readFile('/proc/self/mountinfo', 'utf8');
  } catch { /* not Linux: nothing to guard against */ }
  const inside = mounts.split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m.startsWith(abs));
  if (inside.length) {
    throw imageBuildFailed(`refusing to delete ${p}: ${inside.length} filesystem(s) are still mounted inside it`,
      `unmount them (umount -R ${inside[0]}) and run again`, { mounts: inside });
  }
  await rm(p, { recursive: true, force: true });
}

/** Records which entry of a kind is current, for lookups that must not build. */
export async function setCurrent(dir: string, key: string): Promise<void> {
  const tmp = path.join(dir, `.current-${process.pid}`);
  await writeFile(tmp, key + '\n');
  await rename(tmp, path.join(dir, 'current'));
}

export async function getCurrent(dir: string): Promise<CacheEntry | undefined> {
  try {
    const key = (await readFile(path.join(dir, 'current'), 'utf8')).trim();
    return /^[0-9a-f]{16}$/.test(key) ? await readEntry(dir, key) : undefined;
  } catch {
    return undefined;
  }
}
