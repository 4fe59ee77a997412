// The warm pool: pre-booted, unassigned VMs that workspace_create hands out
// instead of starting one. Each pool VM already has the workspace id, disk
// overlay and VM directory it will keep, and was given its own identity
// (machine-id, RNG, host and login keys) when it was filled, so assigning it
// is one transaction that moves it from the pool table to the workspaces
// table, a clock sync and, for a named workspace, a rename. Under bridge
// networking a pool VM has its TAP but no lease and stays off the bridge; at
// assignment it takes the workspace's lease (NET_CONFIG) and only then joins
// the bridge, with its rules. The pool refills in the background, one VM at
// a time and only a second after a create has finished, within [pool]
// max_size and max_memory_mb. Pool VMs end with the service (close); after a
// kill -9, reconcile ends them at the next start (they are in pool_vms).
import { randomBytes } from 'node:crypto';
import { newWorkspaceId } from '../core/schemas.js';
import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import type { Config } from '../core/config.js';
import { CancelledError, firstLine, IsletError } from '../core/errors.js';
import { phase } from '../core/phases.js';
import type { WorkspaceContext } from './workspace-context.js';
import type { Machine } from './machine.js';
import * as snaps from './snapshots.js';
import type { NewWorkspaceRow, PoolVmRow } from './store.js';
import { ensureWorkspaceKey, removeWorkspaceKey } from './ssh.js';
import { freshIdentity, handOutIdentity } from './identity.js';
import type { Templates } from './templates.js';

/** What must match for a pool VM to serve a create. */
export interface PoolSpec {
  image: string;
  vcpus: number;
  memory_mb: number;
  disk_gb: number;
  allow_internet: boolean;
  /** No network device: the VMs of `islet run` (run-ops.ts). */
  no_network?: boolean;
}

interface Entry {
  id: string;
  spec: PoolSpec;
  m?: Machine;
}

const same = (a: PoolSpec, b: PoolSpec) =>
  a.image === b.image && a.vcpus === b.vcpus && a.memory_mb === b.memory_mb && a.disk_gb === b.disk_gb && a.allow_internet === b.allow_internet
  && !a.no_network === !b.no_network;
/** Shapes the pool keeps warm besides the default one: the most recent misses. */
const MAX_SHAPES = 4;
/** How long a refill waits after a create: the new workspace's first commands have the host to themselves. */
export const REFILL_AFTER_CREATE_MS = 1000;
/** Consecutive failed fills after which the pool stops trying until the next create. */
const MAX_FAILURES = 3;

export class WarmPool {
  /** Booting (no m yet) and ready VMs, by id. */
  private readonly entries = new Map<string, Entry>();
  /** Shapes to keep warm, the default first, then recent misses, newest first. */
  private readonly shapes: PoolSpec[];
  private filling: Promise<void> | undefined;
  private again = false;
  private failures = 0;
  private closed = false;
  private readonly abort = new AbortController();
  readonly stats = { hits: 0, misses: 0, filled: 0 };

  constructor(private readonly s: WorkspaceContext, private readonly templates: Templates | undefined, private readonly cfg: Config['pool'], defaultShape: PoolSpec) {
    this.shapes = [defaultShape];
  }

