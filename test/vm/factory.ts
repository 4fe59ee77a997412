// The VM test factory (Firecracker's microvm_factory is the model): one per
// test file. It makes a private data dir (the image cache stays the user's,
// so the built artifacts are used) and a config file for it, opens services
// and boots machines on it, and records everything, including the child
// processes (CLI, `islet serve`, a daemon) a test starts on that config.
// When a test fails it prints, for every VM of the data dir, the console tail
// and QEMU's stderr, the daemon log, and what the test noted (a server's
// stderr). At the end, pass or fail: the children are ended and the daemon
// stopped (so the data dir's lock is free), every workspace and fork is
// destroyed (forks first; one failed destroy does not stop the others), every
// machine too, a QEMU still running on the private run dir is killed and
// reported, and the dirs are deleted.
import { type ChildProcess, spawn, type SpawnOptions, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, afterEach } from 'node:test';
import { stringify } from 'smol-toml';
import { type Config, loadConfig, resolveConfig } from '../../src/core/config.js';
import type { Progress } from '../../src/core/progress.js';
import { pidAlive } from '../../src/host/pid.js';
import type { Machine } from '../../src/service/machine.js';
import { type BootRequest, Runtime } from '../../src/service/runtime.js';
import { WorkspaceService } from '../../src/service/workspaces.js';
import type { SessionOptions } from '../../src/service/sessions.js';
import { daemonPid } from '../../src/surfaces/daemon/connect.js';
import { daemonPaths } from '../../src/surfaces/daemon/paths.js';
import { stopDaemon } from './daemon-stop.js';
import { destroyAll } from './destroy-all.js';
import { qemuProcesses } from './procs.js';

export { destroyAll } from './destroy-all.js';

type Overrides = Parameters<typeof resolveConfig>[0];

export interface VmEnv {
  /** The private data dir (deleted at the end). */
  dir: string;
  config: Config;
  /** Opens a WorkspaceService on the data dir; whatever it holds at the end is destroyed. */
  open(o?: { pool?: boolean; progress?: Progress; sessions?: SessionOptions }): Promise<WorkspaceService>;
  /** The Runtime on the data dir (opened once). */
  rt(): Promise<Runtime>;
  /** Boots a throwaway VM (Runtime.boot); destroyed at the end. */
  boot(req?: BootRequest): Promise<Machine>;
  /** The console and QEMU stderr tails of every VM of the data dir, the daemon log and the notes, for a failure message. */
  evidence(): Promise<string>;
  /** A TOML file holding this env's config: pass it to a child with --config (or use childEnv). */
  cfgFile: string;
  /** The environment for a child process: ISLET_CONFIG names cfgFile, so a CLI run without --config uses this data dir. */
  childEnv(extra?: Record<string, string>): NodeJS.ProcessEnv;
  /** Spawns a child with childEnv() (unless o.env says otherwise) and tracks it. */
  spawn(cmd: string, args: string[], o?: SpawnOptions): ChildProcess;
  /** Records a process started elsewhere (a ChildProcess, a StdioClientTransport): ended at the end if still alive. */
  track<T extends { readonly pid?: number | null | undefined }>(p: T): T;
  /** Adds a section to the evidence of a failed test, e.g. a server's stderr. */
  note(label: string, text: () => string | Promise<string>): void;
  /** Runs the leftover cleanup under a command prefix (e.g. ip netns exec NS): where the test's islet ran. */
  cleanupUnder(prefix: string[]): void;
  /** The teardown, now (then never again): for a test whose own fixtures (a network namespace) must outlive it. */
  cleanup(): Promise<void>;
}

async function tail(file: string, lines: number): Promise<string> {
  return (await readFile(file, 'utf8').catch(() => '')).trimEnd().split('\n').slice(-lines).join('\n');
}

/** SIGTERM, a grace period, then SIGKILL; true when the pid was alive. */
async function end(pid: number, graceMs: number): Promise<boolean> {
  if (!pidAlive(pid)) return false;
  try { process.kill(pid, 'SIGTERM'); } catch { return false; }
  for (let t = 0; t < graceMs && pidAlive(pid); t += 100) await delay(100);
  if (pidAlive(pid)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone meanwhile */ }
  return true;
}

/**
 * Tears down envs now, one after the other (a failure does not skip the
 * rest), then closes what they ran in: for a test whose islet runs in a
 * network namespace, which must outlive the cleanup done inside it.
 */
export async function cleanupBefore(envs: VmEnv[], close: () => Promise<unknown>): Promise<void> {
  const errors: unknown[] = [];
  for (const e of envs) await e.cleanup().catch((x: unknown) => errors.push(x));
  await close();
  if (errors.length) throw new Error(errors.map(String).join('\n'));
}

