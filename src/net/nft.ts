// The nftables rules of bridge mode, generated whole from islet's state and
// applied atomically with `nft -f -` (the script on stdin, never a shell
// string). Two islet-owned tables:
//
//   table inet islet    policy: what guests may reach (other guests, the host,
//                       the outside), NAT (masquerade out, DNAT for port
//                       forwards, the DNS redirect to islet's forwarder)
//   table bridge islet  anti-spoofing: a TAP may only send IPv4/ARP from its
//                       own address (policy is by address, so a guest must not
//                       be able to take another's)
//
// Bridged guest-to-guest packets reach the inet hooks because the bridge is
// created with nf_call_iptables 1 (br_netfilter, per bridge): there they are
// seen with iifname = oifname = the bridge. A script starts with
// "table X; delete table X" so one transaction replaces the old tables.
import { run } from '../host/run.js';
import { isIpv4 } from './ipam.js';

export const TABLE = 'islet';

export interface GuestRule {
  tap: string;
  ip: string;
  /** May open connections out (the outside, the host) and resolve names. */
  internet: boolean;
  /** With internet: egress only to addresses the DNS forwarder resolved for an allowed name. */
  domainsOnly: boolean;
  /** May talk to other guests that allow it too. */
  interVm: boolean;
  /** TCP ports other guests and the host may connect to. */
  ports: number[];
}

export interface ForwardRule {
  hostPort: number;
  ip: string;
  guestPort: number;
}

/** A (guest, destination) pair the DNS forwarder learned, kept for ttlSec more seconds. */
export interface EgressEntry {
  guest: string;
  dest: string;
  ttlSec: number;
}

export interface RulesetSpec {
  bridge: string;
  gateway: string;
  /** The bridge subnet, a.b.c.d/p. */
  subnet: string;
  /** Where the DNS forwarder listens on the gateway; guests' port 53 is redirected there. */
  dnsPort: number;
  guests: GuestRule[];
  forwards: ForwardRule[];
  egress: EgressEntry[];
  /** Private/shared ranges guests with internet may still reach ([network] allowed_private_cidrs). */
  allowedPrivate?: string[];
  /** Destination TCP ports guests may connect out to ([network] egress_ports); empty: any. */
  egressPorts?: number[];
}

/** Never reachable from a guest, whatever its policy: loopback, link-local (cloud metadata), this-network, multicast, reserved. */
export const NEVER_CIDRS = ['0.0.0.0/8', '127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/4', '240.0.0.0/4'];
/** Private (RFC 1918) and shared (RFC 6598) ranges: refused unless allowed by config. */
export const PRIVATE_CIDRS = ['10.0.0.0/8', '100.64.0.0/10', '172.16.0.0/12', '192.168.0.0/16'];

const IFNAME = /^[a-zA-Z0-9_-]{1,15}$/;
const CIDR = /^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$/;

function ip(s: string): string {
  if (!isIpv4(s)) throw new RangeError(`nft: not an IPv4 address: ${JSON.stringify(s)}`);
  return s;
}
function ifname(s: string): string {
  if (!IFNAME.test(s)) throw new RangeError(`nft: bad interface name ${JSON.stringify(s)}`);
  return `"${s}"`;
}
function cidr(s: string): string {
  const [a, p] = s.split('/');
  if (!CIDR.test(s) || !isIpv4(a ?? '') || Number(p) > 32) throw new RangeError(`nft: bad CIDR ${JSON.stringify(s)}`);
  return s;
}
function port(n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new RangeError(`nft: bad port ${n}`);
  return n;
}
function ttl(n: number): number {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`nft: bad timeout ${n}`);
  return n;
}

/** `set NAME { type T; [flags F;] [elements = { ... }] }`: nft rejects an empty element list. */
function set(name: string, type: string, elements: string[], flags?: string): string {
  const parts = [`type ${type};`];
  if (flags) parts.push(`flags ${flags};`);
  if (elements.length) parts.push(`elements = { ${elements.join(', ')} }`);
  return `  set ${name} { ${parts.join(' ')} }`;
}

const uniq = (xs: string[]) => [...new Set(xs)];

export function egressElement(e: EgressEntry): string {
  return `${ip(e.guest)} . ${ip(e.dest)} timeout ${ttl(e.ttlSec)}s`;
}

