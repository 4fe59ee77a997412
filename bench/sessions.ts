// Agent sessions, create → ready (OpenCode answers /global/health through
// the session's URL with its password), two ways in one run:
// - template path (the default): restored from the image's session template,
//   in which OpenCode already runs; the template is built first if the cache
//   has none (its one-time cost is printed, not counted per session);
// - cold path (`--sessions-cold`, off by default: it takes 6+ minutes under
//   TCG): the same create with session templates off, so OpenCode starts from
//   nothing in the session's VM (the VM itself still comes from the image's
//   plain template, as any workspace's).
// Image: agent-ready (BENCH_SESSION_IMAGE to change it); skipped if not built.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Config, resolveConfig } from '../src/core/config.js';
import { findArtifacts } from '../src/images/index.js';
import type { SessionInfo } from '../src/service/sessions.js';
import { WorkspaceService } from '../src/service/workspaces.js';
import { twoBranchRepo } from '../test/fixtures/git-repo.js';
import type { Row } from './mcp.js';

const c = { owner: 'bench' };
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Where a session's time goes, from the service's own progress lines: the
 * session's phases ("created in N ms (fetch a ms, ...)") and its workspace's
 * restore ("restored from template in N ms (restore a ms, identity b ms, ...)").
 */
const restores: number[] = [];
const phases = new Map<string, number[]>();
/** Per session, in order: restored from the session template (its create configured the template's front) or not (OpenCode cold). */
const warmed: boolean[] = [];
const progress = (m: string) => {
  const r = /restored from template in (\d+) ms(?: \((.*)\))?/.exec(m);
  const c = /: created in (\d+) ms \((.*)\)/.exec(m);
  if (r) restores.push(Number(r[1]));
  if (c) warmed.push(/(^|, )front \d+ ms/.test(c[2]!));
  for (const [prefix, list] of [['restore: ', r?.[2]], ['', c?.[2]]] as const) {
    for (const part of list?.split(', ') ?? []) {
      const p = /^(.+) (\d+) ms$/.exec(part);
      if (p) phases.set(prefix + p[1]!, [...(phases.get(prefix + p[1]!) ?? []), Number(p[2])]);
    }
  }
};

async function withService<T>(config: Config, template: boolean, fn: (svc: WorkspaceService, repo: string) => Promise<T>): Promise<T> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'islet-bench-sessions-'));
  // The shape the OpenCode acceptance test uses, so both find the same session template in the shared cache.
  const cfg = resolveConfig({
    storage: { data_dir: dataDir, cache_dir: config.paths.cacheDir }, resources: { max_memory_mb: 2048 }, network: { mode: 'user' },
    vm: { kernel: config.vm.kernel }, pool: { template: true },
  });
  const svc = await WorkspaceService.open(cfg, { sessions: { template }, progress });
  try {
    return await fn(svc, await twoBranchRepo(path.join(cfg.paths.transferDir, 'repos')));
  } finally {
    await svc.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** ms from the create call to ready, and from ready to OpenCode's first answer in the session's directory (GET /path). */
async function createToReady(svc: WorkspaceService, repo: string, branch: string): Promise<{ ready: number; path: number; call: number }> {
  const t0 = performance.now();
  const s = await svc.sessionCreate(c, { repoUrl: repo, branch });
  const call = performance.now() - t0;
  let cur: SessionInfo = s;
  try {
    while (cur.state === 'creating') {
      await new Promise((r) => setTimeout(r, 250));
      cur = await svc.sessionGet(c, { sessionId: s.sessionId });
    }
    if (cur.state !== 'ready') throw new Error(`session ${s.sessionId} ${cur.state}: ${cur.error}`);
    const ready = performance.now() - t0;
    const auth = `Basic ${Buffer.from(`opencode:${cur.password}`).toString('base64')}`;
    const t1 = performance.now();
    const res = await fetch(`${cur.url}/path`, { headers: { authorization: auth }, signal: AbortSignal.timeout(900_000) });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`GET /path: ${res.status}`);
    return { ready, path: performance.now() - t1, call };
  } finally {
    await svc.sessionDestroy(c, { sessionId: s.sessionId });
  }
}

