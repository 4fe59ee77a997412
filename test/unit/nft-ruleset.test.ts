// The nftables ruleset of bridge mode, as text, and (as root, with nft) as
// the kernel reads it: loaded into a throwaway network namespace (unshare
// --net), never into this host's own.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { which } from '../../src/host/run.js';
import { egressAddScript, RulesetSpec, ruleset, teardownScript } from '../../src/net/nft.js';

const base: RulesetSpec = {
  bridge: 'br-islet', gateway: '10.42.0.1', subnet: '10.42.0.0/16', dnsPort: 40053,
  guests: [
    { tap: 'isl-0000000a', ip: '10.42.0.2', internet: true, domainsOnly: false, interVm: true, ports: [8080, 22] },
    { tap: 'isl-0000000b', ip: '10.42.0.3', internet: false, domainsOnly: false, interVm: true, ports: [] },
    { tap: 'isl-0000000c', ip: '10.42.0.4', internet: true, domainsOnly: true, interVm: false, ports: [9000] },
  ],
  forwards: [{ hostPort: 41000, ip: '10.42.0.3', guestPort: 80 }],
  egress: [
    { guest: '10.42.0.4', dest: '198.18.0.2', ttlSec: 300 },
    // A pair for a guest that is no longer limited to names is dropped.
    { guest: '10.42.0.2', dest: '198.18.0.9', ttlSec: 300 },
  ],
};

const setLine = (script: string, name: string) => script.split('\n').find((l) => l.includes(`set ${name} {`)) ?? '';

test('policy sets hold exactly the guests each rule is for', () => {
  const r = ruleset(base);
  assert.match(setLine(r, 'internet'), /elements = \{ 10\.42\.0\.2 \}/, 'only unlimited internet guests');
  assert.match(setLine(r, 'inter_vm'), /elements = \{ 10\.42\.0\.2, 10\.42\.0\.3 \}/);
  assert.match(setLine(r, 'open_ports'), /elements = \{ 10\.42\.0\.2 \. 8080, 10\.42\.0\.2 \. 22, 10\.42\.0\.4 \. 9000 \}/);
  assert.match(setLine(r, 'egress_allow'), /flags timeout; elements = \{ 10\.42\.0\.4 \. 198\.18\.0\.2 timeout 300s \}/);
  assert.doesNotMatch(r, /198\.18\.0\.9/);
  assert.match(setLine(r, 'tap_ip'), /"isl-0000000a" \. 10\.42\.0\.2, "isl-0000000b" \. 10\.42\.0\.3, "isl-0000000c" \. 10\.42\.0\.4/);
  assert.match(r, /ip daddr 127\.0\.0\.1 tcp dport 41000 dnat ip to 10\.42\.0\.3:80/);
  assert.match(r, /iifname "br-islet" ip daddr 10\.42\.0\.1 udp dport 53 redirect to :40053/);
  assert.match(r, /iifname "br-islet" oifname != "br-islet" ip saddr 10\.42\.0\.0\/16 masquerade/);
});

test('the script replaces both tables in one transaction and guest-to-guest traffic is dropped unless allowed', () => {
  const r = ruleset(base);
  const lines = r.split('\n');
  assert.deepEqual(lines.slice(0, 3), ['table inet islet', 'delete table inet islet', 'table inet islet {']);
  assert.ok(lines.includes('table bridge islet') && lines.includes('delete table bridge islet'));
  const fwd = lines.slice(lines.findIndex((l) => l.includes('chain forward')));
  const i = (re: RegExp) => fwd.findIndex((l) => re.test(l));
  // Order matters: accepts for allowed pairs and open ports come before the drop of guest-to-guest traffic.
  assert.ok(i(/@inter_vm ip daddr @inter_vm accept/) < i(/oifname "br-islet" drop$/));
  assert.ok(i(/@open_ports accept/) < i(/iifname "br-islet" oifname "br-islet" drop/));
  assert.ok(i(/iifname "br-islet" oifname "br-islet" drop/) < i(/ip saddr @internet accept/), 'bridged traffic never reaches the internet accept');
  assert.match(r, /ether type != \{ ip, arp \} drop/);
});

