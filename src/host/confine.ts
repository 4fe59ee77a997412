// Host-side file transfers are confined to one directory. The client names
// a path; we refuse anything that resolves outside, including through a
// symlink, before touching the file. Every open is O_NOFOLLOW|O_NONBLOCK and
// checked with fstat: a FIFO or device in transfer_dir must never park one of
// libuv's four threadpool threads. A write lands in a fresh temp file and is
// renamed (or linked) into place, so the destination changes only on success.
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, lstat, mkdir, open, realpath, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { IsletError } from '../core/errors.js';

const outside = (p: string, root: string) =>
  new IsletError('PATH_OUTSIDE_ALLOWED', `host path ${JSON.stringify(p)} is outside the transfer directory ${root}`,
    'use a path inside [server] transfer_dir (relative paths are taken from there)', { path: p, transferDir: root });

const notRegular = (p: string) =>
  new IsletError('INVALID_ARGUMENT', `host path ${JSON.stringify(p)} is not a regular file`, 'name a plain file (not a FIFO, device, socket or directory)', { path: p });

const exists = (p: string) =>
  new IsletError('INVALID_ARGUMENT', `host file ${JSON.stringify(p)} already exists`, 'ask to overwrite it (MCP: overwrite: true; CLI: --overwrite)', { path: p });

const tooLarge = (p: string, size: number, max: number) =>
  new IsletError('FILE_TOO_LARGE', `host file ${JSON.stringify(p)} is ${size} bytes or more, over the ${max} byte limit`,
    'raise [server] max_transfer_bytes', { size, max });

const within = (root: string, p: string) => p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);

/** Lexical check first (cheap, no I/O), then the real path of what exists. */
async function resolveInside(root: string, p: string): Promise<{ realRoot: string; abs: string }> {
  await mkdir(root, { recursive: true, mode: 0o700 });
  const realRoot = await realpath(root);
  const abs = path.resolve(realRoot, p);
  if (!within(realRoot, abs) || abs === realRoot) throw outside(p, root);
  return { realRoot, abs };
}

/** Reads a host file inside root, refusing symlink escapes, non-regular files, and more than maxBytes (bounded while reading). */
export async function readConfined(root: string, p: string, maxBytes: number): Promise<{ data: Buffer; abs: string }> {
  const r = await openConfinedReader(root, p, maxBytes);
  try {
    return { data: await readBounded(r.fh, p, maxBytes, r.size), abs: r.abs };
  } finally {
    await r.fh.close();
  }
}

/** A host file inside root opened for reading, checked as readConfined checks it; chunks() stops with FILE_TOO_LARGE past maxBytes. */
export interface ConfinedReader {
  fh: FileHandle;
  abs: string;
  size: number;
  chunks(): AsyncGenerator<Buffer>;
}