  /** Ready VMs (not those still booting). */
  get ready(): number {
    return [...this.entries.values()].filter((e) => e.m).length;
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * Gives a ready pool VM matching `spec` to a new workspace: the workspace
   * row (quotas and name checked) replaces the pool row in one transaction,
   * and the guest takes the workspace's name (handOutIdentity). Without a
   * bridge the guest's part starts first and runs while the claim commits
   * (and claimed(id), the caller's bookkeeping, runs): a hand-out costs about
   * one agent round trip. Undefined on a miss; the shape is then kept warm too.
   */
  async assign(spec: PoolSpec, rowOf: (id: string) => NewWorkspaceRow, limits: { total: number; perOwner: number }, signal?: AbortSignal,
    claimed?: (id: string) => void): Promise<{ id: string; m: Machine } | undefined> {
    const e = [...this.entries.values()].find((x) => x.m && !x.m.agent.isClosed && same(x.spec, spec));
    if (!e?.m) {
      this.stats.misses++;
      this.want(spec);
      return undefined;
    }
    const m = e.m;
    this.entries.delete(e.id); // no longer offered; its exit watcher lets go of it
    const row = rowOf(e.id);
    // Bridge: the address comes with the lease, which needs the claim; so the whole guest part waits for it there.
    const early = this.s.net.bridgeNet ? undefined : handOutIdentity(m, row.name, e.id, signal);
    early?.catch(() => undefined); // awaited below on every path
    try {
      // The claim (quotas, name): a refusal leaves a clean pool VM (named back to its id if the rename ran).
      this.s.store.claimPoolVm(e.id, { ...row, state: 'creating', pid: m.vm.pid }, limits);
    } catch (err) {
      // Back in the pool only as a clean pool VM: named its id again, or not renamed at all.
      const renameBack = async () => {
        if (!early) return true;
        try {
          await early;
          if (row.name !== e.id) await handOutIdentity(m, e.id, row.name);
          return true;
        } catch {
          return false; // either rename failed: the VM is ended below, never offered half-named
        }
      };
      const back = await renameBack();
      if (err instanceof IsletError && (err.code === 'QUOTA_EXCEEDED' || err.code === 'INVALID_ARGUMENT') && back && !m.agent.isClosed) {
        this.entries.set(e.id, e);
        throw err;
      }
      this.s.progress(`pool VM ${e.id} could not be assigned (${firstLine(err)}); ending it`);
      await this.drop(e.id, m);
      if (err instanceof IsletError && (err.code === 'QUOTA_EXCEEDED' || err.code === 'INVALID_ARGUMENT')) throw err;
      return undefined;
    }
    phase('pool.claim');
    // Now a workspace row ('creating': reconcile undoes it after a crash); the lease can be taken (bridge) and the VM made its own.
    try {
      claimed?.(e.id);
      const net = this.s.net.netSpec(spec.allow_internet, e.id);
      await (early ?? this.s.net.attach(this.s.mustGet(e.id), m, () => handOutIdentity(m, row.name, e.id, signal, net)));
      phase('identity');
      this.s.store.setState(e.id, 'running', { pid: m.vm.pid });
    } catch (err) {
      this.s.progress(`pool VM ${e.id} could not be assigned (${firstLine(err)}); ending it`);
      await m.destroy({ graceMs: 0 }).catch(() => undefined);
      await this.s.rollbackCreate(e.id);
      await rm(path.join(this.s.config.paths.runDir, 'vm', e.id), { recursive: true, force: true });
      if (signal?.aborted) throw err;
      return undefined;
    }
    this.stats.hits++;
    return { id: e.id, m };
  }

  private want(spec: PoolSpec): void {
    if (this.shapes.some((x) => same(x, spec))) return;
    this.shapes.splice(1, 0, spec);
    this.shapes.length = Math.min(this.shapes.length, MAX_SHAPES + 1);
  }

  /**
   * Starts a background refill if none runs; call after a create finished.
   * afterMs: wait that long first. After a create, the caller's first
   * commands come next, and on a small host a refill (a QEMU start and a
   * restore) would take the cores they need (in one bench run a pool hit's
   * first exec took 73 ms beside one, 13-15 ms without).
   */
  kick(o: { afterMs?: number } = {}): void {
    if (this.closed) return;
    this.failures = 0;
    if (this.filling) { this.again = true; return; }
    this.filling = this.fillLoop(o.afterMs ?? 0).finally(() => {
      this.filling = undefined;
      if (this.again && !this.closed) { this.again = false; this.kick(); }
    });
  }

  /** The next shape to boot, or undefined when the pool is as full as its limits allow. */
  private next(): PoolSpec | undefined {
    const all = [...this.entries.values()];
    const memory = all.reduce((n, e) => n + e.spec.memory_mb, 0);
    const fits = (s: PoolSpec) => all.length < this.cfg.max_size && memory + s.memory_mb <= this.cfg.max_memory_mb;
    for (const shape of this.shapes) {
      if (all.filter((e) => same(e.spec, shape)).length < this.cfg.target_free && fits(shape)) return shape;
    }
    if (all.length < this.cfg.min_size && fits(this.shapes[0]!)) return this.shapes[0];
    return undefined;
  }

  private async fillLoop(afterMs: number): Promise<void> {
    if (afterMs > 0) await sleep(afterMs, undefined, { signal: this.abort.signal, ref: false }).catch(() => undefined);
    for (;;) {
      // Let the create that triggered us return first: refills never compete with it.
      await new Promise((r) => setImmediate(r));
      if (this.closed || this.failures >= MAX_FAILURES) return;
      const spec = this.next();
      if (!spec) return;
      try {
        await this.fillOne(spec);
        this.failures = 0;
      } catch (e) {
        if (this.closed) return;
        this.failures++;
        this.s.progress(`pool: could not boot a VM (${firstLine(e)})`);
      }
    }
  }

  private async fillOne(spec: PoolSpec): Promise<void> {
    const id = newWorkspaceId();
    const disk = snaps.legacyDisk(this.s.snap, id);
    const row: PoolVmRow = {
      id, image: spec.image, vcpus: spec.vcpus, memory_mb: spec.memory_mb, disk_gb: spec.disk_gb, allow_internet: spec.allow_internet ? 1 : 0,
      state: 'booting', pid: null, source: null, created_at: new Date().toISOString(),
    };
    // Intent first, as for workspaces: a crash from here on leaves a row that reconcile cleans up.
    this.s.store.insertPoolVm(row);
    const entry: Entry = { id, spec };
    this.entries.set(id, entry);
    // Bridge mode: the TAP this id keeps, off the bridge, on the spare address; the lease comes at assignment.
    const net = spec.no_network ? undefined : this.s.net.spareNetSpec(id);
    const signal = this.abort.signal;
    let m: Machine | undefined;
    let source = 'cold';
    try {
      const t = this.templates
        ? await this.templates.ensure({ image: spec.image, vcpus: spec.vcpus, memoryMb: spec.memory_mb, diskGb: spec.disk_gb, net: spec.no_network ? undefined : this.s.net.spareNetSpec() }, signal)
          .catch((e: unknown) => { if (signal.aborted) throw e; return undefined; })
        : undefined;
      if (t) {
        m = await this.templates!.restore(t, { id, disk, hostname: id, net, detached: true, signal });
        source = 'template';
      } else {
        m = await this.s.rt.boot({
          id, disk, createDisk: true, image: spec.image, vcpus: spec.vcpus, memoryMb: spec.memory_mb, diskBytes: spec.disk_gb * 1024 ** 3,
          hostname: id, net, detached: true, signal,
        });
      }
      // Everything of the identity reset that does not depend on the workspace's name happens now, off any create's
      // path: machine-id, entropy, SSH host key (hostname = id, which becomes the workspace's id), the workspace's
      // login key and the proxy settings (user mode). The exec also warms the translation cache for the shell the
      // first command will use. A hand-out then only renames the guest (handOutIdentity).
      const booted = m;
      await freshIdentity(booted, id, signal);
      await Promise.all([ensureWorkspaceKey(this.s.config, { id, image: spec.image }, booted, signal), this.s.net.guestProxyEnv({ name: id, kind: spec.no_network ? 'run' : 'workspace' }, booted)]);
      if (this.closed) throw new CancelledError('warm pool fill');
    } catch (e) {
      this.entries.delete(id);
      await m?.destroy({ graceMs: 0 }).catch(() => undefined);
      this.s.store.deletePoolVm(id);
      await Promise.all([rm(disk, { force: true }), removeWorkspaceKey(this.s.config.paths.dataDir, id)]);
      throw e;
    }
    entry.m = m;
    this.s.store.setPoolVm(id, { state: 'ready', pid: m.vm.pid, source });
    this.stats.filled++;
    this.s.progress(`pool: VM ${id} ready (${source}, ${m.bootMs} ms; ${this.ready} ready)`);
    void m.vm.exited.then(() => {
      if (this.entries.get(id)?.m !== m) return; // assigned or already dropped
      this.s.progress(`pool: VM ${id} exited; dropping it`);
      void this.drop(id, m);
    });
  }

  private async drop(id: string, m: Machine): Promise<void> {
    this.entries.delete(id);
    this.s.store.deletePoolVm(id);
    await m.destroy({ graceMs: 0 }).catch(() => undefined);
    await rm(path.join(this.s.config.paths.runDir, 'vm', id), { recursive: true, force: true });
    await removeWorkspaceKey(this.s.config.paths.dataDir, id);
  }

  /** Ends every pool VM (they hold no user state) and waits for a refill in progress to stop. */
  async close(): Promise<void> {
    this.closed = true;
    this.abort.abort(new Error('service closing'));
    await this.filling?.catch(() => undefined);
    await Promise.all([...this.entries.values()].map((e) => (e.m ? this.drop(e.id, e.m) : undefined)));
    this.entries.clear();
  }
}
