// A newc ("070701") cpio writer and reader: the initramfs format the kernel
// unpacks. Written here rather than with cpio(1) so that device nodes need no
// mknod (and no root), and so the archive is byte-for-byte reproducible
// (fixed inode numbers, owners and mtimes).

const MAGIC = '070701';
const HEADER_BYTES = 110;
const TRAILER = 'TRAILER!!!';

export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFCHR = 0o020000;
const S_IFMT = 0o170000;

export type CpioEntry =
  | { type: 'dir'; path: string; mode?: number }
  | { type: 'file'; path: string; mode?: number; data: Buffer }
  | { type: 'char'; path: string; mode?: number; major: number; minor: number };

export interface ParsedEntry {
  path: string;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  ino: number;
  rdevMajor: number;
  rdevMinor: number;
  data: Buffer;
}

const pad4 = (n: number) => (4 - (n % 4)) % 4;

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`cpio: field out of range: ${n}`);
  return n.toString(16).padStart(8, '0');
}

/** Archive paths are relative ("dev/console"), as `find . | cpio` would make them without "./". */
function archivePath(p: string): string {
  const s = p.replace(/^\/+/, '').replace(/\/+$/, '');
  if (!s || s.split('/').some((c) => c === '..' || c === '.' || c === '')) throw new RangeError(`cpio: bad path "${p}"`);
  return s;
}

function header(f: { ino: number; mode: number; nlink: number; size: number; rdevMajor: number; rdevMinor: number; name: string }): Buffer {
  const nameBytes = Buffer.byteLength(f.name) + 1;
  const fields = [f.ino, f.mode, 0, 0, f.nlink, 0, f.size, 0, 0, f.rdevMajor, f.rdevMinor, nameBytes, 0];
  const head = MAGIC + fields.map(hex8).join('');
  // The name (with its NUL) is padded so the data starts 4-byte aligned.
  return Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(f.name + '\0'), Buffer.alloc(pad4(HEADER_BYTES + nameBytes))]);
}

/**
 * Serializes entries in the given order; parents must come before children
 * (the kernel creates each path as it reads it). Owners are 0:0, mtimes 0.
 */
export function writeCpio(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  const seen = new Set<string>();
  let ino = 1;
  for (const e of entries) {
    const name = archivePath(e.path);
    if (seen.has(name)) throw new RangeError(`cpio: duplicate path "${name}"`);
    const parent = name.includes('/') ? name.slice(0, name.lastIndexOf('/')) : '';
    if (parent && !seen.has(parent)) throw new RangeError(`cpio: "${name}" comes before its directory "${parent}"`);
    seen.add(name);
    const base = { ino: ino++, name, rdevMajor: 0, rdevMinor: 0 };
    if (e.type === 'dir') {
      parts.push(header({ ...base, mode: S_IFDIR | (e.mode ?? 0o755), nlink: 2, size: 0 }));
    } else if (e.type === 'char') {
      parts.push(header({ ...base, mode: S_IFCHR | (e.mode ?? 0o600), nlink: 1, size: 0, rdevMajor: e.major, rdevMinor: e.minor }));
    } else {
      parts.push(header({ ...base, mode: S_IFREG | (e.mode ?? 0o644), nlink: 1, size: e.data.length }), e.data, Buffer.alloc(pad4(e.data.length)));
    }
  }
  parts.push(header({ ino: 0, name: TRAILER, mode: 0, nlink: 1, size: 0, rdevMajor: 0, rdevMinor: 0 }));
  return Buffer.concat(parts);
}

/** Reads a newc archive back (up to the trailer); throws on anything malformed. */
export function readCpio(buf: Buffer): ParsedEntry[] {
  const out: ParsedEntry[] = [];
  let at = 0;
  for (;;) {
    if (at + HEADER_BYTES > buf.length) throw new RangeError(`cpio: truncated header at ${at}`);
    const magic = buf.toString('latin1', at, at + 6);
    if (magic !== MAGIC) throw new RangeError(`cpio: bad magic "${magic}" at ${at}`);
    const field = (i: number) => {
      const s = buf.toString('latin1', at + 6 + i * 8, at + 14 + i * 8);
      if (!/^[0-9a-fA-F]{8}$/.test(s)) throw new RangeError(`cpio: bad field ${i} "${s}" at ${at}`);
      return parseInt(s, 16);
    };
    // Fields: ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check.
    const size = field(6);
    const nameSize = field(11);
    const nameStart = at + HEADER_BYTES;
    if (!nameSize || buf[nameStart + nameSize - 1] !== 0) throw new RangeError(`cpio: name not NUL-terminated at ${at}`);
    const name = buf.toString('utf8', nameStart, nameStart + nameSize - 1);
    const dataStart = nameStart + nameSize + pad4(HEADER_BYTES + nameSize);
    if (name === TRAILER) return out;
    if (dataStart + size > buf.length) throw new RangeError(`cpio: truncated data for "${name}"`);
    out.push({
      path: name, ino: field(0), mode: field(1), uid: field(2), gid: field(3), nlink: field(4), mtime: field(5),
      rdevMajor: field(9), rdevMinor: field(10), data: buf.subarray(dataStart, dataStart + size),
    });
    at = dataStart + size + pad4(size);
  }
}

export function entryType(mode: number): 'dir' | 'file' | 'char' | 'other' {
  switch (mode & S_IFMT) {
    case S_IFDIR: return 'dir';
    case S_IFREG: return 'file';
    case S_IFCHR: return 'char';
    default: return 'other';
  }
}