export async function openConfinedReader(root: string, p: string, maxBytes: number): Promise<ConfinedReader> {
  const { realRoot, abs } = await resolveInside(root, p);
  let real: string;
  try {
    real = await realpath(abs);
  } catch {
    throw new IsletError('FILE_NOT_FOUND', `host file ${JSON.stringify(p)} does not exist in ${root}`, undefined, { path: p });
  }
  if (!within(realRoot, real)) throw outside(p, root);
  const fh = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const s = await fh.stat();
    if (!s.isFile()) throw notRegular(p);
    if (s.size > maxBytes) throw tooLarge(p, s.size, maxBytes);
    return {
      fh, abs, size: s.size,
      async *chunks() {
        let n = 0;
        for (;;) {
          const buf = Buffer.allocUnsafe(1 << 20);
          const { bytesRead } = await fh.read(buf, 0, buf.length, null);
          if (bytesRead === 0) return;
          n += bytesRead;
          if (n > maxBytes) throw tooLarge(p, n, maxBytes); // it grew after fstat
          yield buf.subarray(0, bytesRead);
        }
      },
    };
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/** Reads to EOF but never more than maxBytes: the file may grow after fstat. */
async function readBounded(fh: FileHandle, p: string, maxBytes: number, sizeHint: number): Promise<Buffer> {
  let buf = Buffer.allocUnsafe(Math.min(maxBytes + 1, Math.max(sizeHint + 1, 64 << 10)));
  let n = 0;
  for (;;) {
    if (n === buf.length) {
      const bigger = Buffer.allocUnsafe(Math.min(maxBytes + 1, buf.length * 2));
      buf.copy(bigger, 0, 0, n);
      buf = bigger;
    }
    const { bytesRead } = await fh.read(buf, n, buf.length - n, null);
    if (bytesRead === 0) break;
    n += bytesRead;
    if (n > maxBytes) throw tooLarge(p, n, maxBytes);
  }
  return buf.subarray(0, n);
}

/**
 * Everything that can be refused about a destination, checked without
 * changing anything: outside root (lexically or through a symlink), an
 * existing file without overwrite, or something other than a regular file.
 * Returns the absolute path. Callers check before fetching the content, so
 * a bad destination costs no transfer; writeConfined checks again.
 */
export async function checkWritable(root: string, p: string, overwrite: boolean): Promise<string> {
  const { realRoot, abs } = await resolveInside(root, p);
  // The deepest existing ancestor must resolve inside: mkdir -p through a
  // symlinked directory would create directories outside root.
  let existing = path.dirname(abs);
  while (!(await lstat(existing).then(() => true, () => false))) existing = path.dirname(existing);
  if (!within(realRoot, await realpath(existing))) throw outside(p, root);
  const target = await lstat(abs).catch(() => undefined);
  if (target?.isSymbolicLink()) throw outside(p, root);
  if (target && !target.isFile()) throw notRegular(p);
  if (target && !overwrite) throw exists(p);
  return abs;
}

/** Writes a host file inside root: parents created, symlinks never followed, a unique temp file renamed into place. */
export async function writeConfined(root: string, p: string, data: Buffer, overwrite: boolean): Promise<string> {
  const w = await openConfinedWriter(root, p, overwrite);
  w.write(data);
  return (await w.commit()).abs; // commit drops the temp file whatever happens
}

/**
 * A host file written in pieces (a download streamed from the guest), or
 * whole (writeConfined): parents created, symlinks never followed, a unique
 * temp file (random, so parallel writes never share one) renamed or linked
 * into place, so the destination changes only when commit() succeeds. Writes are queued in
 * order; the caller bounds the total.
 */
export interface ConfinedWriter {
  /** Queues a chunk; the promise settles when it (and those before it) reached the file, for callers that pace a source. */
  write(chunk: Buffer): Promise<void>;
  /** Waits for the queued writes, syncs, and puts the file in place; returns the absolute path and size. */
  commit(): Promise<{ abs: string; bytes: number }>;
  /** Drops the temp file; the destination is untouched. */
  abort(): Promise<void>;
}

export async function openConfinedWriter(root: string, p: string, overwrite: boolean): Promise<ConfinedWriter> {
  const abs = await checkWritable(root, p, overwrite);
  const { realRoot } = await resolveInside(root, p);
  const parent = path.dirname(abs);
  await mkdir(parent, { recursive: true, mode: 0o700 });
  if (!within(realRoot, await realpath(parent))) throw outside(p, root);
  const tmp = path.join(parent, `.islet-${randomBytes(8).toString('hex')}.tmp`);
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600);
  let queue: Promise<unknown> = Promise.resolve();
  let failed: unknown;
  let bytes = 0;
  let closed = false;
  const close = async () => { if (!closed) { closed = true; await fh.close(); } };
  return {
    write(chunk) {
      bytes += chunk.length;
      queue = queue.then(() => (failed === undefined ? fh.write(chunk) : undefined)).catch((e: unknown) => { failed ??= e; });
      return queue.then(() => undefined);
    },
    async commit() {
      try {
        await queue;
        if (failed !== undefined) throw failed;
        await fh.sync();
        await close();
        const target = await lstat(abs).catch(() => undefined);
        if (target && (target.isSymbolicLink() || !target.isFile())) throw target.isSymbolicLink() ? outside(p, root) : notRegular(p);
        if (overwrite) await rename(tmp, abs);
        else await link(tmp, abs).catch((e: NodeJS.ErrnoException) => { throw e.code === 'EEXIST' ? exists(p) : e; });
        return { abs, bytes };
      } finally {
        await close().catch(() => undefined);
        await rm(tmp, { force: true });
      }
    },
    async abort() {
      await queue;
      await close().catch(() => undefined);
      await rm(tmp, { force: true });
    },
  };
}

export async function ensureDir(root: string): Promise<void> {
  await mkdir(root, { recursive: true, mode: 0o700 });
  await stat(root);
}
