// Bridge mode's host side, for one service process: the bridge with the
// gateway address, each running VM's TAP on it, the nft tables, the DNS
// forwarder and the host ports held for port forwards. Everything is made
// when the service opens and removed when it closes; a crash leaves it in
// place for the next open to take over (the bridge and the TAPs of VMs
// still running are reused, the tables rewritten).
//
// QEMU creates each TAP itself (-netdev tap,ifname=..., as root), so the TAP
// disappears with its QEMU and never outlives a VM; islet only puts it on
// the bridge once the VM is up. The rules are a pure function of the state
// (nft.ts) and are rewritten whole on every change, in one transaction.
import { access, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type { Config } from '../core/config.js';
import { HostPrerequisiteError, IsletError, PortInUseError } from '../core/errors.js';
import type { Progress } from '../core/progress.js';
import { FORWARD_HOST } from '../host/ports.js';
import { run, which } from '../host/run.js';
import { DnsForwarder, resolvConfServers } from './dns.js';
import { ARecord, nameAllowed } from './dns-message.js';
import { cidr, intToIp, Subnet, subnetOf, TAP_PREFIX } from './ipam.js';
import { EgressEntry, egressAddScript, GuestRule, nftApply, ruleset, teardownScript } from './nft.js';

/** A workspace's address and policy, as the service has them recorded. */
export interface BridgeGuest {
  id: string;
  ip: string;
  tap: string;
  internet: boolean;
  interVm: boolean;
  ports: number[];
  domains: string[];
}

interface Reservation {
  id: string;
  ip: string;
  guestPort: number;
  server: net.Server;
  /** The VM the forward belongs to: a forward dies with its VM. */
  owner: object;
}

interface Learned {
  guest: string;
  dest: string;
  name: string;
  expires: number;
}

/** Learned addresses live at least this long (short DNS TTLs would break connections made a little later) and at most this. */
const LEARN_MIN_S = 300;
const LEARN_MAX_S = 86_400;
const LEARN_MAX_ENTRIES = 4096;
const STATE_FILE = 'bridge-host.json';

export interface BridgeNetOptions {
  config: Config;
  progress: Progress;
  /** A workspace's address and policy (read from the store on each rewrite); undefined once it is gone. */
  guestOf: (id: string) => BridgeGuest | undefined;
}

export class BridgeNet {
  readonly subnet: Subnet;
  readonly bridge: string;
  private dns!: DnsForwarder;
  private readonly forwards = new Map<number, Reservation>();
  /** Workspaces whose VM runs with its TAP on the bridge, and that VM: only they have rules. */
  private readonly attached = new Map<string, { owner: object; ip: string | undefined }>();
  private readonly learned = new Map<string, Learned>();
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(private readonly o: BridgeNetOptions) {
    const n = o.config.network;
    this.subnet = subnetOf(n.gateway_ip, n.subnet_prefix);
    this.bridge = n.bridge_name;
  }

  get gateway(): string {
    return intToIp(this.subnet.gateway);
  }

  private get stateFile(): string {
    return path.join(this.o.config.paths.runDir, STATE_FILE);
  }

  /**
   * Checks the host, then creates (or takes over) the bridge, the DNS
   * forwarder and the tables. running: VMs still up from an earlier process,
   * whose rules must be in the very first ruleset.
   */
  static async open(o: BridgeNetOptions, running: Array<{ id: string; owner: object }> = []): Promise<BridgeNet> {
    await bridgePrerequisites();
    const b = new BridgeNet(o);
    for (const r of running) b.attached.set(r.id, { owner: r.owner, ip: o.guestOf(r.id)?.ip });
    await b.up();
    return b;
  }

  private guests(): BridgeGuest[] {
    return [...this.attached.keys()].map((id) => this.o.guestOf(id)).filter((g): g is BridgeGuest => g !== undefined);
  }

  /**
   * A VM of workspace id runs with its TAP (made by QEMU): its rules go in
   * first, then the TAP goes on the bridge. readdress (the guest taking its
   * lease) runs while the rules are written: nothing reaches the VM before
   * its TAP is on the bridge, so the two need no order between them.
   */
  async attach(id: string, tap: string, owner: object, readdress?: () => Promise<void>): Promise<void> {
    if (!tap.startsWith(TAP_PREFIX)) throw new RangeError(`not an islet TAP: ${tap}`);
    this.attached.set(id, { owner, ip: this.o.guestOf(id)?.ip });
    await Promise.all([this.sync(), readdress?.()]);
    await ip('link', 'set', 'dev', tap, 'master', this.bridge, 'up');
  }

  /** True while `owner` is the VM attached for workspace id. */
  isAttached(id: string, owner?: object): boolean {
    return owner ? this.attached.get(id)?.owner === owner : this.attached.has(id);
  }

  private async up(): Promise<void> {
    const br = this.bridge;
    await brNetfilter();
    const exists = await linkExists(br);
    if (exists) {
      const kind = (await run(['ip', '-d', '-o', 'link', 'show', 'dev', br], { timeoutMs: 10_000 })).stdout;
      if (!/\bbridge\b/.test(kind)) {
        throw new HostPrerequisiteError(`${br} exists on this host and is not a bridge`,
          'set [network] bridge_name to a name islet may own', { bridge: br });
      }
      await ip('link', 'set', 'dev', br, 'type', 'bridge', 'nf_call_iptables', '1');
      this.o.progress(`bridge ${br}: taking over (left by an earlier islet)`);
    } else {
      await ip('link', 'add', 'name', br, 'type', 'bridge', 'nf_call_iptables', '1');
    }
    await ip('addr', 'replace', `${this.gateway}/${this.subnet.prefix}`, 'dev', br);
    await ip('link', 'set', 'dev', br, 'up');
    // Forwarded connections come from 127.0.0.1 and are DNATed onto the bridge: allowed only with route_localnet.
    await writeFile(`/proc/sys/net/ipv4/conf/${br}/route_localnet`, '1');
    await this.enableForwarding();
    const upstream = this.o.config.network.dns_upstream.length ? this.o.config.network.dns_upstream : resolvConfServers();
    if (!upstream.length) this.o.progress('bridge: no IPv4 nameserver in /etc/resolv.conf and no [network] dns_upstream: guests get SERVFAIL');
    this.dns = await DnsForwarder.start({
      bindIp: this.gateway,
      upstream,
      policyOf: (addr) => {
        const g = this.guests().find((x) => x.ip === addr);
        return g && { internet: g.internet, domains: g.domains };
      },
      learn: (guest, name, records) => this.learn(guest, name, records),
      log: (l) => this.o.progress(l),
    });
    await this.sync();
    this.o.progress(`bridge ${br}: ${this.gateway}/${this.subnet.prefix}, DNS forwarder on port ${this.dns.port}`);
  }

  /** ip_forward is per network namespace and host-wide within it: remember the old value to restore it at close. */
  private async enableForwarding(): Promise<void> {
    const f = '/proc/sys/net/ipv4/ip_forward';
    const now = (await readFile(f, 'utf8')).trim();
    const saved = await readFile(this.stateFile, 'utf8').then((t) => JSON.parse(t) as { ipForwardWas?: string }, () => undefined);
    if (!saved) await writeFile(this.stateFile, JSON.stringify({ ipForwardWas: now }));
    if (now !== '1') await writeFile(f, '1');
  }

  /** Runs nft changes one at a time: a full rewrite never interleaves with the DNS forwarder's additions. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.catch(() => undefined).then(fn);
    this.queue = next;
    return next;
  }

  /** Rewrites both tables from the current state; returns the wall time it took. */
  sync(): Promise<number> {
    return this.serial(() => this.applyFull());
  }

  /** The rewrite itself; callers hold the queue. */
  private async applyFull(): Promise<number> {
    if (this.closed) return 0;
    const t0 = performance.now();
    const now = Date.now();
    for (const [k, l] of this.learned) if (l.expires <= now) this.learned.delete(k);
    const guests = this.guests();
    const byIp = new Map(guests.map((g) => [g.ip, g]));
    const egress: EgressEntry[] = [];
    for (const l of this.learned.values()) {
      // A pair stays only while the guest still allows the name it came from.
      const g = byIp.get(l.guest);
      if (!g || !g.internet || !g.domains.length || !nameAllowed(l.name, g.domains)) continue;
      egress.push({ guest: l.guest, dest: l.dest, ttlSec: Math.max(1, Math.ceil((l.expires - now) / 1000)) });
    }
    const rules: GuestRule[] = guests.map((g) => ({
      tap: g.tap, ip: g.ip, internet: g.internet, domainsOnly: g.internet && g.domains.length > 0, interVm: g.interVm, ports: g.ports,
    }));
    const forwards = [...this.forwards].map(([hostPort, r]) => ({ hostPort, ip: r.ip, guestPort: r.guestPort }));
    await nftApply(ruleset({
      bridge: this.bridge, gateway: this.gateway, subnet: cidr(this.subnet), dnsPort: this.dns.port, guests: rules, forwards, egress,
      allowedPrivate: this.o.config.network.allowed_private_cidrs, egressPorts: this.o.config.network.egress_ports,
    }));
    return performance.now() - t0;
  }

  private async learn(guest: string, name: string, records: ARecord[]): Promise<void> {
    const now = Date.now();
    const added: EgressEntry[] = [];
    let refreshed = false;
    for (const r of records) {
      const ttlSec = Math.min(LEARN_MAX_S, Math.max(LEARN_MIN_S, r.ttl));
      const key = `${guest}>${r.ip}`;
      refreshed ||= this.learned.delete(key); // re-inserted below: the Map's order is then oldest first
      this.learned.set(key, { guest, dest: r.ip, name, expires: now + ttlSec * 1000 });
      added.push({ guest, dest: r.ip, ttlSec });
    }
    while (this.learned.size > LEARN_MAX_ENTRIES) this.learned.delete(this.learned.keys().next().value!);
    await this.serial(async () => {
      if (this.closed) return;
      // nft's "add element" leaves an existing element's timeout as it was: a refresh needs the full rewrite.
      if (refreshed) await this.applyFull();
      else await nftApply(egressAddScript(added)).catch(() => this.applyFull());
    });
  }

  /**
   * Holds 127.0.0.1:hostPort for a forward (0: a free port) so nothing else
   * can bind it; the DNAT rule takes the connections before this socket sees them.
   */
  async reserve(f: { id: string; ip: string; hostPort: number; guestPort: number; owner: object }): Promise<number> {
    const held = this.forwards.get(f.hostPort);
    if (held && held.id === f.id && held.guestPort === f.guestPort) {
      held.owner = f.owner;
      held.ip = f.ip;
      return f.hostPort;
    }
    if (held) throw new PortInUseError(f.hostPort, 'another forward holds it');
    const server = await holdPort(f.hostPort);
    const port = (server.address() as net.AddressInfo).port;
    this.forwards.set(port, { id: f.id, ip: f.ip, guestPort: f.guestPort, server, owner: f.owner });
    return port;
  }

  release(hostPort: number): void {
    const r = this.forwards.get(hostPort);
    if (!r) return;
    this.forwards.delete(hostPort);
    r.server.close();
  }

  /** The VM `owner` of workspace id is gone (its TAP went with its QEMU): its rules and forwards go; a newer VM of the workspace keeps its own. */
  async vmGone(id: string, owner: object): Promise<void> {
    if (this.closed) return;
    const a = this.attached.get(id);
    if (a?.owner === owner) {
      this.attached.delete(id);
      // What it resolved must not carry over to the next workspace given its address.
      for (const [k, l] of this.learned) if (l.guest === a.ip) this.learned.delete(k);
    }
    for (const [p, r] of this.forwards) if (r.id === id && r.owner === owner) this.release(p);
    await this.sync().catch((e: unknown) => this.o.progress(`bridge: rule update failed: ${String(e)}`));
  }

  heldForwards(): Array<{ id: string; hostPort: number; guestPort: number }> {
    return [...this.forwards].map(([hostPort, r]) => ({ id: r.id, hostPort, guestPort: r.guestPort }));
  }

  /**
   * Stops the DNS forwarder and lets go of the held host ports. Unless VMs
   * still run (keepNetwork), also removes what open() made: the tables, any
   * TAP left on the bridge, the bridge, and restores ip_forward. Running VMs
   * keep their rules (their policy still holds), but get no DNS answers until
   * a service runs again.
   */
  async close(o: { keepNetwork?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    await this.serial(async () => { this.closed = true; });
    for (const p of [...this.forwards.keys()]) this.release(p);
    await this.dns?.close();
    if (o.keepNetwork) return;
    const errors: string[] = [];
    const attempt = async (what: string, fn: () => Promise<unknown>) => {
      try { await fn(); } catch (e) { errors.push(`${what}: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`); }
    };
    await attempt('nft tables', () => nftApply(teardownScript()));
    for (const tap of await tapsOn(this.bridge)) await attempt(`TAP ${tap}`, () => ip('link', 'del', 'dev', tap));
    if (await linkExists(this.bridge)) await attempt(`bridge ${this.bridge}`, () => ip('link', 'del', 'dev', this.bridge));
    const saved = await readFile(this.stateFile, 'utf8').then((t) => JSON.parse(t) as { ipForwardWas?: string }, () => undefined);
    if (saved?.ipForwardWas && saved.ipForwardWas !== '1') await attempt('ip_forward', () => writeFile('/proc/sys/net/ipv4/ip_forward', saved.ipForwardWas!));
    await rm(this.stateFile, { force: true });
    if (errors.length) this.o.progress(`bridge: cleanup incomplete: ${errors.join('; ')}`);
  }
}

const ip = (...args: string[]) => run(['ip', ...args], { timeoutMs: 15_000 });

async function linkExists(name: string): Promise<boolean> {
  const r = await run(['ip', '-o', 'link', 'show', 'dev', name], { timeoutMs: 10_000, allowFailure: true });
  return r.code === 0;
}

/** islet's TAPs that are ports of the bridge. */
export async function tapsOn(bridge: string): Promise<string[]> {
  const r = await run(['ip', '-o', 'link', 'show', 'master', bridge], { timeoutMs: 10_000, allowFailure: true });
  if (r.code !== 0) return [];
  return r.stdout.split('\n').map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1]).filter((x): x is string => !!x && x.startsWith(TAP_PREFIX));
}

