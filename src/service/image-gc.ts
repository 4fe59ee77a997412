// `islet image gc`: removes superseded builds from the image cache, keeping
// everything something may still boot from or read.
//
// An entry (<cache>/<kind>/<key>) is kept when any of these holds:
// - it is its kind's current entry (what the next boot resolves to);
// - it was built after the current one (a concurrent build about to become
//   current: never race a builder);
// - a qcow2 chain reaches a file in it: every overlay under the data dir
//   (workspace disks, snapshots, pool disks) and under <cache>/templates,
//   followed through the backing-file names in the qcow2 headers, plus the
//   disk_path and snapshot files of every workspace row that is not
//   destroyed (state.db, read-only);
// - a running process has a file in it open (QEMU holds its backing chain
//   open): this also protects VMs of other data dirs sharing the cache;
// - (initramfs) it was built for the current agent: the custom kernel's and
//   the bare (imported kernels') initramfs are found by key, not as current;
// - (images) a workspace row that is not destroyed names the image but its
//   disk does not exist yet (a create in flight): the image's current build
//   is kept anyway, and older ones are too, to be safe.
// Also removed: the custom kernel's unpacked source tree (~1.5 GB), unless
// a kernel build is running. What gc cannot see: stopped workspaces of
// another data dir sharing this cache; run gc from each, or keep one cache
// per data dir.
import { existsSync } from 'node:fs';
import { open, readdir, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Config } from '../core/config.js';
import { type CacheEntry, getCurrent, listEntries, removeTree } from '../images/cache.js';
import { customKernelDir, SOURCE_PACKAGE } from '../images/custom-kernel.js';
import { artifactsRoot, kindDir } from '../images/paths.js';

export interface GcItem { kind: string; key: string; path: string; bytes: number; reason?: string }
export interface GcResult { removed: GcItem[]; kept: GcItem[]; freedBytes: number; dryRun: boolean }

const QCOW2_MAGIC = 0x514649fb;

/** The backing file named in a qcow2 header (absolute, resolved against the overlay's dir), or undefined. */
export async function qcow2Backing(file: string): Promise<string | undefined> {
  let fh;
  try {
    fh = await open(file, 'r');
    const h = Buffer.alloc(20);
    const { bytesRead } = await fh.read(h, 0, 20, 0);
    if (bytesRead < 20 || h.readUInt32BE(0) !== QCOW2_MAGIC) return undefined;
    const off = Number(h.readBigUInt64BE(8));
    const len = h.readUInt32BE(16);
    if (!off || !len || len > 4096) return undefined;
    const name = Buffer.alloc(len);
    await fh.read(name, 0, len, off);
    const s = name.toString('utf8');
    return path.resolve(path.dirname(file), s);
  } catch {
    return undefined;
  } finally {
    await fh?.close();
  }
}

/** Every file a qcow2 chain starting at file reaches (itself included), at most 64 deep. */
export async function chainOf(file: string): Promise<string[]> {
  const out: string[] = [];
  let f: string | undefined = file;
  while (f && out.length < 64 && !out.includes(f)) {
    out.push(f);
    f = await qcow2Backing(f);
  }
  return out;
}

async function walkFiles(dir: string, skip: string | undefined, out: string[], depth = 0): Promise<void> {
  if (depth > 8) return;
  let ents;
  try {
    ents = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const d of ents) {
    const p = path.join(dir, d.name);
    if (p === skip) continue;
    if (d.isDirectory()) await walkFiles(p, skip, out, depth + 1);
    else if (d.isFile() && /\.(qcow2|img|disk)$/.test(d.name)) out.push(p);
  }
}

/**
 * Disk paths the state database names (workspace disks, snapshot files), and
 * the images of rows whose disk does not exist (yet): those cannot be traced.
 */
export function stateReferences(dbFile: string, dataDir: string): { files: string[]; images: Set<string> } {
  const files: string[] = [];
  const images = new Set<string>();
  if (!existsSync(dbFile)) return { files, images };
  const db = new Database(dbFile, { readonly: true, fileMustExist: true, timeout: 5_000 });
  try {
    const tables = new Set((db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string }>).map((r) => r.name));
    if (tables.has('workspaces')) {
      const cols = new Set((db.prepare('PRAGMA table_info(workspaces)').all() as Array<{ name: string }>).map((c) => c.name));
      const rows = db.prepare(`SELECT id, image${cols.has('disk_path') ? ', disk_path' : ''} FROM workspaces WHERE state != 'destroyed'`)
        .all() as Array<{ id: string; image: string; disk_path?: string | null }>;
      for (const r of rows) {
        // NULL disk_path: the legacy <data_dir>/disks/<id>.qcow2 (store.ts).
        const disk = r.disk_path ?? path.join(dataDir, 'disks', `${r.id}.qcow2`);
        if (existsSync(disk)) files.push(disk);
        else images.add(r.image);
      }
    }
    if (tables.has('snapshots')) {
      const cols = new Set((db.prepare('PRAGMA table_info(snapshots)').all() as Array<{ name: string }>).map((c) => c.name));
      if (cols.has('file')) for (const r of db.prepare("SELECT file FROM snapshots WHERE file != ''").all() as Array<{ file: string }>) files.push(r.file);
    }
  } finally {
    db.close();
  }
  return { files, images };
}

