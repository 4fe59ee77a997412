// Pre-root templates: every start is a restore. A pre-root template is one
// boot of an image's kernel and initramfs, saved while stage 1 waits on the
// agent port before mounting any root filesystem (agent/internal/initsys/
// preroot_linux.go). It holds no disk state, so it fits every disk of that
// image build: workspace_start, snapshot_restore of a disk snapshot and disk
// forks restore it with the workspace's own disk behind the same device, and
// send ROOT: the guest probes the disk (the template saved none: its disk
// driver was unbound), takes the workspace's hostname and network (and a
// fork's machine-id), mounts the disk, switches root and sets PID 1 up, then
// replies with the agent's HELLO and goes on serving the same connection.
//
// The template's RAM is a file mapped privately at restore, as for create
// templates (templates.ts); it lives beside them in <cache>/templates as
// preroot-<image>-<key> and is pruned by the same rules. The key covers the
// kernel, initramfs and root filesystem files, the QEMU version and argv
// shape (memory, vCPUs, whether there is a network device), not the disk.
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readdir, readFile, realpath, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { firstLine, NotSupportedError } from '../core/errors.js';
import { phase } from '../core/phases.js';
import type { Progress } from '../core/progress.js';
import { INJECT_AGENT_WORD } from '../images/imported-boot.js';
import type { RootResult } from '../guest/agent.js';
import { buildQemuArgv, guestNetWord, type NetSpec } from '../vmm/argv.js';
import { Machine } from './machine.js';
import type { Runtime } from './runtime.js';
import { fileId } from './templates.js';

/** How a workspace's VM last came up; shown in workspace info and restore results. */
export interface BootInfo {
  path: 'restore' | 'cold';
  ms: number;
  /** Why a start that could have been a restore booted cold; null when nothing needs saying. */
  note: string | null;
}

export interface PrerootShape {
  image: string;
  vcpus: number;
  memoryMb: number;
  /** A network device exists (its backend, user or none, is not part of the saved state). */
  net: boolean;
}

export interface PrerootStart {
  id: string;
  disk: string;
  image: string;
  vcpus: number;
  memoryMb: number;
  diskBytes: number;
  hostname: string;
  net: NetSpec | undefined;
  /** A disk fork: the disk holds its source's identity; ROOT writes a new machine-id and /etc/hostname. */
  newIdentity?: boolean;
  signal?: AbortSignal;
}

interface Meta {
  key: string;
  spec: PrerootShape;
  files: string[];
  built_at: string;
  build_ms: number;
}

const FORMAT = 'preroot-1';
const PREROOT_WORD = 'islet.preroot=1';
const SAVE_TIMEOUT_MS = 60_000;
const QCOW2_MAGIC = 0x514649fb;
/** A backing chain deeper than this is not one islet made. */
const MAX_CHAIN = 256;
const hex = (n: number) => randomBytes(n).toString('hex');

/** The raw base at the bottom of a qcow2 chain (read from the headers: no process spawned), or undefined. */
export async function baseOf(disk: string): Promise<string | undefined> {
  let f = disk;
  for (let i = 0; i < MAX_CHAIN; i++) {
    const h = await open(f, 'r');
    try {
      const b = Buffer.alloc(20);
      await h.read(b, 0, 20, 0);
      if (b.readUInt32BE(0) !== QCOW2_MAGIC) return f;
      const off = Number(b.readBigUInt64BE(8));
      const len = b.readUInt32BE(16);
      if (off === 0 || len === 0 || len > 1023) return undefined; // qcow2 caps backing names at 1023 bytes
      const name = Buffer.alloc(len);
      await h.read(name, 0, len, off);
      f = path.resolve(path.dirname(f), name.toString('utf8'));
    } finally {
      await h.close();
    }
  }
  return undefined;
}

export class PrerootTemplates {
  private readonly building = new Map<string, Promise<void>>();
  private readonly closing = new AbortController();

  constructor(private readonly rt: Runtime, private readonly progress: Progress) {}

  get root(): string {
    return path.join(this.rt.config.paths.cacheDir, 'templates');
  }

