// Just enough ELF64 parsing for two questions islet asks of binaries it ships
// into a guest: "is this agent really static?" (a dynamic PID 1 cannot start
// in an initramfs with no libc) and "what does this kernel module depend on?"
// (after `dpkg -x` there is no modules.dep, only each .ko's .modinfo).

const ELF_MAGIC = 0x7f454c46; // "\x7fELF", read big-endian
const PT_INTERP = 3;
export const EM_X86_64 = 62;

export interface ElfInfo {
  type: number;
  machine: number;
  /** p_type of every program header. */
  programTypes: number[];
  sections: { name: string; offset: number; size: number }[];
}

export function isElf(buf: Buffer): boolean {
  return buf.length >= 4 && buf.readUInt32BE(0) === ELF_MAGIC;
}

/** Parses an ELF64 little-endian header; returns undefined for anything else. */
export function parseElf(buf: Buffer): ElfInfo | undefined {
  if (buf.length < 64 || !isElf(buf) || buf[4] !== 2 || buf[5] !== 1) return undefined;
  const u64 = (off: number) => Number(buf.readBigUInt64LE(off));
  const phoff = u64(32);
  const shoff = u64(40);
  const phentsize = buf.readUInt16LE(54);
  const phnum = buf.readUInt16LE(56);
  const shentsize = buf.readUInt16LE(58);
  const shnum = buf.readUInt16LE(60);
  const shstrndx = buf.readUInt16LE(62);

  const programTypes: number[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + 4 > buf.length) return undefined; // truncated: refuse rather than guess
    programTypes.push(buf.readUInt32LE(at));
  }

  const raw: { nameOff: number; offset: number; size: number }[] = [];
  for (let i = 0; i < shnum; i++) {
    const at = shoff + i * shentsize;
    if (at + 40 > buf.length) return undefined;
    raw.push({ nameOff: buf.readUInt32LE(at), offset: u64(at + 24), size: u64(at + 32) });
  }
  const strtab = raw[shstrndx];
  const sections = raw.map((s) => {
    let name = '';
    if (strtab && strtab.offset + s.nameOff < buf.length) {
      const start = strtab.offset + s.nameOff;
      const end = buf.indexOf(0, start);
      name = buf.toString('latin1', start, end < 0 ? buf.length : end);
    }
    return { name, offset: s.offset, size: s.size };
  });
  return { type: buf.readUInt16LE(16), machine: buf.readUInt16LE(18), programTypes, sections };
}

/** True for an ELF with no program interpreter, i.e. one the kernel can exec with no ld.so present. */
export function isStaticElf(buf: Buffer): boolean {
  const elf = parseElf(buf);
  return elf !== undefined && !elf.programTypes.includes(PT_INTERP);
}

/** The contents of a named section, or undefined if absent or out of bounds. */
export function sectionData(buf: Buffer, name: string): Buffer | undefined {
  const s = parseElf(buf)?.sections.find((x) => x.name === name);
  if (!s || s.offset + s.size > buf.length) return undefined;
  return buf.subarray(s.offset, s.offset + s.size);
}

/**
 * key=value pairs from a module's .modinfo (NUL-separated strings). Keys may
 * repeat (alias=, parm=), so each maps to all its values.
 */
export function parseModinfo(ko: Buffer): Map<string, string[]> {
  const out = new Map<string, string[]>();
  // Fall back to the whole file: the strings are there even if the section
  // table is odd, and a stray "depends=" elsewhere is vanishingly unlikely.
  const data = sectionData(ko, '.modinfo') ?? ko;
  for (const s of data.toString('latin1').split('\0')) {
    const eq = s.indexOf('=');
    if (eq <= 0) continue;
    const key = s.slice(0, eq);
    if (!/^[a-z_][a-z0-9_.]*$/.test(key)) continue;
    out.set(key, [...(out.get(key) ?? []), s.slice(eq + 1)]);
  }
  return out;
}

/** The module names a .ko needs loaded first (its modinfo `depends=`). */
export function moduleDepends(ko: Buffer): string[] {
  const v = parseModinfo(ko).get('depends')?.[0] ?? '';
  return v.split(',').map((s) => s.trim()).filter(Boolean);
}
