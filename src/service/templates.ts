// Template snapshots: an image booted once per VM shape, saved, and restored
// for every new workspace of that shape instead of booting it. The guest RAM
// of the template VM lives in a file (memory-backend-file, share=on), so the
// saved state is only the device state (migration with x-ignore-shared) and a
// restore maps the file privately (share=off): nothing is copied at restore,
// and the pages no workspace writes stay one copy in the host page cache for
// all of them. The template's disk overlay (a few MB) is copied per workspace,
// so a workspace never depends on its template afterwards.
//
// A template is found by a key over everything the saved state depends on:
// the kernel, initramfs and root filesystem (their identity on disk), the
// QEMU version, and the whole QEMU argv shape (accelerator, CPU, memory,
// devices, network options), plus the disk size the guest grew its
// filesystem to. Any change gives another key, so a stale template is never
// used; it is rebuilt on first use and the stale one is pruned.
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { InternalError } from '../core/errors.js';
import { phase } from '../core/phases.js';
import type { Progress } from '../core/progress.js';
import { installGuestProxyEnv } from '../net/egress.js';
import { buildQemuArgv, type NetSpec } from '../vmm/argv.js';
import type { Machine } from './machine.js';
import type { Runtime } from './runtime.js';

export interface TemplateSpec {
  image: string;
  vcpus: number;
  memoryMb: number;
  diskGb: number;
  net: NetSpec | undefined;
}

export interface Template {
  dir: string;
  key: string;
  /** The guest RAM (sparse: only pages the guest touched are allocated). */
  mem: string;
  /** Device state (a migration stream without RAM). */
  state: string;
  /** The disk overlay as the template left it; copied for each workspace. */
  disk: string;
  spec: TemplateSpec;
  builtMs: number;
  /** The guest's /etc/environment holds islet's proxy settings (user mode): a restore need not check it. */
  proxyEnv: boolean;
}

/**
 * What a template does between its boot and its save, beyond the plain boot:
 * a session template starts OpenCode once (sessions-template.ts), so every
 * restore finds it loaded. `name` goes into the directory name, `key` into
 * the template key (anything the warm-up depends on: its steps, the files it
 * puts in the guest), so a changed warm-up never restores an old template.
 */
export interface TemplateWarmup {
  name: string;
  key: string;
  run(m: Machine, signal?: AbortSignal): Promise<void>;
}

interface Meta {
  key: string;
  spec: TemplateSpec;
  /** Identity of each input file when the template was built: a mismatch now means stale. */
  files: string[];
  built_at: string;
  build_ms: number;
  /** The warm-up's name (a session template); absent for a plain boot. */
  warm?: string;
  /** The proxy settings were written before the save. */
  proxy_env?: boolean;
}

/** Bumped when the layout or the save procedure changes: old templates stop matching (2: proxy settings written before the save). */
const FORMAT = 2;
/** Templates kept in the cache of each kind (plain, and each warm-up's), least recently used pruned first. */
export const KEEP_TEMPLATES = 8;
const SAVE_TIMEOUT_MS = 60_000;
const hex = (n: number) => randomBytes(n).toString('hex');

export async function fileId(f: string): Promise<string> {
  const s = await stat(f);
  return `${f}:${s.size}:${s.mtimeMs}:${s.ino}`;
}

export class Templates {
  private readonly building = new Map<string, Promise<Template>>();

  constructor(private readonly rt: Runtime, private readonly progress: Progress) {}

  /** <cache_dir>/templates: shared by every data dir that shares the cache, like the images. */
  get root(): string {
    return path.join(this.rt.config.paths.cacheDir, 'templates');
  }

