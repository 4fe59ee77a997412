// Network figures, through the WorkspaceService on a throwaway data dir.
// User mode: host->guest throughput through a port forward and the time of
// a live network policy change; as root, guest->outside throughput direct
// through slirp against through the egress proxy, in one VM of the same run
// (net-egress-child.ts, in a network namespace: the proxy never reaches the
// host).
// Bridge mode (as root, with nft): the same two throughputs and the time to
// apply a policy change live, measured by a child process inside a network
// namespace of its own (net-bridge-child.ts), with the user-mode figures of
// this run as baselines. Beside them, workspace_create to first exec in
// both modes (a template restore; in bridge mode plus the re-addressing of
// the guest to its lease).
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { resolveConfig, type Config } from '../src/core/config.js';
import { WorkspaceService } from '../src/service/workspaces.js';
import { PUBLIC } from '../test/fixtures/egress-world.js';
import { makeTopology, netnsUnavailable, SITE_A } from '../test/fixtures/netns.js';
import type { Row } from './mcp.js';

const MIB = 64;
const BYTES = MIB << 20;

// The guest side is perl (perl-base is in the image) with 1 MiB syscalls:
// busybox nc moves a few KiB per syscall, which under TCG measures nc, not
// the network (~3 MB/s).
export const guestSend = (port: number, host = '10.0.2.2') => `perl -e 'use IO::Socket::INET; my $s = IO::Socket::INET->new(PeerAddr => "${host}:${port}") or die "$!";
  my $b = "\\0" x (1 << 20); for (1..${MIB}) { my $o = 0; while ($o < length $b) { my $n = syswrite($s, $b, length($b) - $o, $o); die "$!" unless defined $n; $o += $n } } close $s'`;
export const guestReceive = (port: number, out: string) => `perl -e 'use IO::Socket::INET; my $l = IO::Socket::INET->new(LocalPort => ${port}, Listen => 1, ReuseAddr => 1) or die "$!";
  my $c = $l->accept; my ($n, $b) = (0, ""); while ((my $r = sysread($c, $b, 1 << 20)) > 0) { $n += $r } print "$n\\n"' > ${out}`;

/**
 * A guest sender timed in the guest, for destinations outside the host (a
 * sink in a test namespace; net-peer.ts sink): optional CONNECT preamble
 * (the egress proxy), MIB MiB in 1 MiB syscalls, half-close, then wait for
 * the sink to close, so the time covers delivery. Prints microseconds.
 */
export const timedSend = (peer: string, connect?: string) => `t0=$(date +%s%N); perl -e 'use IO::Socket::INET; my $s = IO::Socket::INET->new(PeerAddr => "${peer}") or die "$!";
  ${connect ? `print $s "CONNECT ${connect} HTTP/1.1\\r\\nHost: ${connect}\\r\\n\\r\\n"; my $h = ""; while ($h !~ /\\r\\n\\r\\n/) { sysread($s, my $c, 1) or die "eof"; $h .= $c } die $h unless $h =~ / 200 /;` : ''}
  my $b = "\\0" x (1 << 20); for (1..${MIB}) { my $o = 0; while ($o < length $b) { my $n = syswrite($s, $b, length($b) - $o, $o); die "$!" unless defined $n; $o += $n } }
  shutdown($s, 1); sysread($s, my $x, 1);' && t1=$(date +%s%N) && echo $(( (t1 - t0) / 1000 ))`;

/** MB/s from timedSend's output. */
export const sentMbps = (out: string): number => {
  const us = Number(out.trim());
  if (!Number.isFinite(us) || us <= 0) throw new Error(`guest sender printed ${JSON.stringify(out)}`);
  return BYTES / 1e6 / (us / 1e6);
};

/** Accepts one connection and resolves with the bytes received and the ms from accept to the client's close. */
export function sink(host = '127.0.0.1'): Promise<{ port: number; done: Promise<{ bytes: number; ms: number }>; close: () => void }> {
  return new Promise((resolveListen) => {
    let resolveDone!: (v: { bytes: number; ms: number }) => void;
    const done = new Promise<{ bytes: number; ms: number }>((r) => { resolveDone = r; });
    const srv = net.createServer((s) => {
      const t0 = performance.now();
      let bytes = 0;
      s.on('data', (c: Buffer) => {
        bytes += c.length;
        if (bytes >= BYTES) { resolveDone({ bytes, ms: performance.now() - t0 }); s.destroy(); }
      });
      s.on('end', () => resolveDone({ bytes, ms: performance.now() - t0 }));
      s.on('error', () => undefined);
    });
    srv.listen(0, host, () => resolveListen({ port: (srv.address() as net.AddressInfo).port, done, close: () => srv.close() }));
  });
}