/** Bridge mode needs root and the ip and nft programs. */
export async function bridgePrerequisites(): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new HostPrerequisiteError('[network] mode = "bridge" needs root (it creates a bridge, TAP devices and nftables rules)',
      'run islet as root, or set [network] mode = "user" (no root needed)');
  }
  const missing = [];
  for (const [prog, pkg] of [['ip', 'iproute2'], ['nft', 'nftables']] as const) if (!(await which(prog))) missing.push(pkg);
  if (missing.length) {
    throw new HostPrerequisiteError(`bridge networking needs ${missing.join(' and ')}`, `islet setup (as root), or apt-get install ${missing.join(' ')}`,
      { missing });
  }
}

/**
 * Guest-to-guest policy relies on br_netfilter passing bridged IPv4 through
 * the inet hooks; without it every bridged packet would pass unfiltered, so
 * bridge mode refuses to start.
 */
export async function brNetfilter(): Promise<void> {
  if (await exists('/proc/sys/net/bridge')) return;
  await run(['modprobe', 'br_netfilter'], { timeoutMs: 15_000, allowFailure: true }).catch(() => undefined);
  if (await exists('/proc/sys/net/bridge')) return;
  throw new HostPrerequisiteError('the kernel has no br_netfilter: bridged traffic between guests could not be filtered',
    'modprobe br_netfilter (a kernel built with CONFIG_BRIDGE_NETFILTER), or use [network] mode = "user"');
}

const exists = (p: string) => access(p).then(() => true, () => false);

function holdPort(port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    // Connections never reach it (DNAT rewrites them first); anything that does is closed at once.
    const srv = net.createServer((s) => s.destroy());
    srv.unref();
    srv.once('error', (e: NodeJS.ErrnoException) => {
      reject(e.code === 'EADDRINUSE' ? new PortInUseError(port)
        : new IsletError('INTERNAL', `cannot hold ${FORWARD_HOST}:${port}: ${e.message}`, undefined, { host_port: port }, { cause: e }));
    });
    srv.listen({ host: FORWARD_HOST, port, exclusive: true, backlog: 1 }, () => resolve(srv));
  });
}
