// User mode's egress figures, run by bench/net.ts inside the "islet"
// namespace of a test topology (ip netns exec) so the destination is an
// outside address (203.0.113.10 in the "inet" namespace, a sink) and never
// the host. One VM whose slirp has restrict=off AND the egress guestfwd, so
// the same guest measures both paths in the same run: direct slirp (what
// allow_internet meant before issue 15) and through islet-egress (CONNECT).
// The guest times each send from connect to the sink's close. Prints one
// JSON line.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveConfig } from '../src/core/config.js';
import { EGRESS_PROXY, writeEgressPolicy } from '../src/net/egress.js';
import { ensureEgressHelper } from '../src/net/egress-build.js';
import { Runtime } from '../src/service/runtime.js';
import { silent } from '../src/core/progress.js';
import { sentMbps, timedSend } from './net.js';

const [cacheDir, dest, portArg] = process.argv.slice(2) as [string, string, string];
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'islet-bench-egress-'));
const runDir = mkdtempSync('/tmp/islet-be-');
const config = resolveConfig({ storage: { data_dir: dataDir, cache_dir: cacheDir, run_dir: runDir } });

const rt = await Runtime.open(config, { progress: silent });
try {
  const helper = await ensureEgressHelper(config, silent);
  const id = 'bench-egress';
  writeEgressPolicy(path.join(runDir, 'vm', id), { internet: true, allowedDomains: [] }, config);
  const m = await rt.boot({ id, net: { restrict: false, egressHelper: helper } });
  try {
    const mbps = async (cmd: string) => {
      const r = await m.exec({ shell: cmd, timeoutMs: 300_000 });
      if (r.exitCode !== 0) throw new Error(`guest send failed: ${r.stderr.toString()}`);
      return sentMbps(r.stdout.toString());
    };
    const target = `${dest}:${portArg}`;
    const direct: number[] = [];
    const proxy: number[] = [];
    for (let i = 0; i < 3; i++) { // interleaved, so load from other work hits both alike
      direct.push(await mbps(timedSend(target)));
      proxy.push(await mbps(timedSend(`${EGRESS_PROXY.address}:${EGRESS_PROXY.port}`, target)));
    }
    process.stdout.write(`${JSON.stringify({ direct, proxy })}\n`);
  } finally {
    await m.destroy();
  }
} finally {
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(runDir, { recursive: true, force: true });
}