/** Connects to 127.0.0.1:port, writes BYTES, and resolves when the peer closes (it got everything). */
export function source(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection({ host: '127.0.0.1', port });
    const chunk = Buffer.alloc(1 << 20, 7);
    let t0 = 0;
    s.once('connect', async () => {
      t0 = performance.now();
      for (let i = 0; i < MIB; i++) if (!s.write(chunk)) await new Promise((r) => s.once('drain', r));
      s.end();
    });
    s.on('close', () => resolve(performance.now() - t0));
    s.on('error', reject);
  });
}

export { BYTES, MIB };

/** Guest -> host TCP: the guest sends BYTES to a listener on `host` (as the guest sees it); MB/s. */
export async function guestToHost(svc: WorkspaceService, c: { owner: string }, id: string, host?: string): Promise<number> {
  const s = await sink(host);
  const sent = svc.exec(c, { workspace_id: id, command: guestSend(s.port, host), timeout_ms: 300_000 });
  const got = await s.done;
  await sent.catch(() => undefined); // the sender may see the reset after the sink has everything
  s.close();
  if (got.bytes < BYTES) throw new Error(`guest->host: received ${got.bytes} of ${BYTES} bytes`);
  return got.bytes / 1e6 / (got.ms / 1000);
}

/** Host -> guest TCP through a port forward: the guest receiver exits at EOF, which closes the host's socket; MB/s. */
export async function hostToGuest(svc: WorkspaceService, c: { owner: string }, id: string): Promise<number> {
  await svc.exec(c, { workspace_id: id, command: `(${guestReceive(9000, '/tmp/recv')} &)
    for i in $(seq 100); do grep -q ':2328 00000000:0000 0A' /proc/net/tcp && exit 0; sleep 0.05; done; exit 1` });
  const f = await svc.portForward(c, { workspace_id: id, guest_port: 9000 });
  const ms = await source(f.host_port);
  const n = (await svc.exec(c, { workspace_id: id, command: 'sleep 0.2; cat /tmp/recv' })).stdout.trim();
  if (n !== String(BYTES)) throw new Error(`host->guest: the guest received ${n} of ${BYTES} bytes`);
  return BYTES / 1e6 / (ms / 1000);
}

/** create -> first exec -> destroy, n times after the caller's first create (which built the template if needed); ms each. */
export async function createToExec(svc: WorkspaceService, c: { owner: string }, name: string, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const w = await svc.create(c, { name: `${name}-${i}` });
    const r = await svc.exec(c, { workspace_id: w.workspace_id, command: 'true' });
    out.push(performance.now() - t0);
    if (r.exit_code !== 0) throw new Error(`first exec in ${w.workspace_id} exited ${r.exit_code}`);
    await svc.destroy(c, { workspace_id: w.workspace_id });
  }
  return out;
}

const medianOf = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function benchNet(config: Config, record: (r: Row) => void): Promise<void> {
  const user = await benchUserNet(config, record);
  user.g2h = await benchEgressNet(config, record);
  await benchBridgeNet(config, record, user);
}

interface UserFigures { g2h: number; h2g: number; policyMs: number; createMs: number }

async function benchUserNet(config: Config, record: (r: Row) => void): Promise<UserFigures> {
  const fig: UserFigures = { g2h: 0, h2g: 0, policyMs: 0, createMs: 0 };
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'islet-bench-net-'));
  const svc = await WorkspaceService.open(resolveConfig({ storage: { data_dir: dataDir, cache_dir: config.paths.cacheDir } }));
  const c = { owner: 'bench' };
  try {
    const w = await svc.create(c, { name: 'bench-net', allow_internet: true });
    const id = w.workspace_id;
    const creates = await createToExec(svc, c, 'bench-net-c', 3);
    fig.createMs = medianOf(creates);
    record({ metric: 'create -> first exec, user mode, template restore (median of 3)', value: fig.createMs, unit: 'ms',
      note: `runs ${creates.map((x) => x.toFixed(0)).join('/')}; no pool` });

    fig.h2g = await hostToGuest(svc, c, id);
    record({ metric: `host->guest TCP via port forward, user mode (${MIB} MiB)`, value: fig.h2g, unit: 'MB/s' });

    // Live since issue 15: the egress proxy's policy file is rewritten.
    const callMs: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now();
      const p = await svc.networkPolicy(c, { workspace_id: id, allow_internet: i % 2 === 1 });
      callMs.push(performance.now() - t0);
      if (p.applied !== 'live') throw new Error(`user-mode policy change ${i} was ${p.applied}`);
    }
    fig.policyMs = [...callMs].sort((a, b) => a - b)[5]!;
    record({ metric: 'network policy change on a running workspace, user mode, live (median)', value: fig.policyMs, unit: 'ms',
      note: 'network_policy call, 10 changes; the policy file the egress proxy reads' });
    await svc.destroy(c, { workspace_id: id });
  } finally {
    await svc.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
  return fig;
}