export async function benchSessions(config: Config, n: number, cold: boolean, record: (r: Row) => void): Promise<void> {
  const image = process.env.BENCH_SESSION_IMAGE ?? 'agent-ready';
  if (!(await findArtifacts(config, { image })).image) {
    console.log(`sessions: skipped, the ${image} image is not built (islet image build ${image})`);
    return;
  }
  let coldMs: number | undefined;
  if (cold) {
    await withService(config, false, async (svc, repo) => {
      // The cold path's VM comes from the image's plain template: built here first, so only OpenCode's start is timed.
      const plain = await svc.create(c, { name: 'bench-plain-template', image, memory_mb: 1024 });
      await svc.destroy(c, { workspace_id: plain.workspace_id });
      const r = await createToReady(svc, repo, 'main');
      coldMs = r.ready;
      record({ metric: 'session create → ready, cold OpenCode start', value: r.ready / 1000, unit: 's', note: `(create call ${(r.call / 1000).toFixed(1)} s; first GET /path ${(r.path / 1000).toFixed(1)} s)` });
    });
  }
  await withService(config, true, async (svc, repo) => {
    const t0 = performance.now();
    const t = await svc.sessionPrepareTemplate(image);
    const took = performance.now() - t0;
    record({ metric: 'session template (one-time, per image and shape)', value: took / 1000, unit: 's',
      note: took > 60_000 ? `built now (${path.basename(t.dir)})` : `found in the cache (${path.basename(t.dir)}, built in ${(t.builtMs / 1000).toFixed(0)} s)` });
    const ready: number[] = [];
    const paths: number[] = [];
    const calls: number[] = [];
    restores.length = 0;
    phases.clear();
    warmed.length = 0;
    for (let i = 0; i < n; i++) {
      const r = await createToReady(svc, repo, i % 2 ? 'feature' : 'main');
      ready.push(r.ready);
      paths.push(r.path);
      calls.push(r.call);
    }
    const med = median(ready) / 1000;
    record({
      metric: `session create → ready, session template (median of ${n})`, value: med, unit: 's',
      ...(coldMs !== undefined ? { baseline: coldMs / 1000, ratio: med / (coldMs / 1000) } : {}),
      note: `(each: ${ready.map((x) => (x / 1000).toFixed(1)).join(', ')} s)${coldMs === undefined ? '; cold path not run here: --sessions-cold' : ''}`,
    });
    // The template's key follows the shared cache's current kernel, initramfs and rootfs: when another process
    // changes one (a new agent build), a create finds no template, starts cold and builds it in the background.
    const cold = warmed.flatMap((w, i) => (w ? [] : [i + 1]));
    if (cold.length) {
      const warmReady = ready.filter((_, i) => warmed[i]);
      record({ metric: '  of which restored from the template (median)', value: warmReady.length ? median(warmReady) / 1000 : NaN, unit: 's',
        note: `session(s) ${cold.join(', ')} found no template (its key changed under this run: the shared cache's artifacts changed) and started OpenCode cold` });
    }
    record({ metric: '  of which: the create call (median)', value: median(calls) / 1000, unit: 's', note: `(each: ${calls.map((x) => (x / 1000).toFixed(1)).join(', ')} s; clone, restore, checkout, front config)` });
    if (restores.length) {
      record({ metric: '  of which: restore + identity reset + login key (median)', value: median(restores) / 1000, unit: 's',
        note: `(each: ${restores.map((x) => (x / 1000).toFixed(1)).join(', ')} s)` });
    }
    // The phases, in the order they run; checkout, front and forward run at once, as do identity and ssh key.
    for (const [name, xs] of [...phases].sort(([a], [b]) => Number(a.startsWith('restore: ')) - Number(b.startsWith('restore: ')))) {
      record({ metric: `    phase: ${name} (median)`, value: median(xs) / 1000, unit: 's', note: `(each: ${xs.map((x) => (x / 1000).toFixed(2)).join(', ')} s)` });
    }
    const after = ready.map((r, i) => r - calls[i]!);
    record({ metric: '  of which: create call → ready (median)', value: median(after) / 1000, unit: 's',
      note: `(each: ${after.map((x) => (x / 1000).toFixed(1)).join(', ')} s; the first /global/health through the front, which the template started)` });
    record({ metric: 'first GET /path in the session directory (median)', value: median(paths) / 1000, unit: 's', note: `(each: ${paths.map((x) => (x / 1000).toFixed(1)).join(', ')} s)` });
  });
}