test('internet never includes the host, link-local, loopback, or private ranges unless allowed; egress ports limit TCP', () => {
  const r = ruleset({ ...base, allowedPrivate: ['10.78.0.0/16'], egressPorts: [443, 80] });
  const lines = r.split('\n');
  const chain = (name: string) => {
    const body = lines.slice(lines.findIndex((l) => l.includes(`chain ${name} {`)) + 1);
    return body.slice(0, body.indexOf('  }'));
  };
  const input = chain('input');
  assert.deepEqual(input.filter((l) => l.includes('accept')).map((l) => l.trim()), [
    'iifname "br-islet" ct state established,related accept',
    'iifname "br-islet" ip daddr 10.42.0.1 udp dport 40053 ct status dnat accept',
  ], 'from guests the host accepts only replies and the DNS forwarder');
  assert.equal(input.at(-1)!.trim(), 'iifname "br-islet" drop');
  assert.match(setLine(r, 'never'), /flags interval; elements = \{ 0\.0\.0\.0\/8, 127\.0\.0\.0\/8, 169\.254\.0\.0\/16, /);
  assert.match(setLine(r, 'private'), /10\.0\.0\.0\/8, 100\.64\.0\.0\/10, 172\.16\.0\.0\/12, 192\.168\.0\.0\/16/);
  assert.match(setLine(r, 'allowed_private'), /elements = \{ 10\.78\.0\.0\/16 \}/);
  assert.match(setLine(r, 'egress_ports'), /elements = \{ 443, 80 \}/);
  const fwd = chain('forward');
  const i = (re: RegExp) => fwd.findIndex((l) => re.test(l));
  for (const re of [/ip daddr @never drop/, /ip daddr @private ip daddr != @allowed_private drop/, /tcp dport != @egress_ports drop/]) {
    assert.ok(i(re) > 0 && i(re) < i(/ip saddr @internet accept/) && i(re) < i(/@egress_allow accept/), String(re));
  }
  assert.doesNotMatch(ruleset(base), /@egress_ports drop/, 'no port list: any port');
  assert.throws(() => ruleset({ ...base, allowedPrivate: ['10.0.0.0/33'] }), RangeError);
  assert.throws(() => ruleset({ ...base, allowedPrivate: ['10.0.0.0/8; flush ruleset'] }), RangeError);
  assert.throws(() => ruleset({ ...base, egressPorts: [0] }), RangeError);
});

test('empty sets have no element list (nft rejects "elements = { }")', () => {
  const r = ruleset({ ...base, guests: [], forwards: [], egress: [] });
  assert.doesNotMatch(r, /elements = \{\s*\}/);
  assert.match(setLine(r, 'internet'), /^ {2}set internet \{ type ipv4_addr; \}$/);
});

test('anything that is not an address, a port or an interface name is refused before it reaches nft', () => {
  const bad: Array<Partial<RulesetSpec>> = [
    { bridge: 'br-islet"; flush ruleset; "' },
    { gateway: '10.42.0.1 accept' },
    { subnet: '10.42.0.0/16 }' },
    { dnsPort: 0 },
    { guests: [{ ...base.guests[0]!, ip: '10.42.0.2; drop' }] },
    { guests: [{ ...base.guests[0]!, tap: 'isl-"x"' }] },
    { guests: [{ ...base.guests[0]!, ports: [70000] }] },
    { forwards: [{ hostPort: 0, ip: '10.42.0.3', guestPort: 80 }] },
    { egress: [{ guest: '10.42.0.4', dest: '198.18.0.2', ttlSec: 0 }] },
  ];
  for (const b of bad) assert.throws(() => ruleset({ ...base, ...b }), RangeError, JSON.stringify(b));
  assert.equal(egressAddScript([]), '');
});

const root = process.getuid?.() === 0;
const nft = await which('nft');
const unshare = await which('unshare');

test('nft accepts the ruleset, re-applies it over itself, and the teardown leaves nothing (throwaway netns)', {
  skip: !root || !nft || !unshare ? 'needs root, nft and unshare' : false,
}, () => {
  const script = ruleset(base) + ruleset({ ...base, guests: base.guests.slice(1), allowedPrivate: ['10.78.0.0/16'], egressPorts: [443] })
    + egressAddScript([{ guest: '10.42.0.4', dest: '198.18.0.7', ttlSec: 60 }]);
  // One shell per namespace; the script goes in on stdin. The bridge must exist for nothing: names are matched as strings.
  const r = spawnSync(unshare!, ['--net', 'sh', '-c', `${nft} -f - && ${nft} list ruleset`], { input: script, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /table inet islet/);
  assert.match(r.stdout, /table bridge islet/);
  assert.match(r.stdout, /10\.42\.0\.4 \. 198\.18\.0\.7/);
  assert.doesNotMatch(r.stdout, /"isl-0000000a"/, 'the second ruleset replaced the first');
  const t = spawnSync(unshare!, ['--net', 'sh', '-c', `${nft} -f - && ${nft} list ruleset`], { input: ruleset(base) + teardownScript(), encoding: 'utf8' });
  assert.equal(t.status, 0, t.stderr);
  assert.equal(t.stdout.trim(), '');
});
