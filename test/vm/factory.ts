// The VM test factory (Firecracker's microvm_factory is the model): one per
// test file. It makes a private data dir (the image cache stays the user's,
// so the built artifacts are used), opens services and boots machines on
// it, and records everything. When a test fails it prints, for every VM of
// the data dir, the console tail and QEMU's stderr. At the end, pass or
// fail, it destroys every workspace and fork (forks first; one failed
// destroy does not stop the others), every machine, and deletes the dir.
import { existsSync, mkdtempSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach } from 'node:test';
import { type Config, loadConfig, resolveConfig } from '../../src/core/config.js';
import { IsletError } from '../../src/core/errors.js';
import type { Progress } from '../../src/core/progress.js';
import type { Machine } from '../../src/service/machine.js';
import { type BootRequest, Runtime } from '../../src/service/runtime.js';
import { WorkspaceService } from '../../src/service/workspaces.js';

type Overrides = Parameters<typeof resolveConfig>[0];

export interface VmEnv {
  /** The private data dir (deleted at the end). */
  dir: string;
  config: Config;
  /** Opens a WorkspaceService on the data dir; whatever it holds at the end is destroyed. */
  open(o?: { pool?: boolean; progress?: Progress }): Promise<WorkspaceService>;
  /** The Runtime on the data dir (opened once). */
  rt(): Promise<Runtime>;
  /** Boots a throwaway VM (Runtime.boot); destroyed at the end. */
  boot(req?: BootRequest): Promise<Machine>;
  /** The console and QEMU stderr tails of every VM of the data dir, for a failure message. */
  evidence(): Promise<string>;
}

const ADMIN = { owner: 'vm-test-factory', admin: true };

async function tail(file: string, lines: number): Promise<string> {
  return (await readFile(file, 'utf8').catch(() => '')).trimEnd().split('\n').slice(-lines).join('\n');
}

/** Destroys every workspace of the service, forks before their sources; returns the errors of those that would not go. */
export async function destroyAll(svc: WorkspaceService): Promise<string[]> {
  let left = await svc.list(ADMIN);
  const errors = new Map<string, string>();
  // A source is refused (SNAPSHOT_IN_USE) while a fork of it exists: retry until a pass makes no progress.
  while (left.length) {
    const before = left.length;
    for (const w of left) {
      await svc.destroy(ADMIN, { workspace_id: w.workspace_id }).then(
        () => errors.delete(w.workspace_id),
        (e: unknown) => errors.set(w.workspace_id, e instanceof IsletError ? `${e.code}: ${e.message}` : String(e)),
      );
    }
    left = await svc.list(ADMIN);
    if (left.length === before) break;
  }
  return [...errors].map(([id, e]) => `${id}: ${e}`);
}

export function vmEnv(name: string, overrides: Overrides = {}): VmEnv {
  const dir = mkdtempSync(path.join(os.tmpdir(), `islet-${name}-`));
  const o = overrides as Record<string, Record<string, unknown>>;
  const config = resolveConfig({ ...o, storage: { data_dir: dir, cache_dir: loadConfig().paths.cacheDir, ...o.storage } } as Overrides);
  const services: WorkspaceService[] = [];
  const machines: Machine[] = [];
  let rt: Promise<Runtime> | undefined;

  const evidence = async (): Promise<string> => {
    const vmRoot = path.join(config.paths.runDir, 'vm');
    const out: string[] = [];
    for (const id of await readdir(vmRoot).catch(() => [] as string[])) {
      const d = path.join(vmRoot, id);
      out.push(`--- VM ${id}: console ---\n${await tail(path.join(d, 'console.log'), 40)}`);
      const err = await tail(path.join(d, 'qemu.stderr'), 20);
      if (err) out.push(`--- VM ${id}: QEMU stderr ---\n${err}`);
    }
    return out.join('\n');
  };

  afterEach(async (t) => {
    if ((t as { passed?: boolean }).passed !== false) return; // node >= 20.12 tells a hook whether its test passed
    process.stderr.write(`\n[${name}] "${t.name}" failed; evidence:\n${await evidence()}\n`);
  });

  after(async () => {
    const errors: string[] = [];
    await Promise.allSettled(machines.map((m) => m.destroy({ graceMs: 1_000 })));
    let open = services.filter((s) => !s.closed);
    // Every service was closed by the test: open one more to find what is left (reconcile re-attaches it).
    if (!open.length && existsSync(config.paths.stateDb)) open = [await WorkspaceService.open(config).then((s) => (services.push(s), s))];
    for (const s of open) errors.push(...await destroyAll(s).catch((e: unknown) => [String(e)]));
    for (const s of services) await s.close().catch((e: unknown) => errors.push(String(e)));
    await rm(dir, { recursive: true, force: true });
    if (errors.length) throw new Error(`[${name}] cleanup could not destroy:\n${errors.join('\n')}`);
  });

  return {
    dir,
    config,
    async open(oo = {}) {
      const s = await WorkspaceService.open(config, { pool: oo.pool ?? false, progress: oo.progress });
      services.push(s);
      return s;
    },
    rt: () => (rt ??= Runtime.open(config)),
    async boot(req = {}) {
      const m = await (await (rt ??= Runtime.open(config))).boot(req);
      machines.push(m);
      return m;
    },
    evidence,
  };
}