  /** The key of a template for this shape under the current artifacts, QEMU and settings. */
  async key(spec: TemplateSpec, warm?: TemplateWarmup): Promise<{ key: string; files: string[] }> {
    const c = this.rt.config;
    const art = await this.rt.artifacts(spec.image);
    const { accel } = await this.rt.accel();
    const files = await Promise.all([art.vmlinux, art.initrd, art.rootfs].map(fileId));
    // Per-VM names and paths are placeholders (a TAP's name too); tsc_early_khz is left out (the host's, read at each boot).
    const net = spec.net?.kind === 'tap' ? { ...spec.net, ifname: 'template' } : spec.net;
    const argv = buildQemuArgv({
      id: 'template', dir: '/t', disk: '/t/disk.qcow2', kernel: art.vmlinux, initrd: art.initrd, vcpus: spec.vcpus, memoryMb: spec.memoryMb,
      accel, initMode: art.initMode, hostname: 'template', tcgTbSizeMb: c.vm.tcg_tb_size_mb, net, ramFile: { path: '/t/mem', shared: true },
    }, c.vm.qemu_binary);
    const parts = { FORMAT, qemu: await this.rt.qemuVersion(), kernelKey: art.kernelKey, files, argv, diskGb: spec.diskGb, ...(warm ? { warm: [warm.name, warm.key] } : {}) };
    return { key: createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 16), files };
  }

  private dirOf(image: string, key: string, warm?: TemplateWarmup): string {
    return path.join(this.root, warm ? `${image}-${warm.name}-${key}` : `${image}-${key}`);
  }

  /** The current template for this shape, if one was built; never a stale one. */
  async find(spec: TemplateSpec, warm?: TemplateWarmup): Promise<Template | undefined> {
    const { key } = await this.key(spec, warm);
    return this.load(this.dirOf(spec.image, key, warm), key);
  }

  private async load(dir: string, key: string): Promise<Template | undefined> {
    let meta: Meta;
    try {
      meta = JSON.parse(await readFile(path.join(dir, 'meta.json'), 'utf8')) as Meta;
    } catch {
      return undefined;
    }
    if (meta.key !== key) return undefined;
    const t: Template = { dir, key, mem: path.join(dir, 'mem'), state: path.join(dir, 'state'), disk: path.join(dir, 'disk.qcow2'), spec: meta.spec, builtMs: meta.build_ms,
      proxyEnv: meta.proxy_env === true };
    try {
      await Promise.all([t.mem, t.state, t.disk].map((f) => stat(f)));
    } catch {
      return undefined;
    }
    const now = new Date();
    await utimes(dir, now, now).catch(() => undefined); // last use, for pruning
    return t;
  }

  /** The template for this shape, built now (a cold boot plus a save) if there is none. Concurrent callers share one build. */
  async ensure(spec: TemplateSpec, signal?: AbortSignal, warm?: TemplateWarmup): Promise<Template> {
    const { key, files } = await this.key(spec, warm);
    const found = await this.load(this.dirOf(spec.image, key, warm), key);
    if (found) return found;
    let p = this.building.get(key);
    if (!p) {
      p = this.build(spec, key, files, signal, warm).finally(() => this.building.delete(key));
      this.building.set(key, p);
    }
    return p;
  }

  private async build(spec: TemplateSpec, key: string, files: string[], signal?: AbortSignal, warm?: TemplateWarmup): Promise<Template> {
    const final = this.dirOf(spec.image, key, warm);
    const tmp = path.join(this.root, `.build-${spec.image}-${key}-${hex(4)}`);
    await mkdir(tmp, { recursive: true, mode: 0o700 });
    this.progress(`building template ${path.basename(final)} (${spec.image}, ${spec.vcpus} vcpu, ${spec.memoryMb} MiB, ${spec.diskGb} GiB): one boot${warm ? ` and the ${warm.name} warm-up` : ''}`);
    const t0 = performance.now();
    let m: Machine | undefined;
    // Bridge mode: a TAP of the build's own (QEMU makes it, it goes with QEMU, it never joins the bridge); "islt-" is no workspace's prefix.
    const net = spec.net?.kind === 'tap' ? { ...spec.net, ifname: `islt-${hex(4)}` } : spec.net;
    try {
      m = await this.rt.boot({
        image: spec.image, vcpus: spec.vcpus, memoryMb: spec.memoryMb, diskBytes: spec.diskGb * 1024 ** 3, hostname: 'islet-template',
        net, disk: path.join(tmp, 'disk.qcow2'), createDisk: true, ramFile: { path: path.join(tmp, 'mem'), shared: true }, signal,
      });
      if (warm) await warm.run(m, signal);
      // User mode: the proxy settings every workspace gets go in once here, not by a synced write into each restore.
      const proxyEnv = spec.net !== undefined && spec.net.kind !== 'tap';
      if (proxyEnv) await installGuestProxyEnv(m.agent);
      // The shell and sync are then in the guest page cache of every restore: shared, and the first exec reads no disk.
      await m.exec({ argv: ['sh', '-c', 'sync'], timeoutMs: SAVE_TIMEOUT_MS }, { signal });
      await m.pauseToFile(path.join(tmp, 'state'), SAVE_TIMEOUT_MS, { ignoreShared: true });
      const buildMs = Math.round(performance.now() - t0);
      const meta: Meta = { key, spec, files, built_at: new Date().toISOString(), build_ms: buildMs, ...(warm ? { warm: warm.name } : {}), proxy_env: proxyEnv };
      await writeFile(path.join(tmp, 'meta.json'), JSON.stringify(meta, null, 2), { mode: 0o600 });
      // The RAM holds the guest's kernel RNG state as every copy starts with it: owner-only, like the directory.
      await Promise.all(['mem', 'state', 'disk.qcow2'].map((f) => chmod(path.join(tmp, f), 0o600)));
      try {
        await rename(tmp, final); // the commit point: a template dir is complete or absent
      } catch {
        await rm(tmp, { recursive: true, force: true }); // another process built the same one first
      }
      this.progress(`template ${path.basename(final)} ready in ${buildMs} ms`);
      await this.prune().catch(() => undefined);
      const t = await this.load(final, key);
      if (!t) throw new InternalError(`template ${final} vanished right after it was built`);
      return t;
    } catch (e) {
      await m?.destroy({ graceMs: 0 }).catch(() => undefined);
      await rm(tmp, { recursive: true, force: true });
      throw e;
    }
  }

  /**
   * A new VM from the template: its own copy of the template's disk at `disk`,
   * the template's RAM mapped copy-on-write, the device state loaded, the guest
   * clock resynced. The caller gives it its identity (freshIdentity) and, in
   * bridge mode, its address: `net` may name another TAP and MAC than the
   * template's (QEMU's backend is not in the saved state; the guest keeps the
   * template's MAC until freshIdentity sets the one of `net`).
   */
  async restore(t: Template, o: { id: string; disk: string; hostname: string; net: NetSpec | undefined; detached: boolean; signal?: AbortSignal }): Promise<Machine> {
    await copyFile(t.disk, o.disk, constants.COPYFILE_FICLONE);
    await chmod(o.disk, 0o600);
    phase('disk.copy');
    try {
      return await this.rt.boot({
        id: o.id, disk: o.disk, createDisk: false, image: t.spec.image, vcpus: t.spec.vcpus, memoryMb: t.spec.memoryMb,
        diskBytes: t.spec.diskGb * 1024 ** 3, hostname: o.hostname, net: o.net, detached: o.detached, signal: o.signal,
        memoryFile: t.state, ramFile: { path: t.mem, shared: false },
        // The cache is not in the saved state, so a restore may size it apart from the build (the template key keeps the build's).
        tcgTbSizeMb: this.rt.config.vm.restore_tcg_tb_size_mb || undefined,
      });
    } catch (e) {
      await rm(o.disk, { force: true });
      throw e;
    }
  }

  /** Removes templates whose inputs changed (they can never match again), failed builds, and the least recently used beyond KEEP_TEMPLATES. */
  async prune(): Promise<string[]> {
    const removed: string[] = [];
    const live: Array<{ dir: string; used: number; warm: string }> = [];
    for (const name of await readdir(this.root).catch(() => [] as string[])) {
      const dir = path.join(this.root, name);
      const st = await stat(dir).catch(() => undefined);
      if (!st) continue;
      if (name.startsWith('.build-')) {
        // A build in progress takes seconds; one this old was left by a killed process.
        if (Date.now() - st.mtimeMs > 3_600_000) { await rm(dir, { recursive: true, force: true }); removed.push(dir); }
        continue;
      }
      const meta = await readFile(path.join(dir, 'meta.json'), 'utf8').then((s) => JSON.parse(s) as Meta, () => undefined);
      const current = meta && (await Promise.all(meta.files.map((f) => fileId(f.split(':').slice(0, -3).join(':')).catch(() => '')))).join() === meta.files.join();
      if (!current) { await rm(dir, { recursive: true, force: true }); removed.push(dir); continue; }
      live.push({ dir, used: st.mtimeMs, warm: meta.warm ?? '' });
    }
    live.sort((a, b) => b.used - a.used);
    // Counted per kind: a session template costs minutes to build (OpenCode's start), a plain one seconds, so
    // a run of new plain shapes never pushes the session templates out.
    for (const kind of new Set(live.map((l) => l.warm))) {
      for (const { dir } of live.filter((l) => l.warm === kind).slice(KEEP_TEMPLATES)) { await rm(dir, { recursive: true, force: true }); removed.push(dir); }
    }
    for (const d of removed) this.progress(`removed template ${path.basename(d)}`);
    return removed;
  }
}