/** Files under root that some process has open (readable /proc/<pid>/fd only: our own processes, or all as root). */
export async function openFilesUnder(root: string): Promise<Set<string>> {
  const out = new Set<string>();
  const prefix = path.resolve(root) + '/';
  for (const pid of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue;
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const t = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      if (t.startsWith(prefix)) out.add(t.replace(/ \(deleted\)$/, ''));
    }
  }
  return out;
}

async function sizeOf(p: string): Promise<number> {
  let total = 0;
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const q = path.join(d, e.name);
      if (e.isDirectory()) await walk(q);
      else total += ((await stat(q).catch(() => undefined))?.blocks ?? 0) * 512;
    }
  };
  await walk(p);
  return total;
}

/** The kind directories gc looks at: agent, kernel, initramfs, egress, session-front, kernel-custom, and images/<name> for each image. */
async function kindDirs(config: Config, only?: string): Promise<Array<{ kind: string; dir: string; image?: string }>> {
  const root = artifactsRoot(config);
  const imageNames = await readdir(path.join(root, 'images')).catch(() => [] as string[]);
  const all = [
    { kind: 'agent', dir: kindDir.agent(config) },
    { kind: 'kernel', dir: kindDir.kernel(config) },
    { kind: 'initramfs', dir: kindDir.initramfs(config) },
    { kind: 'egress', dir: path.join(root, 'egress') },
    { kind: 'session-front', dir: path.join(root, 'session-front') },
    { kind: 'kernel-custom', dir: customKernelDir(config) },
    ...imageNames.filter((n) => !n.startsWith('.')).map((n) => ({ kind: `image:${n}`, dir: kindDir.image(config, n), image: n })),
  ];
  return only ? all.filter((k) => k.kind === only) : all;
}

/**
 * Removes what nothing uses (see the top of the file). `only`: one kind, e.g.
 * "image:dev" (pruning after a rebuild). `dryRun`: report, delete nothing.
 */
export async function gcCache(config: Config, o: { dryRun?: boolean; only?: string; scanProcesses?: boolean } = {}): Promise<GcResult> {
  const root = artifactsRoot(config);
  const state = stateReferences(config.paths.stateDb, config.paths.dataDir);
  const disks: string[] = [...state.files];
  await walkFiles(config.paths.dataDir, path.resolve(root), disks);
  await walkFiles(path.join(root, 'templates'), undefined, disks);
  const used = new Set<string>();
  for (const d of disks) for (const f of await chainOf(d)) used.add(f);
  if (o.scanProcesses !== false) for (const f of await openFilesUnder(root)) used.add(f);
  const usedDirs = [...used].map((f) => path.dirname(f));
  const agentKey = (await getCurrent(kindDir.agent(config)))?.key;

  const removed: GcItem[] = [];
  const kept: GcItem[] = [];
  for (const k of await kindDirs(config, o.only)) {
    const current = await getCurrent(k.dir);
    const entries = await listEntries(k.dir);
    for (const e of entries) {
      const reason = keepReason(e, current, usedDirs, agentKey, k.kind, k.image !== undefined && state.images.has(k.image));
      const item: GcItem = { kind: k.kind, key: e.key, path: e.path, bytes: 0 };
      if (reason) {
        kept.push({ ...item, reason, bytes: e.meta.sizeBytes });
        continue;
      }
      item.bytes = await sizeOf(e.path);
      if (!o.dryRun) await removeTree(e.path);
      removed.push(item);
    }
  }
  // The custom kernel's unpacked source: rebuilt from /usr/src's tarball when needed (tar keeps mtimes, so the build dir stays incremental).
  if (!o.only || o.only === 'kernel-custom') {
    const cdir = customKernelDir(config);
    const src = path.join(cdir, 'source');
    if (existsSync(src) && !existsSync(path.join(cdir, 'build.lock'))) {
      const bytes = await sizeOf(src);
      if (!o.dryRun) await removeTree(src);
      removed.push({ kind: 'kernel-custom', key: `source/${SOURCE_PACKAGE}`, path: src, bytes });
    }
  }
  return { removed, kept, freedBytes: removed.reduce((a, r) => a + r.bytes, 0), dryRun: o.dryRun === true };
}

function keepReason(
  e: CacheEntry, current: CacheEntry | undefined, usedDirs: readonly string[], agentKey: string | undefined, kind: string, imageNamedByRow: boolean,
): string | undefined {
  if (current?.key === e.key) return 'current';
  if (current && e.meta.builtAt > current.meta.builtAt) return 'newer than current (a build in progress?)';
  if (usedDirs.some((d) => d === e.path || d.startsWith(e.path + '/'))) return 'in use (a disk, snapshot or template, or an open file)';
  if (kind === 'initramfs' && agentKey && (e.meta.recipe as { agent?: string } | null)?.agent === agentKey) return 'for the current agent';
  if (!current) return 'no current entry to supersede it';
  if (imageNamedByRow) return 'named by a workspace whose disk does not exist (yet)';
  return undefined;
}
