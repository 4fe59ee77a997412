// The bridge-mode half of bench/net.ts, run by it inside a network namespace
// of its own (ip netns exec): a service in bridge mode on a throwaway data
// dir, one workspace with internet allowed. Measures guest->outside TCP (a
// guest sender to a sink the parent put in its inet namespace), host->guest TCP through a
// port forward (nft DNAT from 127.0.0.1), and live policy changes
// (network_policy wall time, and the nft rewrite inside it), and
// workspace_create to first exec (a template restore, re-addressed to the
// workspace's lease; the first create built the template if the cache had
// none). Prints one JSON line; the parent records it beside the user-mode figures.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveConfig } from '../src/core/config.js';
import { WorkspaceService } from '../src/service/workspaces.js';
import { createToExec, hostToGuest, sentMbps, timedSend } from './net.js';

const POLICY_CHANGES = 10;
const CREATES = 3;
const [cacheDir, dest, destPort] = process.argv.slice(2) as [string, string, string];
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'islet-bench-bridge-'));
const runDir = mkdtempSync('/tmp/islet-bb-');
const svc = await WorkspaceService.open(resolveConfig({
  storage: { data_dir: dataDir, cache_dir: cacheDir, run_dir: runDir }, network: { mode: 'bridge' },
}));
const c = { owner: 'bench' };
try {
  const w = await svc.create(c, { name: 'bench-bridge', allow_internet: true });
  const id = w.workspace_id;
  const createMs = await createToExec(svc, c, 'bench-bridge-c', CREATES);
  // Guests never reach the host (issue 15): the sender goes to a sink outside, in the parent's test namespace.
  const sent = await svc.exec(c, { workspace_id: id, command: timedSend(`${dest}:${destPort}`), timeout_ms: 300_000 });
  if (sent.exit_code !== 0) throw new Error(`guest send failed: ${sent.stderr}`);
  const g2h = sentMbps(sent.stdout);
  const h2g = await hostToGuest(svc, c, id);

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
  process.stdout.write(`${JSON.stringify({ g2h, h2g, applyMs, callMs, createMs })}\n`);
} finally {
  await svc.close();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(runDir, { recursive: true, force: true });
}
