// The custom kernel's Kconfig fragment (images/kernel/microvm.config): parsed
// strictly, applied on top of allnoconfig, checked after olddefconfig, and
// hashed into the cache key. Pure functions: the build is in custom-kernel.ts.
import { cacheKey } from './cache.js';
import { imageBuildFailed } from './errors.js';

/** Kconfig values as .config spells them; "n" stands for "is not set". */
export type Fragment = Map<string, string>;

/** What the fragment is applied on top of. Part of the cache key. */
export const BASE_CONFIG = 'allnoconfig';
/** Bump when the build steps change in a way the key's inputs can't show. */
export const CUSTOM_KERNEL_FORMAT = 1;

const SYMBOL = /^CONFIG_[A-Za-z0-9_]+$/;
const ASSIGN = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/;
const NOT_SET = /^#\s*(CONFIG_[A-Za-z0-9_]+) is not set\s*$/;
const VALUE = /^(y|n|-?[0-9]+|0x[0-9a-fA-F]+|"(?:[^"\\]|\\.)*")$/;

/**
 * Parses a fragment: `CONFIG_X=y|n|<number>|"<string>"` or `# CONFIG_X is
 * not set`, comments and blank lines. `=m` is refused (this kernel has no
 * modules), and so is a symbol set twice (which line would win is an
 * accident of kconfig's reader, not something to rely on).
 */
export function parseFragment(text: string, source = 'fragment'): Fragment {
  const out: Fragment = new Map();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').trim();
    const where = `${source}:${i + 1}`;
    if (!line) continue;
    let symbol: string;
    let value: string;
    const unset = NOT_SET.exec(line);
    const assign = ASSIGN.exec(line);
    if (unset?.[1]) {
      symbol = unset[1];
      value = 'n';
    } else if (line.startsWith('#')) {
      continue;
    } else if (assign?.[1] !== undefined && assign[2] !== undefined) {
      symbol = assign[1];
      value = assign[2].trim();
    } else {
      throw imageBuildFailed(`${where}: not a Kconfig line: ${line}`, 'write CONFIG_NAME=y, CONFIG_NAME=n, CONFIG_NAME=<number> or CONFIG_NAME="<string>"', { line: i + 1 });
    }
    if (!SYMBOL.test(symbol)) throw imageBuildFailed(`${where}: bad symbol ${symbol}`, 'symbols are CONFIG_ followed by letters, digits and _', { line: i + 1 });
    if (value === 'm') {
      throw imageBuildFailed(`${where}: ${symbol}=m: the custom kernel is built without module support`, `build it in: ${symbol}=y`, { line: i + 1 });
    }
    if (!VALUE.test(value)) throw imageBuildFailed(`${where}: ${symbol} has an unsupported value ${value}`, 'use y, n, a number or a "quoted string"', { line: i + 1 });
    if (out.has(symbol)) throw imageBuildFailed(`${where}: ${symbol} is set twice`, 'keep one line per symbol', { line: i + 1, symbol });
    out.set(symbol, value);
  }
  return out;
}

/** The fragment as .config lines: appended after allnoconfig's output, they override it. */
export function renderFragment(f: Fragment): string {
  return [...f].map(([k, v]) => (v === 'n' ? `# ${k} is not set` : `${k}=${v}`)).join('\n') + '\n';
}

/** A generated .config as symbol → value ("n" for "is not set"). */
export function parseDotConfig(text: string): Fragment {
  const out: Fragment = new Map();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const unset = NOT_SET.exec(line);
    if (unset?.[1]) {
      out.set(unset[1], 'n');
      continue;
    }
    const a = ASSIGN.exec(line);
    if (a?.[1] && a[2] !== undefined) out.set(a[1], a[2]);
  }
  return out;
}

export interface Unapplied {
  symbol: string;
  want: string;
  /** "absent": olddefconfig dropped it (an unmet dependency, or no such symbol in this kernel). */
  got: string;
}

/**
 * Fragment lines that olddefconfig did not keep: a dependency the fragment
 * forgot, or a symbol this kernel version does not have. A symbol missing
 * from .config counts as "n", as kconfig reads it.
 */
export function unappliedSymbols(fragment: Fragment, final: Fragment): Unapplied[] {
  const out: Unapplied[] = [];
  for (const [symbol, want] of fragment) {
    const got = final.get(symbol);
    if ((got ?? 'n') !== want) out.push({ symbol, want, got: got ?? 'absent' });
  }
  return out;
}

/**
 * The cache key of a custom kernel: the source package and version, the base
 * config, and the fragment's assignments (sorted, so comments, blank lines
 * and order do not force a rebuild, and any changed value does).
 */
export function customKernelKey(source: { package: string; version: string }, fragment: Fragment): string {
  const assignments = [...fragment].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${k}=${v}`);
  return cacheKey(['kernel-custom', { source, base: BASE_CONFIG, fragment: assignments, format: CUSTOM_KERNEL_FORMAT }]);
}

/** Finds the XEN_ELFNOTE_PHYS32_ENTRY note QEMU needs to boot a vmlinux through PVH. */
export function hasPvhNote(notes: Buffer): boolean {
  const XEN_ELFNOTE_PHYS32_ENTRY = 18;
  let off = 0;
  while (off + 12 <= notes.length) {
    const namesz = notes.readUInt32LE(off);
    const descsz = notes.readUInt32LE(off + 4);
    const type = notes.readUInt32LE(off + 8);
    const nameStart = off + 12;
    const name = notes.toString('latin1', nameStart, nameStart + Math.max(0, namesz - 1));
    if (name === 'Xen' && type === XEN_ELFNOTE_PHYS32_ENTRY) return true;
    off = nameStart + align4(namesz) + align4(descsz);
  }
  return false;
}

const align4 = (n: number) => (n + 3) & ~3;
