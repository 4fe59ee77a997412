// The DNS side of the egress allowlist: the wire-format helpers against
// well-formed and hostile messages, name matching, and the forwarder itself
// on loopback with a resolver of the test's own (no other address is used).
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, before, describe, test } from 'node:test';
import { DnsForwarder, DnsPolicy, resolvConfServers } from '../../src/net/dns.js';
import {
  answerAddresses, ARecord, buildAnswer, buildQuery, DnsFormatError, errorReply, nameAllowed, parseQuery, RCODE,
} from '../../src/net/dns-message.js';
import { DOMAIN_PATTERN } from '../../src/core/schemas.js';

test('a query round-trips and an answer yields its A records (through a compression pointer)', () => {
  const q = buildQuery(0x1234, 'Registry.NPMjs.org');
  const p = parseQuery(q);
  assert.deepEqual({ id: p.id, name: p.name, type: p.type }, { id: 0x1234, name: 'registry.npmjs.org', type: 1 });
  const a = answerAddresses(buildAnswer(q, [{ ip: '198.18.0.2', ttl: 60 }, { ip: '198.18.0.3', ttl: 30 }]));
  assert.deepEqual(a, { rcode: 0, id: 0x1234, question: 'registry.npmjs.org', records: [{ ip: '198.18.0.2', ttl: 60 }, { ip: '198.18.0.3', ttl: 30 }] });
});

test('error replies echo the id and the question', () => {
  const q = buildQuery(7, 'blocked.test');
  const r = errorReply(q, RCODE.NXDOMAIN);
  assert.equal(r.readUInt16BE(0), 7);
  assert.equal(r[3]! & 0xf, RCODE.NXDOMAIN);
  assert.ok(r[2]! & 0x80, 'QR set');
  assert.equal(r.readUInt16BE(4), 1);
  assert.deepEqual(answerAddresses(r), { rcode: 3, id: 7, question: 'blocked.test', records: [] });
  // Garbage gets a header-only reply, never an exception.
  assert.equal(errorReply(Buffer.from([1, 2, 3]), RCODE.FORMERR).length, 12);
});

test('hostile messages are format errors, not crashes or loops', () => {
  const q = buildQuery(1, 'a.b');
  const loop = Buffer.from(q);
  loop.writeUInt16BE(0xc00c, 12); // a pointer to itself
  const cases = [
    Buffer.alloc(5), loop, Buffer.concat([q.subarray(0, 12), Buffer.from([63])]), // label past the end
    (() => { const b = Buffer.from(q); b.writeUInt16BE(2, 4); return b; })(), // two questions
    (() => { const b = Buffer.from(q); b[2] = 0x80; return b; })(), // a response, not a query
  ];
  for (const b of cases) assert.throws(() => parseQuery(b), DnsFormatError);
  const ans = buildAnswer(q, [{ ip: '1.2.3.4', ttl: 5 }]);
  for (let cut = 12; cut < ans.length; cut++) {
    try { answerAddresses(ans.subarray(0, cut)); } catch (e) { assert.ok(e instanceof DnsFormatError, `cut at ${cut}: ${String(e)}`); }
  }
  const selfLoop = Buffer.from(ans);
  selfLoop.writeUInt16BE(0xc000 | (ans.length - 16), ans.length - 16);
  assert.throws(() => answerAddresses(selfLoop), DnsFormatError);
  // Random bytes: DnsFormatError or a result, nothing else.
  let seed = 1;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
  for (let i = 0; i < 2000; i++) {
    const b = Buffer.from(Array.from({ length: 12 + (i % 60) }, rnd));
    for (const f of [parseQuery, answerAddresses]) {
      try { f(b); } catch (e) { assert.ok(e instanceof DnsFormatError, String(e)); }
    }
  }
});

test('name patterns: exact names, and "*." for names under a domain (not the domain itself)', () => {
  const pats = ['registry.npmjs.org', '*.debian.org'];
  assert.ok(nameAllowed('registry.npmjs.org', pats));
  assert.ok(nameAllowed('REGISTRY.npmjs.org.', pats));
  assert.ok(nameAllowed('deb.debian.org', pats));
  assert.ok(nameAllowed('a.b.debian.org', pats));
  for (const n of ['debian.org', 'evildebian.org', 'npmjs.org', 'registry.npmjs.org.evil.com', 'x.registry.npmjs.org']) {
    assert.ok(!nameAllowed(n, pats), n);
  }
  for (const ok of ['example.com', '*.example.com', 'a-b.c0.io', 'localhost']) assert.ok(DOMAIN_PATTERN.test(ok), ok);
  for (const bad of ['', '*', '*.', 'a..b', '-a.com', 'a-.com', 'a.*.com', 'exa mple.com', 'x'.repeat(64) + '.com', 'a.com/x']) {
    assert.ok(!DOMAIN_PATTERN.test(bad), bad);
  }
});

