import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { assertStaticAgent } from '../../src/images/agent-build.js';
import { isStaticElf, moduleDepends, parseElf, parseModinfo, sectionData } from '../../src/images/elf.js';
import { IsletError } from '../../src/core/errors.js';

const PT_LOAD = 1;
const PT_INTERP = 3;

/** A minimal ELF64 LE: the given program header types, and named sections. */
function makeElf(opts: { programs: number[]; sections?: Record<string, Buffer>; machine?: number }): Buffer {
  const secs = Object.entries(opts.sections ?? {});
  const names = ['', ...secs.map(([n]) => n), '.shstrtab'];
  const shstrtab = Buffer.from(names.join('\0') + '\0');
  const phoff = 64;
  const dataOff = phoff + opts.programs.length * 56;
  const bodies = [...secs.map(([, b]) => b), shstrtab];
  const offsets: number[] = [];
  let at = dataOff;
  for (const b of bodies) { offsets.push(at); at += b.length; }
  const shoff = at;
  const shnum = bodies.length + 1;
  const buf = Buffer.alloc(shoff + shnum * 64);
  buf.writeUInt32BE(0x7f454c46, 0);
  buf[4] = 2; buf[5] = 1; buf[6] = 1;
  buf.writeUInt16LE(2, 16);
  buf.writeUInt16LE(opts.machine ?? 62, 18);
  buf.writeBigUInt64LE(BigInt(phoff), 32);
  buf.writeBigUInt64LE(BigInt(shoff), 40);
  buf.writeUInt16LE(56, 54);
  buf.writeUInt16LE(opts.programs.length, 56);
  buf.writeUInt16LE(64, 58);
  buf.writeUInt16LE(shnum, 60);
  buf.writeUInt16LE(shnum - 1, 62);
  opts.programs.forEach((p, i) => buf.writeUInt32LE(p, phoff + i * 56));
  let nameOff = 1; // after the null section's empty name
  bodies.forEach((b, i) => {
    b.copy(buf, offsets[i]);
    const sh = shoff + (i + 1) * 64;
    buf.writeUInt32LE(nameOff, sh);
    buf.writeBigUInt64LE(BigInt(offsets[i] ?? 0), sh + 24);
    buf.writeBigUInt64LE(BigInt(b.length), sh + 32);
    nameOff += (names[i + 1] ?? '').length + 1;
  });
  return buf;
}

test('static vs dynamic: PT_INTERP decides', () => {
  assert.equal(isStaticElf(makeElf({ programs: [PT_LOAD, PT_LOAD] })), true);
  assert.equal(isStaticElf(makeElf({ programs: [PT_LOAD, PT_INTERP, PT_LOAD] })), false);
  assert.equal(isStaticElf(Buffer.from('#!/bin/sh\necho not an elf\n')), false);
});

test('truncated or 32-bit headers are refused, not guessed', () => {
  const elf = makeElf({ programs: [PT_LOAD] });
  assert.equal(parseElf(elf.subarray(0, 40)), undefined);
  const elf32 = Buffer.from(elf);
  elf32[4] = 1;
  assert.equal(parseElf(elf32), undefined);
});

test('assertStaticAgent explains what is wrong', () => {
  assert.doesNotThrow(() => assertStaticAgent(makeElf({ programs: [PT_LOAD] }), 'a'));
  assert.throws(() => assertStaticAgent(makeElf({ programs: [PT_INTERP] }), 'a'),
    (e: unknown) => e instanceof IsletError && e.code === 'IMAGE_BUILD_FAILED' && /dynamically linked/.test(e.message));
  assert.throws(() => assertStaticAgent(makeElf({ programs: [PT_LOAD], machine: 183 }), 'a'), /machine 183/);
});

test('.modinfo is found by section name and parsed', () => {
  const modinfo = Buffer.from('license=GPL\0depends=virtio,virtio_ring\0alias=virtio:d00000001v*\0alias=other\0name=virtio_net\0');
  const ko = makeElf({ programs: [], sections: { '.text': Buffer.from('depends=decoy\0'), '.modinfo': modinfo } });
  assert.deepEqual(sectionData(ko, '.modinfo'), modinfo);
  assert.deepEqual(moduleDepends(ko), ['virtio', 'virtio_ring']);
  assert.deepEqual(parseModinfo(ko).get('alias'), ['virtio:d00000001v*', 'other']);
  const leaf = makeElf({ programs: [], sections: { '.modinfo': Buffer.from('depends=\0name=virtio_ring\0') } });
  assert.deepEqual(moduleDepends(leaf), []);
});

test('a host binary parses (dynamic /bin/ls, if present)', (t) => {
  if (!existsSync('/bin/ls')) return t.skip('no /bin/ls');
  const elf = parseElf(readFileSync('/bin/ls'));
  assert.ok(elf);
  assert.ok(elf.sections.some((s) => s.name === '.text'));
  assert.equal(isStaticElf(readFileSync('/bin/ls')), false);
});
