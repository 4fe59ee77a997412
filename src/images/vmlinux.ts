// vmlinuz → vmlinux, the way linux/scripts/extract-vmlinux does it: a bzImage
// is a boot stub followed by a compressed ELF, so try each compression magic
// at each offset it occurs and keep the first output that is an ELF. QEMU's
// PVH entry needs the uncompressed ELF (it finds the Xen PVH note in it).
import { open, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import zlib from 'node:zlib';
import { CancelledError } from '../core/errors.js';
import { run } from '../host/run.js';
import { isElf } from './elf.js';
import { imageBuildFailed } from './errors.js';

export type Compression = 'gzip' | 'xz' | 'zstd' | 'lz4' | 'bzip2';

// Order as in extract-vmlinux. lz4 is the "legacy" frame the kernel uses
// (the Debian 6.1 vmlinuz is LZ4). bzip2 includes the block magic so that a
// random "BZh" in the stub does not send us decompressing noise.
const MAGICS: { kind: Compression; magic: Buffer }[] = [
  { kind: 'gzip', magic: Buffer.from([0x1f, 0x8b, 0x08]) },
  { kind: 'xz', magic: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) },
  { kind: 'zstd', magic: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]) },
  { kind: 'lz4', magic: Buffer.from([0x02, 0x21, 0x4c, 0x18]) },
  { kind: 'bzip2', magic: Buffer.from('BZh') },
];

export interface Candidate {
  kind: Compression;
  offset: number;
}

/** Every offset of every known magic, grouped by kind in extract-vmlinux's order. */
export function findCompressedPayloads(buf: Buffer): Candidate[] {
  const out: Candidate[] = [];
  for (const { kind, magic } of MAGICS) {
    for (let at = buf.indexOf(magic); at >= 0; at = buf.indexOf(magic, at + 1)) {
      if (kind === 'bzip2' && !/^BZh[1-9]1AY&SY/.test(buf.toString('latin1', at, at + 10))) continue;
      out.push({ kind, offset: at });
    }
  }
  return out;
}

// The program for each kind, decompressing file `in` to file `out`. run()
// captures stdout as text, so binary output goes through a file. Trailing
// bytes after the stream (the kernel appends its size) make most of these
// exit non-zero after writing everything: success is judged by the output.
function decompressArgv(kind: Exclude<Compression, 'gzip'>, input: string, output: string): string[] {
  switch (kind) {
    case 'lz4': return ['lz4', '-d', '-f', '-q', input, output];
    case 'zstd': return ['zstd', '-d', '-f', '-q', input, '-o', output];
    // xz and bzip2 only write to stdout or beside the input: input is named <output>.xz/.bz2.
    case 'xz': return ['xz', '-d', '-k', '-f', '-q', '--single-stream', input];
    case 'bzip2': return ['bzip2', '-d', '-k', '-f', '-q', input];
  }
}

/**
 * Inflates the first gzip member of `data`. zlib's gunzip treats the bytes
 * after the member as a broken second member and fails, so the header is
 * skipped by hand and the deflate stream inflated raw, which stops at its end.
 */
export function gunzipFirstMember(data: Buffer): Buffer | undefined {
  if (data.length < 18 || data[0] !== 0x1f || data[1] !== 0x8b || data[2] !== 8) return undefined;
  const flags = data[3] ?? 0;
  let at = 10;
  if (flags & 4) at += 2 + data.readUInt16LE(at); // FEXTRA
  for (const bit of [8, 16]) { // FNAME, FCOMMENT: NUL-terminated
    if (flags & bit) {
      const nul = data.indexOf(0, at);
      if (nul < 0) return undefined;
      at = nul + 1;
    }
  }
  if (flags & 2) at += 2; // FHCRC
  try {
    return zlib.inflateRawSync(data.subarray(at), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  } catch {
    return undefined;
  }
}

async function startsWithElf(file: string): Promise<boolean> {
  let fh;
  try {
    fh = await open(file, 'r');
    const b = Buffer.alloc(4);
    const { bytesRead } = await fh.read(b, 0, 4, 0);
    return bytesRead === 4 && isElf(b);
  } catch {
    return false;
  } finally {
    await fh?.close();
  }
}

export interface ExtractResult {
  kind: Compression;
  offset: number;
  sizeBytes: number;
}

/**
 * Writes the uncompressed kernel ELF inside `vmlinuz` to `out`. `scratch` is a
 * directory for the decompressor's files (emptied of them afterwards).
 */
export async function extractVmlinux(vmlinuz: string, out: string, scratch: string, opts: { signal?: AbortSignal } = {}): Promise<ExtractResult> {
  const buf = await readFile(vmlinuz);
  const tried: string[] = [];
  for (const c of findCompressedPayloads(buf)) {
    const slice = buf.subarray(c.offset);
    if (c.kind === 'gzip') {
      const data = gunzipFirstMember(slice);
      if (data && isElf(data)) {
        await writeFile(out, data);
        return { ...c, sizeBytes: data.length };
      }
      tried.push(`gzip@${c.offset}`);
      continue;
    }
    const ext = c.kind === 'xz' ? '.xz' : c.kind === 'bzip2' ? '.bz2' : '.in';
    const decoded = path.join(scratch, `vmlinux-candidate`);
    const input = c.kind === 'xz' || c.kind === 'bzip2' ? decoded + ext : path.join(scratch, `payload${ext}`);
    await writeFile(input, slice);
    try {
      let r;
      try {
        r = await run(decompressArgv(c.kind, input, decoded), { allowFailure: true, signal: opts.signal, timeoutMs: 5 * 60_000 });
      } catch (e) {
        if (e instanceof CancelledError) throw e;
        tried.push(`${c.kind}@${c.offset}: ${(e as Error).message}`); // e.g. the program is not installed
        continue;
      }
      if (await startsWithElf(decoded)) {
        const data = await readFile(decoded);
        await writeFile(out, data);
        return { ...c, sizeBytes: data.length };
      }
      tried.push(`${c.kind}@${c.offset}${r.code ? ` (exit ${r.code})` : ''}`);
    } finally {
      await rm(input, { force: true });
      await rm(decoded, { force: true });
    }
  }
  throw imageBuildFailed(
    `no compressed ELF kernel found in ${vmlinuz}`,
    'check that the kernel package is an x86 bzImage and that lz4, xz-utils, zstd and bzip2 are installed for its compression',
    { vmlinuz, tried },
  );
}
