// Where an idle VM's host memory goes: /proc/PID/smaps summed by what each
// mapping holds, so a density lever can be aimed at the part that is large.
import { readFileSync } from 'node:fs';

export type Part = 'guest RAM (template file)' | 'TCG translation cache' | 'heap and arenas' | 'thread stacks' | 'QEMU binary and libs' | 'other';

export interface PartMem { pssKiB: number; privateDirtyKiB: number; rssKiB: number; mappings: number }

const ARENA_KIB = 64 * 1024; // glibc's per-thread arena reservation on 64-bit

/**
 * Sums smaps by part. The translation cache is QEMU's one anonymous mapping of
 * tb-size MiB (plus a guard page); arenas are the anonymous mappings inside
 * 64 MiB reservations; stacks are anonymous 8 MiB mappings.
 */
export function smapsBreakdown(pid: number, o: { ramPath?: string; tbMiB: number }): Map<Part, PartMem> {
  const out = new Map<Part, PartMem>();
  let cur: { part: Part } | undefined;
  let pending: { start: number; end: number; perms: string; name: string } | undefined;
  const classify = (m: { start: number; end: number; perms: string; name: string }): Part => {
    const kib = (m.end - m.start) / 1024;
    if (o.ramPath && m.name.startsWith(o.ramPath)) return 'guest RAM (template file)';
    if (m.name === '[heap]') return 'heap and arenas';
    if (m.name === '[stack]') return 'thread stacks';
    if (m.name.startsWith('/')) return 'QEMU binary and libs';
    if (m.name === '' || m.name.startsWith('/memfd:tcg-jit')) {
      const tb = o.tbMiB * 1024;
      if (m.name.startsWith('/memfd:tcg-jit') || (tb > 0 && kib >= tb - 8 && kib <= tb + 8)) return 'TCG translation cache';
      if (kib <= ARENA_KIB && m.perms.startsWith('rw') && kib > 8 * 1024 + 8) return 'heap and arenas';
      if (kib === 8 * 1024 || kib === 8 * 1024 + 4) return 'thread stacks';
      if (m.perms.startsWith('rw')) return 'heap and arenas';
    }
    return 'other';
  };
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const h = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (h) {
      pending = { start: parseInt(h[1]!, 16), end: parseInt(h[2]!, 16), perms: h[3]!, name: h[4] ?? '' };
      cur = { part: classify(pending) };
      const p = out.get(cur.part) ?? { pssKiB: 0, privateDirtyKiB: 0, rssKiB: 0, mappings: 0 };
      p.mappings++;
      out.set(cur.part, p);
      continue;
    }
    const f = /^(Pss|Private_Dirty|Rss):\s+(\d+) kB/.exec(line);
    if (!f || !cur) continue;
    const p = out.get(cur.part)!;
    const v = Number(f[2]);
    if (f[1] === 'Pss') p.pssKiB += v; else if (f[1] === 'Rss') p.rssKiB += v; else p.privateDirtyKiB += v;
  }
  return out;
}

/** Mean of several breakdowns (one per VM), in MiB. */
export function meanBreakdown(bs: Array<Map<Part, PartMem>>): Array<{ part: Part; pssMiB: number; privateDirtyMiB: number; rssMiB: number }> {
  const parts = new Set(bs.flatMap((b) => [...b.keys()]));
  return [...parts].map((part) => {
    const sum = (k: keyof PartMem) => bs.reduce((n, b) => n + (b.get(part)?.[k] ?? 0), 0) / bs.length / 1024;
    return { part, pssMiB: sum('pssKiB'), privateDirtyMiB: sum('privateDirtyKiB'), rssMiB: sum('rssKiB') };
  }).sort((a, b) => b.pssMiB - a.pssMiB);
}