export function vmEnv(name: string, overrides: Overrides = {}): VmEnv {
  const dir = mkdtempSync(path.join(os.tmpdir(), `islet-${name}-`));
  const o = overrides as Record<string, Record<string, unknown>>;
  // scripts/test.mjs pins the kernel the suite started with: a background custom-kernel build that
  // finishes mid-run must not switch kernels under a test (templates and pool VMs are keyed by kernel).
  const pinned = process.env.ISLET_TEST_KERNEL === 'custom' || process.env.ISLET_TEST_KERNEL === 'distro' ? { kernel: process.env.ISLET_TEST_KERNEL } : {};
  const raw = { ...o, vm: { ...pinned, ...o.vm }, storage: { data_dir: dir, cache_dir: loadConfig().paths.cacheDir, ...o.storage } };
  const config = resolveConfig(raw as Overrides);
  const cfgFile = path.join(dir, 'islet.toml');
  writeFileSync(cfgFile, stringify(raw));
  const services: WorkspaceService[] = [];
  const machines: Machine[] = [];
  const children: Array<{ readonly pid?: number | null | undefined }> = [];
  const notes: Array<[string, () => string | Promise<string>]> = [];
  let prefix: string[] | undefined;
  let rt: Promise<Runtime> | undefined;
  let done: Promise<void> | undefined;

  const evidence = async (): Promise<string> => {
    const vmRoot = path.join(config.paths.runDir, 'vm');
    const out: string[] = [];
    for (const id of await readdir(vmRoot).catch(() => [] as string[])) {
      const d = path.join(vmRoot, id);
      out.push(`--- VM ${id}: console ---\n${await tail(path.join(d, 'console.log'), 40)}`);
      const err = await tail(path.join(d, 'qemu.stderr'), 20);
      if (err) out.push(`--- VM ${id}: QEMU stderr ---\n${err}`);
    }
    const log = await tail(daemonPaths(config).log, 40);
    if (log) out.push(`--- daemon.log ---\n${log}`);
    for (const [label, text] of notes) out.push(`--- ${label} ---\n${await Promise.resolve().then(text).catch((e: unknown) => String(e))}`);
    return out.join('\n');
  };

  /** Whatever the data dir still holds goes: through the open services, or one opened for it (under the prefix if set). */
  const destroyLeftovers = async (): Promise<string[]> => {
    const open = services.filter((s) => !s.closed);
    if (open.length) return (await Promise.all(open.map((s) => destroyAll(s).catch((e: unknown) => [String(e)])))).flat();
    if (!existsSync(config.paths.stateDb)) return [];
    if (prefix) {
      const [cmd, ...args] = [...prefix, process.execPath, path.resolve('dist/test/fixtures/cleanup-child.js'), cfgFile];
      const r = spawnSync(cmd!, args, { encoding: 'utf8', timeout: 300_000 });
      return r.status === 0 ? [] : [`cleanup under ${prefix.join(' ')} exited ${r.status}: ${r.stdout}${r.stderr}`];
    }
    const s = await WorkspaceService.open(config);
    services.push(s);
    return destroyAll(s).catch((e: unknown) => [String(e)]);
  };

  const teardown = async (): Promise<void> => {
    const errors: string[] = [];
    await Promise.allSettled(machines.map((m) => m.destroy({ graceMs: 1_000 })));
    // The children end before the daemon: an `islet serve` front whose daemon
    // goes away starts a new one at once (stdio-bridge.ts). Then the daemon,
    // which holds the data dir's lock the cleanup below needs.
    for (const c of children) if (c.pid) await end(c.pid, 5_000);
    if (daemonPid(config)) stopDaemon(cfgFile);
    errors.push(...await destroyLeftovers());
    for (const s of services) await s.close().catch((e: unknown) => errors.push(String(e)));
    // A QEMU of this private run dir that outlived all of that is a leak: killed, and reported.
    let left = qemuProcesses(config.paths.runDir);
    for (let i = 0; i < 50 && left.length; i++) { await delay(100); left = qemuProcesses(config.paths.runDir); }
    for (const q of left) {
      errors.push(`QEMU of ${q.id} (pid ${q.pid}) was still running; killed`);
      await end(q.pid, 1_000);
    }
    await rm(dir, { recursive: true, force: true });
    if (config.paths.runDir !== loadConfig().paths.runDir) await rm(config.paths.runDir, { recursive: true, force: true });
    if (errors.length) throw new Error(`[${name}] cleanup could not destroy:\n${errors.join('\n')}`);
  };
  const cleanup = () => (done ??= teardown());

  afterEach(async (t) => {
    if ((t as { passed?: boolean }).passed !== false) return; // node >= 20.12 tells a hook whether its test passed
    process.stderr.write(`\n[${name}] "${t.name}" failed; evidence:\n${await evidence()}\n`);
  });
  after(cleanup, { timeout: 600_000 });

  const childEnv = (extra: Record<string, string> = {}) => ({ ...process.env, ISLET_CONFIG: cfgFile, ...extra });
  const track = <T extends { readonly pid?: number | null | undefined }>(p: T): T => (children.push(p), p);
  return {
    dir,
    config,
    async open(oo = {}) {
      const s = await WorkspaceService.open(config, { pool: oo.pool ?? false, progress: oo.progress, sessions: oo.sessions });
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
    cfgFile,
    childEnv,
    spawn: (cmd, args, so = {}) => track(spawn(cmd, args, { ...so, env: so.env ?? childEnv() })),
    track,
    note: (label, text) => { notes.push([label, text]); },
    cleanupUnder: (p) => { prefix = p; },
    cleanup,
  };
}
