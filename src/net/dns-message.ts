// The little of the DNS wire format (RFC 1035) the forwarder needs: the
// question of a query, the A records of an answer, and error replies. Every
// length and pointer comes from an untrusted guest or upstream, so each read
// is bounds-checked and name decompression follows at most a few pointers.

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;
export const TYPE_A = 1;
const CLASS_IN = 1;
const HEADER = 12;
const MAX_NAME = 255;
const MAX_POINTERS = 16;

export interface Question {
  id: number;
  /** Lower case, no trailing dot ("" for the root). */
  name: string;
  type: number;
  qclass: number;
  /** Offset just past the question: header + question bytes are echoed in replies. */
  end: number;
}

export class DnsFormatError extends Error {}

function u16(b: Buffer, off: number): number {
  if (off + 2 > b.length) throw new DnsFormatError('truncated');
  return b.readUInt16BE(off);
}

/** Reads a possibly compressed name at off; returns it and the offset after it in the original position. */
export function readName(b: Buffer, off: number, allowPointers: boolean): { name: string; next: number } {
  const labels: string[] = [];
  let pos = off;
  let next = -1;
  let jumps = 0;
  let len = 0;
  for (;;) {
    if (pos >= b.length) throw new DnsFormatError('name runs past the message');
    const n = b[pos]!;
    if (n === 0) {
      if (next < 0) next = pos + 1;
      break;
    }
    if ((n & 0xc0) === 0xc0) {
      if (!allowPointers) throw new DnsFormatError('compression pointer in a question');
      if (++jumps > MAX_POINTERS) throw new DnsFormatError('too many compression pointers');
      if (next < 0) next = pos + 2;
      pos = u16(b, pos) & 0x3fff;
      continue;
    }
    if (n & 0xc0) throw new DnsFormatError('unsupported label type');
    if (pos + 1 + n > b.length) throw new DnsFormatError('label runs past the message');
    len += n + 1;
    if (len > MAX_NAME) throw new DnsFormatError('name too long');
    labels.push(b.toString('latin1', pos + 1, pos + 1 + n).toLowerCase());
    pos += 1 + n;
  }
  return { name: labels.join('.'), next };
}

/** The single question of a standard query; throws DnsFormatError for anything else. */
export function parseQuery(b: Buffer): Question {
  if (b.length < HEADER) throw new DnsFormatError('shorter than a header');
  const flags = u16(b, 2);
  if (flags & 0x8000) throw new DnsFormatError('not a query');
  if (((flags >> 11) & 0xf) !== 0) throw new DnsFormatError('not a standard query');
  if (u16(b, 4) !== 1) throw new DnsFormatError('want exactly one question');
  const { name, next } = readName(b, HEADER, false);
  return { id: u16(b, 0), name, type: u16(b, next), qclass: u16(b, next + 2), end: next + 4 };
}

/** A reply carrying only the question and an error code. */
export function errorReply(query: Buffer, rcode: number): Buffer {
  const id = query.length >= 2 ? query.readUInt16BE(0) : 0;
  let question: Buffer = Buffer.alloc(0);
  try {
    question = query.subarray(HEADER, parseQuery(query).end);
  } catch { /* FORMERR etc.: no question echoed */ }
  const h = Buffer.alloc(HEADER);
  h.writeUInt16BE(id, 0);
  const rd = query.length >= 3 ? query[2]! & 0x01 : 0;
  h[2] = 0x80 | rd; // QR, opcode 0, RD copied
  h[3] = 0x80 | (rcode & 0xf); // RA
  h.writeUInt16BE(question.length ? 1 : 0, 4);
  return Buffer.concat([h, question]);
}

export interface ARecord {
  ip: string;
  ttl: number;
}

/**
 * The IPv4 addresses in the answer section of a reply. The caller has
 * checked that the reply answers its question; CNAME chains end in A
 * records for other names, which are what the queried name resolves to.
 */
export function answerAddresses(b: Buffer): { rcode: number; id: number; question: string; records: ARecord[] } {
  if (b.length < HEADER) throw new DnsFormatError('shorter than a header');
  const flags = u16(b, 2);
  if (!(flags & 0x8000)) throw new DnsFormatError('not a response');
  const qd = u16(b, 4);
  const an = u16(b, 6);
  let off = HEADER;
  let question = '';
  for (let i = 0; i < qd; i++) {
    const q = readName(b, off, true);
    if (i === 0) question = q.name;
    off = q.next + 4;
  }
  const records: ARecord[] = [];
  for (let i = 0; i < an; i++) {
    off = readName(b, off, true).next;
    const type = u16(b, off);
    const cls = u16(b, off + 2);
    if (off + 10 > b.length) throw new DnsFormatError('truncated record');
    const ttl = b.readUInt32BE(off + 4);
    const rdlen = u16(b, off + 8);
    const rdata = off + 10;
    if (rdata + rdlen > b.length) throw new DnsFormatError('record data runs past the message');
    if (type === TYPE_A && cls === CLASS_IN && rdlen === 4) {
      records.push({ ip: `${b[rdata]}.${b[rdata + 1]}.${b[rdata + 2]}.${b[rdata + 3]}`, ttl });
    }
    off = rdata + rdlen;
  }
  return { rcode: flags & 0xf, id: u16(b, 0), question, records };
}

/** A minimal query (tests, checks): one question, recursion desired. */
export function buildQuery(id: number, name: string, type = TYPE_A): Buffer {
  const parts = name.split('.').filter(Boolean).map((l) => {
    const s = Buffer.from(l, 'latin1');
    if (s.length > 63) throw new RangeError(`label too long: ${l}`);
    return Buffer.concat([Buffer.from([s.length]), s]);
  });
  const h = Buffer.alloc(HEADER);
  h.writeUInt16BE(id, 0);
  h[2] = 0x01;
  h.writeUInt16BE(1, 4);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(type, 0);
  tail.writeUInt16BE(CLASS_IN, 2);
  return Buffer.concat([h, ...parts, Buffer.from([0]), tail]);
}

/** An answer to `query` with the given A records (test upstreams). */
export function buildAnswer(query: Buffer, records: ARecord[], rcode: number = RCODE.NOERROR): Buffer {
  const q = parseQuery(query);
  const h = Buffer.alloc(HEADER);
  h.writeUInt16BE(q.id, 0);
  h[2] = 0x80 | (query[2]! & 0x01);
  h[3] = 0x80 | rcode;
  h.writeUInt16BE(1, 4);
  h.writeUInt16BE(records.length, 6);
  const rr = records.map((r) => {
    const b = Buffer.alloc(16);
    b.writeUInt16BE(0xc000 | HEADER, 0); // pointer to the question's name
    b.writeUInt16BE(TYPE_A, 2);
    b.writeUInt16BE(CLASS_IN, 4);
    b.writeUInt32BE(r.ttl, 6);
    b.writeUInt16BE(4, 10);
    r.ip.split('.').forEach((p, i) => { b[12 + i] = Number(p); });
    return b;
  });
  return Buffer.concat([h, query.subarray(HEADER, q.end), ...rr]);
}

/** Does name match one of the patterns? "example.com" is that name only; "*.example.com" any name under it. */
export function nameAllowed(name: string, patterns: readonly string[]): boolean {
  const n = name.toLowerCase().replace(/\.$/, '');
  for (const p0 of patterns) {
    const p = p0.toLowerCase().replace(/\.$/, '');
    if (p.startsWith('*.')) {
      if (n.endsWith(p.slice(1)) && n.length > p.length - 1) return true;
    } else if (n === p) return true;
  }
  return false;
}