const SINK_PORT = 9100;

/** A discarding sink on a "public" address in the topology's inet namespace, routed from the islet namespace. */
async function sinkWorld(topo: Awaited<ReturnType<typeof makeTopology>>): Promise<void> {
  await topo.exec(topo.inet, ['ip', 'addr', 'add', `${PUBLIC}/32`, 'dev', 'vi0']);
  await topo.exec(topo.islet, ['ip', 'route', 'add', `${PUBLIC}/32`, 'via', SITE_A, 'dev', 'vo0']);
  await topo.peer(topo.inet, ['sink', PUBLIC, String(SINK_PORT)]);
}

/**
 * User-mode guest->outside TCP, direct slirp (restrict=off, the path before
 * issue 15) against the egress proxy, in one VM and one run. Needs root: the
 * destination is a sink on a "public" address inside a test namespace (the
 * proxy refuses every host address). Returns the direct figure (the baseline
 * for bridge mode), or 0 when skipped.
 */
async function benchEgressNet(config: Config, record: (r: Row) => void): Promise<number> {
  const why = await netnsUnavailable();
  if (why) {
    console.log(`user-mode egress figures skipped: ${why}`);
    return 0;
  }
  const topo = await makeTopology(`be${process.pid}`);
  try {
    await sinkWorld(topo);
    const r = await topo.exec(topo.islet, [process.execPath, path.resolve('dist/bench/net-egress-child.js'), config.paths.cacheDir, PUBLIC, String(SINK_PORT)],
      { timeoutMs: 900_000, allowFailure: true });
    if (r.code !== 0) throw new Error(`egress bench child exited ${r.code}: ${r.stderr.slice(-2000)}`);
    const got = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { direct: number[]; proxy: number[] };
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const direct = med(got.direct);
    const proxy = med(got.proxy);
    record({ metric: `guest->outside TCP, user mode, direct slirp (${MIB} MiB, median of 3)`, value: direct, unit: 'MB/s',
      note: 'restrict=off: no longer offered, the baseline' });
    record({ metric: `guest->outside TCP, user mode, through the egress proxy (${MIB} MiB, median of 3)`, value: proxy, unit: 'MB/s',
      baseline: direct, ratio: proxy / direct, note: `CONNECT via guestfwd + islet-egress; runs direct ${got.direct.map((x) => x.toFixed(0)).join('/')}, proxy ${got.proxy.map((x) => x.toFixed(0)).join('/')}` });
    return direct;
  } finally {
    await topo.close();
  }
}

/** Bridge mode needs root and its own network namespace: a child process measures inside one and prints its rows as JSON. */
async function benchBridgeNet(config: Config, record: (r: Row) => void, user: UserFigures): Promise<void> {
  const why = await netnsUnavailable();
  if (why) {
    console.log(`bridge-mode network figures (and the bridge-mode create) skipped: ${why}`);
    return;
  }
  const topo = await makeTopology(`bn${process.pid}`);
  try {
    await sinkWorld(topo);
    const r = await topo.exec(topo.islet, [process.execPath, path.resolve('dist/bench/net-bridge-child.js'), config.paths.cacheDir, PUBLIC, String(SINK_PORT)],
      { timeoutMs: 900_000, allowFailure: true });
    if (r.code !== 0) throw new Error(`bridge bench child exited ${r.code}: ${r.stderr.slice(-2000)}`);
    const got = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { g2h: number; h2g: number; applyMs: number[]; callMs: number[]; createMs: number[] };
    const create = medianOf(got.createMs);
    record({ metric: 'create -> first exec, bridge mode, template restore (median of 3)', value: create, unit: 'ms', baseline: user.createMs,
      ratio: create / user.createMs, note: `runs ${got.createMs.map((x) => x.toFixed(0)).join('/')}; restore + re-address to the lease + TAP on the bridge; baseline: user mode, same run` });
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    record({ metric: `guest->outside TCP throughput, bridge mode (${MIB} MiB)`, value: got.g2h, unit: 'MB/s', baseline: user.g2h,
      ratio: got.g2h / user.g2h, note: 'guest-timed, to a sink in a test namespace; baseline: user mode direct slirp' });
    record({ metric: `host->guest TCP via port forward, bridge (${MIB} MiB)`, value: got.h2g, unit: 'MB/s', baseline: user.h2g,
      ratio: got.h2g / user.h2g, note: 'nft DNAT; baseline: user mode hostfwd' });
    const call = med(got.callMs);
    record({ metric: 'network policy change, bridge mode, live (median)', value: call, unit: 'ms', baseline: user.policyMs,
      ratio: call / user.policyMs, note: `network_policy call, ${got.callMs.length} changes; nft rewrite alone ${med(got.applyMs).toFixed(1)} ms; baseline: user mode (live)` });
  } finally {
    await topo.close();
  }
}