test('resolv.conf: IPv4 nameservers only, at most three', () => {
  assert.deepEqual(resolvConfServers('/nonexistent'), []);
});

describe('the forwarder on loopback', () => {
  const guests = new Map<string, DnsPolicy>();
  const learned: Array<{ guest: string; name: string; records: ARecord[] }> = [];
  let upstream: dgram.Socket;
  let fwd: DnsForwarder;
  let upstreamQueries = 0;
  const zone: Record<string, string> = { 'allowed.test': '198.18.0.2', 'blocked.test': '198.18.0.3', 'x.pkg.test': '198.18.0.4' };

  before(async () => {
    upstream = dgram.createSocket('udp4');
    upstream.on('message', (m, r) => {
      upstreamQueries++;
      const q = parseQuery(m);
      const ip = zone[q.name];
      upstream.send(ip ? buildAnswer(m, [{ ip, ttl: 30 }]) : buildAnswer(m, [], RCODE.NXDOMAIN), r.port, r.address);
    });
    await new Promise<void>((r) => upstream.bind(0, '127.0.0.1', r));
    fwd = await DnsForwarder.start({
      bindIp: '127.0.0.1', upstream: ['127.0.0.1'], upstreamPort: upstream.address().port,
      policyOf: (ip) => guests.get(ip),
      learn: async (guest, name, records) => { learned.push({ guest, name, records }); },
    });
  });
  after(async () => { await fwd.close(); upstream.close(); });

  /** Asks from a given loopback source address, as a guest at that address would. */
  const ask = (from: string, name: string) => new Promise<{ rcode: number; records: ARecord[] }>((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    const t = setTimeout(() => { s.close(); reject(new Error('no answer')); }, 3000);
    s.on('message', (b) => { clearTimeout(t); s.close(); const a = answerAddresses(b); resolve({ rcode: a.rcode, records: a.records }); });
    s.bind(0, from, () => s.send(buildQuery(99, name), fwd.port, '127.0.0.1'));
  });

  test('a guest without internet gets REFUSED and nothing goes upstream', async () => {
    guests.set('127.0.0.11', { internet: false, domains: [] });
    const n = upstreamQueries;
    assert.equal((await ask('127.0.0.11', 'allowed.test')).rcode, RCODE.REFUSED);
    assert.equal((await ask('127.0.0.99', 'allowed.test')).rcode, RCODE.REFUSED, 'unknown source');
    assert.equal(upstreamQueries, n);
  });

  test('a guest with internet and no list resolves anything; nothing is learned', async () => {
    guests.set('127.0.0.12', { internet: true, domains: [] });
    assert.deepEqual(await ask('127.0.0.12', 'blocked.test'), { rcode: 0, records: [{ ip: '198.18.0.3', ttl: 30 }] });
    assert.equal(learned.length, 0);
  });

  test('a guest with a list resolves only listed names, and their addresses are learned before it gets the answer', async () => {
    guests.set('127.0.0.13', { internet: true, domains: ['allowed.test', '*.pkg.test'] });
    const n = upstreamQueries;
    assert.equal((await ask('127.0.0.13', 'blocked.test')).rcode, RCODE.NXDOMAIN);
    assert.equal(upstreamQueries, n, 'a blocked name never goes upstream');
    assert.deepEqual(await ask('127.0.0.13', 'allowed.test'), { rcode: 0, records: [{ ip: '198.18.0.2', ttl: 30 }] });
    assert.deepEqual(await ask('127.0.0.13', 'x.pkg.test'), { rcode: 0, records: [{ ip: '198.18.0.4', ttl: 30 }] });
    assert.deepEqual(learned, [
      { guest: '127.0.0.13', name: 'allowed.test', records: [{ ip: '198.18.0.2', ttl: 30 }] },
      { guest: '127.0.0.13', name: 'x.pkg.test', records: [{ ip: '198.18.0.4', ttl: 30 }] },
    ]);
    assert.equal((await ask('127.0.0.13', 'none.pkg.test')).rcode, RCODE.NXDOMAIN, 'upstream NXDOMAIN passes through');
    assert.ok(fwd.stats.blocked >= 1 && fwd.stats.refused >= 2 && fwd.stats.forwarded >= 3);
  });

  test('a dead upstream is SERVFAIL, in bounded time', async () => {
    const dead = await DnsForwarder.start({
      bindIp: '127.0.0.1', upstream: ['127.0.0.1'], upstreamPort: 9, timeoutMs: 300, policyOf: () => ({ internet: true, domains: [] }), learn: async () => undefined,
    });
    try {
      const s = dgram.createSocket('udp4');
      const got = await new Promise<number>((resolve) => {
        s.on('message', (b) => { s.close(); resolve(b[3]! & 0xf); });
        s.send(buildQuery(5, 'allowed.test'), dead.port, '127.0.0.1');
      });
      assert.equal(got, RCODE.SERVFAIL);
    } finally {
      await dead.close();
    }
  });
});
