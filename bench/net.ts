// Network figures (user-mode networking), through the WorkspaceService on a
// throwaway data dir: guest->host TCP throughput (a guest sender to a host
// listener via 10.0.2.2, internet allowed), host->guest throughput through a
// port forward, and the time to apply a network policy change to a
// running workspace (the restart path). Baseline for the policy change: a
// plain workspace_start of the same workspace.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { resolveConfig, type Config } from '../src/core/config.js';
import { WorkspaceService } from '../src/service/workspaces.js';
import type { Row } from './mcp.js';

const MIB = 64;
const BYTES = MIB << 20;

// The guest side is perl (perl-base is in the image) with 1 MiB syscalls:
// busybox nc moves a few KiB per syscall, which under TCG measures nc, not
// the network (~3 MB/s).
const guestSend = (port: number) => `perl -e 'use IO::Socket::INET; my $s = IO::Socket::INET->new(PeerAddr => "10.0.2.2:${port}") or die "$!";
  my $b = "\\0" x (1 << 20); for (1..${MIB}) { my $o = 0; while ($o < length $b) { my $n = syswrite($s, $b, length($b) - $o, $o); die "$!" unless defined $n; $o += $n } } close $s'`;
const guestReceive = (port: number, out: string) => `perl -e 'use IO::Socket::INET; my $l = IO::Socket::INET->new(LocalPort => ${port}, Listen => 1, ReuseAddr => 1) or die "$!";
  my $c = $l->accept; my ($n, $b) = (0, ""); while ((my $r = sysread($c, $b, 1 << 20)) > 0) { $n += $r } print "$n\\n"' > ${out}`;

/** Accepts one connection and resolves with the bytes received and the ms from accept to the client's close. */
function sink(): Promise<{ port: number; done: Promise<{ bytes: number; ms: number }>; close: () => void }> {
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
    srv.listen(0, '127.0.0.1', () => resolveListen({ port: (srv.address() as net.AddressInfo).port, done, close: () => srv.close() }));
  });
}

/** Connects to 127.0.0.1:port, writes BYTES, and resolves when the peer closes (it got everything). */
function source(port: number): Promise<number> {
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

export async function benchNet(config: Config, record: (r: Row) => void): Promise<void> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'islet-bench-net-'));
  const svc = await WorkspaceService.open(resolveConfig({ storage: { data_dir: dataDir, cache_dir: config.paths.cacheDir } }));
  const c = { owner: 'bench' };
  try {
    const w = await svc.create(c, { name: 'bench-net', allow_internet: true });
    const id = w.workspace_id;

    const s = await sink();
    const sent = svc.exec(c, { workspace_id: id, command: guestSend(s.port), timeout_ms: 300_000 });
    const got = await s.done;
    await sent.catch(() => undefined); // the sender may see the reset after the sink has everything
    s.close();
    if (got.bytes < BYTES) throw new Error(`guest->host: received ${got.bytes} of ${BYTES} bytes`);
    record({ metric: `guest->host TCP throughput, user mode (${MIB} MiB)`, value: got.bytes / 1e6 / (got.ms / 1000), unit: 'MB/s' });

    // Host -> guest through a port forward: the guest receiver exits at EOF, which closes the host's socket.
    await svc.exec(c, { workspace_id: id, command: `(${guestReceive(9000, '/tmp/recv')} &)
      for i in $(seq 100); do grep -q ':2328 00000000:0000 0A' /proc/net/tcp && exit 0; sleep 0.05; done; exit 1` });
    const f = await svc.portForward(c, { workspace_id: id, guest_port: 9000 });
    const ms = await source(f.host_port);
    const n = (await svc.exec(c, { workspace_id: id, command: 'sleep 0.2; cat /tmp/recv' })).stdout.trim();
    if (n !== String(BYTES)) throw new Error(`host->guest: the guest received ${n} of ${BYTES} bytes`);
    record({ metric: `host->guest TCP via port forward (${MIB} MiB)`, value: BYTES / 1e6 / (ms / 1000), unit: 'MB/s' });

    const p = await svc.networkPolicy(c, { workspace_id: id, allow_internet: false, restart: true });
    await svc.stop(c, { workspace_id: id });
    const t0 = performance.now();
    await svc.start(c, { workspace_id: id });
    const start = performance.now() - t0;
    record({ metric: 'network policy change on a running workspace', value: p.restart_ms ?? 0, unit: 'ms', baseline: start,
      ratio: (p.restart_ms ?? 0) / start, note: 'restart path; baseline: workspace_start' });
    await svc.destroy(c, { workspace_id: id });
  } finally {
    await svc.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
