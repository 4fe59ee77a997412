// Host-side file transfers are confined to one directory. The client names
// a path; we refuse anything that resolves outside, including through a
// symlink, before touching the file.
import { constants } from 'node:fs';
import { lstat, mkdir, open, realpath, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { IsletError } from '../core/errors.js';

const outside = (p: string, root: string) =>
  new IsletError('PATH_OUTSIDE_ALLOWED', `host path ${JSON.stringify(p)} is outside the transfer directory ${root}`,
    'use a path inside [server] transfer_dir (relative paths are taken from there)', { path: p, transferDir: root });

const within = (root: string, p: string) => p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);

/** Lexical check first (cheap, no I/O), then the real path of what exists. */
async function resolveInside(root: string, p: string): Promise<{ realRoot: string; abs: string }> {
  await mkdir(root, { recursive: true, mode: 0o700 });
  const realRoot = await realpath(root);
  const abs = path.resolve(realRoot, p);
  if (!within(realRoot, abs) || abs === realRoot) throw outside(p, root);
  return { realRoot, abs };
}

/** Reads a host file inside root, refusing symlink escapes and files over maxBytes (without reading them). */
export async function readConfined(root: string, p: string, maxBytes: number): Promise<{ data: Buffer; abs: string }> {
  const { realRoot, abs } = await resolveInside(root, p);
  let real: string;
  try {
    real = await realpath(abs);
  } catch {
    throw new IsletError('FILE_NOT_FOUND', `host file ${JSON.stringify(p)} does not exist in ${root}`, undefined, { path: p });
  }
  if (!within(realRoot, real)) throw outside(p, root);
  const fh = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const s = await fh.stat();
    if (!s.isFile()) throw new IsletError('INVALID_ARGUMENT', `host path ${JSON.stringify(p)} is not a regular file`);
    if (s.size > maxBytes) {
      throw new IsletError('FILE_TOO_LARGE', `host file ${JSON.stringify(p)} is ${s.size} bytes, over the ${maxBytes} byte limit`,
        'raise [server] max_transfer_bytes', { size: s.size, max: maxBytes });
    }
    return { data: await fh.readFile(), abs };
  } finally {
    await fh.close();
  }
}

/** Writes a host file inside root: parents created, symlinks never followed, atomic rename. */
export async function writeConfined(root: string, p: string, data: Buffer, overwrite: boolean): Promise<string> {
  const { realRoot, abs } = await resolveInside(root, p);
  const parent = path.dirname(abs);
  // Check the deepest existing ancestor before creating anything: mkdir -p
  // through a symlinked directory would create directories outside root.
  let existing = parent;
  while (!(await lstat(existing).then(() => true, () => false))) existing = path.dirname(existing);
  if (!within(realRoot, await realpath(existing))) throw outside(p, root);
  await mkdir(parent, { recursive: true, mode: 0o700 });
  if (!within(realRoot, await realpath(parent))) throw outside(p, root);
  const target = await lstat(abs).catch(() => undefined);
  if (target?.isSymbolicLink()) throw outside(p, root);
  if (target && !overwrite) {
    throw new IsletError('INVALID_ARGUMENT', `host file ${JSON.stringify(p)} already exists`, 'ask to overwrite it (MCP: overwrite: true; CLI: --overwrite)', { path: p });
  }
  if (target && !target.isFile()) throw new IsletError('INVALID_ARGUMENT', `host path ${JSON.stringify(p)} is not a regular file`);
  const tmp = path.join(parent, `.islet-${process.pid}-${Date.now()}.tmp`);
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, abs); // replaces a path, never writes through a link
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  return abs;
}

export async function ensureDir(root: string): Promise<void> {
  await mkdir(root, { recursive: true, mode: 0o700 });
  await stat(root);
}