  private async key(shape: PrerootShape): Promise<{ key: string; files: string[] }> {
    const c = this.rt.config;
    const art = await this.rt.artifacts(shape.image);
    const { accel } = await this.rt.accel();
    const files = await Promise.all([art.vmlinux, art.initrd, art.rootfs].map(fileId));
    const argv = buildQemuArgv({
      id: 'template', dir: '/t', disk: '/t/disk.qcow2', kernel: art.vmlinux, initrd: art.initrd, vcpus: shape.vcpus, memoryMb: shape.memoryMb,
      accel, initMode: art.initMode, hostname: 'template', tcgTbSizeMb: c.vm.tcg_tb_size_mb, net: shape.net ? { restrict: true } : undefined,
      ramFile: { path: '/t/mem', shared: true }, cmdlineExtra: [...(art.injectAgent ? [INJECT_AGENT_WORD] : []), PREROOT_WORD],
    }, c.vm.qemu_binary);
    const parts = { FORMAT, qemu: await this.rt.qemuVersion(), kernelKey: art.kernelKey, files, argv };
    return { key: createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 16), files };
  }

  private dirOf(image: string, key: string): string {
    return path.join(this.root, `preroot-${image}-${key}`);
  }

  private async load(dir: string, key: string): Promise<{ mem: string; state: string } | undefined> {
    const meta = await readFile(path.join(dir, 'meta.json'), 'utf8').then((s) => JSON.parse(s) as Meta, () => undefined);
    if (meta?.key !== key) return undefined;
    const t = { mem: path.join(dir, 'mem'), state: path.join(dir, 'state') };
    try {
      await Promise.all([stat(t.mem), stat(t.state)]);
    } catch {
      return undefined;
    }
    const now = new Date();
    await utimes(dir, now, now).catch(() => undefined); // last use, for pruning (templates.ts)
    return t;
  }

  /**
   * Brings up a workspace's VM on its existing disk by restoring the pre-root
   * template of its image and shape. No machine: boot it cold, and say why in
   * note (null when restores do not apply, e.g. on a driver without memory
   * state). Only a cancellation throws.
   */
  async start(o: PrerootStart): Promise<{ machine?: Machine; note: string | null; identityDone?: boolean }> {
    if (!this.rt.drivers.vmm.capabilities.memoryState) return { note: null };
    if (o.net?.kind === 'tap') return { note: 'bridge mode: starts boot the kernel (pre-root restores cover user-mode and no network)' };
    try {
      const art = await this.rt.artifacts(o.image);
      if (art.initMode === 'full') return { note: `image ${o.image} runs systemd (init full): pre-root restores cover fast-init images; booted cold` };
      const shape: PrerootShape = { image: o.image, vcpus: o.vcpus, memoryMb: o.memoryMb, net: o.net !== undefined };
      const { key, files } = await this.key(shape);
      const t = await this.load(this.dirOf(o.image, key), key);
      if (!t) {
        this.kick(shape, key, files);
        return { note: (await this.hasStale(o.image, key))
          ? `the kernel or image of ${o.image} changed since its pre-root template was taken: booted cold; a new template is being taken for the next start`
          : `no pre-root template for ${o.image} (${o.vcpus} vCPU, ${o.memoryMb} MiB) yet: booted cold; one is being taken for the next start` };
      }
      const [base, current] = await Promise.all([baseOf(o.disk).then((b) => b && realpath(b)).catch(() => undefined), realpath(art.rootfs)]);
      if (base !== current) {
        return { note: `this workspace's disk was made from another build of image ${o.image} than the current one: booted cold (a pre-root template fits its own build only)` };
      }
      const net = o.net ? guestNetWord(o.net).slice('islet.net='.length) : undefined;
      phase('preroot.lookup');
      let root: RootResult | undefined;
      const m = await Machine.boot(await this.rt.machineSpec({
        id: o.id, disk: o.disk, createDisk: false, image: o.image, vcpus: o.vcpus, memoryMb: o.memoryMb, diskBytes: o.diskBytes,
        hostname: o.hostname, net: o.net, detached: true, signal: o.signal, memoryFile: t.state, ramFile: { path: t.mem, shared: false },
        cmdlineExtra: [PREROOT_WORD],
        handover: async (agent, signal) => {
          if (!agent.enterRoot) throw new NotSupportedError('this guest agent cannot take a root disk after a restore');
          root = await agent.enterRoot({ hostname: o.hostname, net, entropy: hex(256), ...(o.newIdentity ? { machineId: hex(16) } : {}) }, signal);
          phase('root', root.ms);
          return { reconnect: !root.switched };
        },
      }));
      // Hostname, machine-id and entropy are the fork's own now; SSH host keys still need the shell (freshIdentity).
      return { machine: m, note: null, identityDone: o.newIdentity === true && root?.switched === true && !root.sshHostKeys };
    } catch (e) {
      if (o.signal?.aborted) throw e;
      return { note: `pre-root restore failed (${firstLine(e)}): booted cold` };
    }
  }

  /** A template of this image under other inputs exists: its kernel or image changed since. */
  private async hasStale(image: string, key: string): Promise<boolean> {
    const prefix = `preroot-${image}-`;
    const names = await readdir(this.root).catch(() => [] as string[]);
    return names.some((n) => n.startsWith(prefix) && n !== `${prefix}${key}` && /^[0-9a-f]{16}$/.test(n.slice(prefix.length)));
  }

  /** Takes the template in the background (once per key); the start that asked has booted cold already. */
  private kick(shape: PrerootShape, key: string, files: string[]): Promise<void> | undefined {
    if (this.closing.signal.aborted) return undefined;
    let p = this.building.get(key);
    if (!p) {
      p = this.build(shape, key, files).finally(() => this.building.delete(key));
      p.catch((e) => this.progress(`pre-root template for ${shape.image} not taken: ${firstLine(e)}`));
      this.building.set(key, p);
    }
    return p;
  }

  /** Takes the template for this shape now, if it is missing (bench and tests warm it this way); fails if it cannot. */
  async ensure(shape: PrerootShape): Promise<void> {
    const { key, files } = await this.key(shape);
    if (await this.load(this.dirOf(shape.image, key), key)) return;
    await this.kick(shape, key, files);
  }

  /** Resolves once no template is being taken. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.building.values()]);
  }

  /** Abandons templates being taken (their temporary dirs are removed). */
  async close(): Promise<void> {
    this.closing.abort();
    await this.settled();
  }

  private async build(shape: PrerootShape, key: string, files: string[]): Promise<void> {
    const signal = this.closing.signal;
    const final = this.dirOf(shape.image, key);
    const tmp = path.join(this.root, `.build-preroot-${shape.image}-${key}-${hex(4)}`);
    await mkdir(tmp, { recursive: true, mode: 0o700 });
    this.progress(`taking pre-root template ${path.basename(final)}: one boot up to stage 1`);
    const t0 = performance.now();
    let m: Machine | undefined;
    try {
      // The disk is only there because QEMU's argv needs one: stage 1 never mounts it, and it is not kept.
      m = await this.rt.boot({
        image: shape.image, vcpus: shape.vcpus, memoryMb: shape.memoryMb, hostname: 'islet-template', net: shape.net ? { restrict: true } : undefined,
        disk: path.join(tmp, 'disk.qcow2'), createDisk: true, ramFile: { path: path.join(tmp, 'mem'), shared: true }, cmdlineExtra: [PREROOT_WORD], signal,
      });
      // An initramfs whose agent predates pre-root templates boots on to its root filesystem: nothing to save.
      if (!m.agent.awaitsRoot) throw new NotSupportedError(`stage 1 of the ${shape.image} initramfs does not wait for a root disk (its agent predates pre-root templates)`, 'rebuild the artifacts: islet setup');
      await m.pauseToFile(path.join(tmp, 'state'), SAVE_TIMEOUT_MS, { ignoreShared: true });
      await rm(path.join(tmp, 'disk.qcow2'), { force: true });
      const meta: Meta = { key, spec: shape, files, built_at: new Date().toISOString(), build_ms: Math.round(performance.now() - t0) };
      await writeFile(path.join(tmp, 'meta.json'), JSON.stringify(meta, null, 2), { mode: 0o600 });
      // The RAM holds the kernel RNG state every copy starts from: owner-only.
      await Promise.all(['mem', 'state'].map((f) => chmod(path.join(tmp, f), 0o600)));
      try {
        await rename(tmp, final);
      } catch {
        await rm(tmp, { recursive: true, force: true }); // another process took the same one first
      }
      this.progress(`pre-root template ${path.basename(final)} ready in ${meta.build_ms} ms`);
    } catch (e) {
      await m?.destroy({ graceMs: 0 }).catch(() => undefined);
      await rm(tmp, { recursive: true, force: true });
      throw e;
    }
  }
}
