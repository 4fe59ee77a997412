// The bridge-mode half of bench/net.ts, run by it inside a network namespace
// of its own (ip netns exec): a service in bridge mode on a throwaway data
// dir, one workspace with internet allowed. Measures guest->host TCP (a guest
// sender to a listener on the gateway address), host->guest TCP through a
// port forward (nft DNAT from 127.0.0.1), and live policy changes
// (network_policy wall time, and the nft rewrite inside it). Prints one JSON
// line; the parent records it beside the user-mode figures.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveConfig } from '../src/core/config.js';
import { WorkspaceService } from '../src/service/workspaces.js';
import { BYTES, guestReceive, guestSend, sink, source } from './net.js';

const POLICY_CHANGES = 10;
const cacheDir = process.argv[2]!;
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'islet-bench-bridge-'));
const runDir = mkdtempSync('/tmp/islet-bb-');
const svc = await WorkspaceService.open(resolveConfig({
  storage: { data_dir: dataDir, cache_dir: cacheDir, run_dir: runDir }, network: { mode: 'bridge' },
}));
const c = { owner: 'bench' };
try {
  const w = await svc.create(c, { name: 'bench-bridge', allow_internet: true });
  const id = w.workspace_id;
  const gw = (await svc.workspaceIp(c, { workspace_id: id })).gateway!;

  const s = await sink(gw);
  const sent = svc.exec(c, { workspace_id: id, command: guestSend(s.port, gw), timeout_ms: 300_000 });
  const got = await s.done;
  await sent.catch(() => undefined);
  s.close();
  if (got.bytes < BYTES) throw new Error(`guest->host: received ${got.bytes} of ${BYTES} bytes`);
  const g2h = got.bytes / 1e6 / (got.ms / 1000);

  await svc.exec(c, { workspace_id: id, command: `(${guestReceive(9000, '/tmp/recv')} &)
    for i in $(seq 100); do grep -q ':2328 00000000:0000 0A' /proc/net/tcp && exit 0; sleep 0.05; done; exit 1` });
  const f = await svc.portForward(c, { workspace_id: id, guest_port: 9000 });
  const ms = await source(f.host_port);
  const n = (await svc.exec(c, { workspace_id: id, command: 'sleep 0.2; cat /tmp/recv' })).stdout.trim();
  if (n !== String(BYTES)) throw new Error(`host->guest: the guest received ${n} of ${BYTES} bytes`);
  const h2g = BYTES / 1e6 / (ms / 1000);

  const applyMs: number[] = [];
  const callMs: number[] = [];
  for (let i = 0; i < POLICY_CHANGES; i++) {
    const t0 = performance.now();
    const p = await svc.networkPolicy(c, { workspace_id: id, allow_inter_vm: i % 2 === 0, allowed_ports: i % 2 === 0 ? [8080] : [] });
    callMs.push(performance.now() - t0);
    if (p.applied !== 'live' || p.apply_ms === null) throw new Error(`policy change ${i} was ${p.applied}`);
    applyMs.push(p.apply_ms);
  }
  await svc.destroy(c, { workspace_id: id });
  process.stdout.write(`${JSON.stringify({ g2h, h2g, applyMs, callMs })}\n`);
} finally {
  await svc.close();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(runDir, { recursive: true, force: true });
}
