// The DNS forwarder of bridge mode, on the gateway address. Guests' port 53
// is redirected to it (nft), so it needs no privileged port and never
// clashes with a resolver the host already runs. For each query it looks up
// the asking guest's policy by source address (the bridge table stops
// spoofing):
//
//   no internet              REFUSED, nothing leaves the host
//   internet, no domain list forwarded upstream as is
//   internet, domain list    names off the list get NXDOMAIN; for the others
//                            the answer's IPv4 addresses are added to the
//                            guest's egress set (nft) *before* the guest sees
//                            the answer, so its connection right after works
//
// UDP only. Sizes, concurrency and the learned set are bounded.
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { answerAddresses, ARecord, DnsFormatError, errorReply, nameAllowed, parseQuery, RCODE } from './dns-message.js';
import { isIpv4 } from './ipam.js';

export interface DnsPolicy {
  internet: boolean;
  /** Empty: any name. */
  domains: string[];
}

export interface DnsForwarderOptions {
  bindIp: string;
  /** Upstream resolvers (IPv4, port 53), tried in order. */
  upstream: string[];
  /** The policy of the guest with this address; undefined: not a guest (REFUSED). */
  policyOf: (ip: string) => DnsPolicy | undefined;
  /** Called with the addresses an allowed name resolved to, for a guest with a domain list; the answer waits for it. */
  learn: (guest: string, name: string, records: ARecord[]) => Promise<void>;
  /** Default 53; tests point it at a resolver of their own on a high port. */
  upstreamPort?: number;
  timeoutMs?: number;
  maxInflight?: number;
  log?: (line: string) => void;
}

const MAX_MESSAGE = 4096;

export interface DnsStats {
  queries: number;
  forwarded: number;
  refused: number;
  blocked: number;
  failed: number;
}

export class DnsForwarder {
  readonly stats: DnsStats = { queries: 0, forwarded: 0, refused: 0, blocked: 0, failed: 0 };
  private inflight = 0;
  private closed = false;

  private constructor(private readonly sock: dgram.Socket, private readonly o: DnsForwarderOptions) {}

  /** Binds bindIp on a free UDP port. */
  static async start(o: DnsForwarderOptions): Promise<DnsForwarder> {
    const sock = dgram.createSocket({ type: 'udp4' });
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind({ address: o.bindIp, port: 0, exclusive: true }, () => { sock.off('error', reject); resolve(); });
    });
    const f = new DnsForwarder(sock, o);
    sock.on('message', (msg, rinfo) => { void f.handle(msg, rinfo); });
    sock.on('error', (e) => o.log?.(`dns: ${e.message}`));
    return f;
  }

  get port(): number {
    return this.sock.address().port;
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return new Promise((r) => this.sock.close(() => r()));
  }

  private reply(b: Buffer, rinfo: dgram.RemoteInfo): void {
    if (!this.closed) this.sock.send(b, rinfo.port, rinfo.address);
  }

  private async handle(msg: Buffer, rinfo: dgram.RemoteInfo): Promise<void> {
    this.stats.queries++;
    if (msg.length > MAX_MESSAGE || msg.length < 12) return;
    if (this.inflight >= (this.o.maxInflight ?? 256)) {
      this.stats.failed++;
      return this.reply(errorReply(msg, RCODE.SERVFAIL), rinfo);
    }
    this.inflight++;
    try {
      let q;
      try {
        q = parseQuery(msg);
      } catch (e) {
        if (e instanceof DnsFormatError) return this.reply(errorReply(msg, RCODE.FORMERR), rinfo);
        throw e;
      }
      const policy = this.o.policyOf(rinfo.address);
      if (!policy?.internet) {
        this.stats.refused++;
        return this.reply(errorReply(msg, RCODE.REFUSED), rinfo);
      }
      const limited = policy.domains.length > 0;
      if (limited && !nameAllowed(q.name, policy.domains)) {
        this.stats.blocked++;
        return this.reply(errorReply(msg, RCODE.NXDOMAIN), rinfo);
      }
      const answer = await this.ask(msg, q.name);
      if (!answer) {
        this.stats.failed++;
        return this.reply(errorReply(msg, RCODE.SERVFAIL), rinfo);
      }
      if (limited) {
        const records = answerAddresses(answer).records;
        if (records.length) await this.o.learn(rinfo.address, q.name, records);
      }
      this.stats.forwarded++;
      this.reply(answer, rinfo);
    } catch (e) {
      this.stats.failed++;
      this.o.log?.(`dns: ${e instanceof Error ? e.message : String(e)}`);
      this.reply(errorReply(msg, RCODE.SERVFAIL), rinfo);
    } finally {
      this.inflight--;
    }
  }

  /** Sends the query to each upstream in turn from a fresh socket; the first matching answer wins. */
  private async ask(query: Buffer, name: string): Promise<Buffer | undefined> {
    for (const server of this.o.upstream) {
      const got = await askOne(server, this.o.upstreamPort ?? 53, query, name, this.o.timeoutMs ?? 2_000).catch(() => undefined);
      if (got) return got;
    }
    return undefined;
  }
}

function askOne(server: string, port: number, query: Buffer, name: string, timeoutMs: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const done = (b: Buffer | undefined) => { clearTimeout(t); s.close(); resolve(b); };
    const t = setTimeout(() => done(undefined), timeoutMs);
    s.on('error', () => done(undefined));
    s.on('message', (b) => {
      // Only the answer to this question counts: the id and name must match.
      try {
        if (b.length > MAX_MESSAGE) return;
        const a = answerAddresses(b);
        if (a.id === query.readUInt16BE(0) && a.question === name) done(b);
      } catch { /* not an answer: keep waiting */ }
    });
    s.connect(port, server, () => s.send(query));
  });
}

/** The IPv4 nameservers of a resolv.conf (the forwarder's default upstream). */
export function resolvConfServers(file = '/etc/resolv.conf'): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1]).filter((x): x is string => !!x && isIpv4(x)).slice(0, 3);
}