/** The whole ruleset: replaces both islet tables in one transaction. */
export function ruleset(spec: RulesetSpec): string {
  const br = ifname(spec.bridge);
  const gw = ip(spec.gateway);
  if (!CIDR.test(spec.subnet)) throw new RangeError(`nft: bad subnet ${spec.subnet}`);
  const dns = port(spec.dnsPort);
  const g = spec.guests;
  const internet = g.filter((x) => x.internet && !x.domainsOnly).map((x) => ip(x.ip));
  const domainsOnly = new Set(g.filter((x) => x.internet && x.domainsOnly).map((x) => x.ip));
  const interVm = g.filter((x) => x.interVm).map((x) => ip(x.ip));
  const openPorts = g.flatMap((x) => uniq(x.ports.map((p) => `${ip(x.ip)} . ${port(p)}`)));
  // Learned pairs of guests whose policy no longer limits them to names are dropped, not carried over.
  const egress = spec.egress.filter((e) => domainsOnly.has(e.guest)).map(egressElement);

  const inet = [
    `table inet ${TABLE}`,
    `delete table inet ${TABLE}`,
    `table inet ${TABLE} {`,
    set('internet', 'ipv4_addr', uniq(internet)),
    set('egress_allow', 'ipv4_addr . ipv4_addr', uniq(egress), 'timeout'),
    set('inter_vm', 'ipv4_addr', uniq(interVm)),
    set('open_ports', 'ipv4_addr . inet_service', uniq(openPorts)),
    set('never', 'ipv4_addr', NEVER_CIDRS, 'interval'),
    set('private', 'ipv4_addr', PRIVATE_CIDRS, 'interval'),
    set('allowed_private', 'ipv4_addr', uniq((spec.allowedPrivate ?? []).map(cidr)), 'interval'),
    set('egress_ports', 'inet_service', uniq((spec.egressPorts ?? []).map((p) => String(port(p))))),
    '  chain prerouting_nat { type nat hook prerouting priority dstnat; policy accept;',
    `    iifname ${br} ip daddr ${gw} udp dport 53 redirect to :${dns}`,
    '  }',
    // Port forwards: connections from this host to 127.0.0.1:H go to the guest.
    '  chain output_nat { type nat hook output priority -100; policy accept;',
    ...spec.forwards.map((f) => `    ip daddr 127.0.0.1 tcp dport ${port(f.hostPort)} dnat ip to ${ip(f.ip)}:${port(f.guestPort)}`),
    '  }',
    '  chain postrouting_nat { type nat hook postrouting priority srcnat; policy accept;',
    // A forwarded connection still has 127.0.0.1 as its source: the guest sees the gateway instead.
    `    oifname ${br} ip saddr 127.0.0.0/8 masquerade`,
    `    iifname ${br} oifname != ${br} ip saddr ${spec.subnet} masquerade`,
    '  }',
    // Guests to this host (the gateway and every other host address): only the DNS forwarder and replies.
    // Internet never includes the host: its services (islet's control plane too) are not for guests.
    '  chain input { type filter hook input priority filter; policy accept;',
    `    iifname ${br} ct state established,related accept`,
    // Every guest may ask the forwarder; it answers by the guest's policy (REFUSED without internet).
    `    iifname ${br} ip daddr ${gw} udp dport ${dns} ct status dnat accept`,
    `    iifname ${br} drop`,
    '  }',
    '  chain forward { type filter hook forward priority filter; policy accept;',
    `    iifname ${br} ct state established,related accept`,
    `    oifname ${br} ct state established,related accept`,
    // Guest to guest (bridged, seen through br_netfilter): both sides must allow it, or the port is open.
    `    iifname ${br} oifname ${br} ip saddr @inter_vm ip daddr @inter_vm accept`,
    `    iifname ${br} oifname ${br} ip daddr . tcp dport @open_ports accept`,
    `    iifname ${br} oifname ${br} drop`,
    // Guest to the outside (routed): never link-local or loopback, private ranges only when allowed, only allowed ports.
    `    iifname ${br} ip daddr @never drop`,
    `    iifname ${br} ip daddr @private ip daddr != @allowed_private drop`,
    ...(spec.egressPorts?.length ? [`    iifname ${br} meta l4proto tcp tcp dport != @egress_ports drop`] : []),
    `    iifname ${br} ip saddr @internet accept`,
    `    iifname ${br} ip saddr . ip daddr @egress_allow accept`,
    `    iifname ${br} drop`,
    // Nothing from elsewhere is routed into the guests.
    `    oifname ${br} drop`,
    '  }',
    // This host to guests: only open ports, port forwards, and replies.
    '  chain output { type filter hook output priority filter; policy accept;',
    `    oifname ${br} ct state established,related accept`,
    `    oifname ${br} ct status dnat accept`,
    `    oifname ${br} ip daddr . tcp dport @open_ports accept`,
    `    oifname ${br} drop`,
    '  }',
    '}',
  ];
  const bridge = [
    `table bridge ${TABLE}`,
    `delete table bridge ${TABLE}`,
    `table bridge ${TABLE} {`,
    set('taps', 'ifname', uniq(g.map((x) => ifname(x.tap)))),
    set('tap_ip', 'ifname . ipv4_addr', uniq(g.map((x) => `${ifname(x.tap)} . ${ip(x.ip)}`))),
    '  chain prerouting { type filter hook prerouting priority filter; policy accept;',
    '    iifname != @taps accept',
    // No IPv6 (link-local would bypass the IPv4 policy) and no other protocols.
    '    ether type != { ip, arp } drop',
    '    ether type ip iifname . ip saddr != @tap_ip drop',
    '    ether type arp iifname . arp saddr ip != @tap_ip drop',
    '  }',
    '}',
  ];
  return `${inet.join('\n')}\n${bridge.join('\n')}\n`;
}

/** Adds learned pairs to the live set (the DNS forwarder's fast path: no full rewrite). */
export function egressAddScript(entries: EgressEntry[]): string {
  if (!entries.length) return '';
  return `add element inet ${TABLE} egress_allow { ${entries.map(egressElement).join(', ')} }\n`;
}

/** Removes both tables, whether or not they exist. */
export function teardownScript(): string {
  return [`table inet ${TABLE}`, `delete table inet ${TABLE}`, `table bridge ${TABLE}`, `delete table bridge ${TABLE}`].join('\n') + '\n';
}

/** Runs an nft script from stdin; the script is data, never a shell command line. */
export async function nftApply(script: string, o: { nft?: string; signal?: AbortSignal } = {}): Promise<void> {
  if (!script) return;
  await run([o.nft ?? 'nft', '-f', '-'], { input: script, timeoutMs: 30_000, signal: o.signal });
}

/** The islet tables present in this network namespace. */
export async function nftTables(o: { nft?: string } = {}): Promise<string[]> {
  const r = await run([o.nft ?? 'nft', 'list', 'tables'], { timeoutMs: 10_000 });
  return r.stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('table ') && l.endsWith(` ${TABLE}`)).map((l) => l.slice(6));
}
