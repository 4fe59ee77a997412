// Creates and forks: the paths that bring a new workspace's VM up (a warm
// pool hand-out, a template restore, a cold boot, a fork of a snapshot with
// or without memory). WorkspaceService hands create and fork here; the rules
// they share with the rest of the service live in WorkspaceContext.
import { randomBytes } from 'node:crypto';
import { firstLine, QuotaExceededError } from '../core/errors.js';
import { phase } from '../core/phases.js';
import type { CreateInput, ForkInput } from '../core/schemas.js';
import { newWorkspaceId } from '../core/schemas.js';
import { freshIdentity } from './identity.js';
import type { Lifetimes } from './lifetimes.js';
import type { Machine } from './machine.js';
import { REFILL_AFTER_CREATE_MS, type WarmPool } from './pool.js';
import type { SnapshotOps } from './snapshot-ops.js';
import * as snaps from './snapshots.js';
import { ensureWorkspaceKey } from './ssh.js';
import type { SnapshotRow, WorkspaceKind, WorkspaceRow } from './store.js';
import type { TemplateWarmup, Templates } from './templates.js';
import type { Caller, OpOptions, WorkspaceInfo } from './types.js';
import type { WorkspaceContext } from './workspace-context.js';

export interface CreateDeps {
  templates: Templates | undefined;
  lifetimes: Lifetimes;
  snapshots: SnapshotOps;
  /** The warm pool, which the service sets after construction (only a long-lived server has one). */
  pool: () => WarmPool | undefined;
}

export class CreateOps {
  constructor(private readonly ctx: WorkspaceContext, private readonly d: CreateDeps) {}

  /**
   * kind 'run': the throwaway workspace of `islet run` (run-ops.ts): no network device (as the VM of a run always
   * was), named run-*, and marked so that a daemon starting after a crash removes it. via: how its VM came up.
   */
  async createFrom(c: Caller, input: CreateInput, o: OpOptions, warm?: TemplateWarmup, kind: WorkspaceKind = 'workspace'):
    Promise<{ info: WorkspaceInfo; warmed: boolean; via: 'pool' | 'template' | 'boot' }> {
    const r = this.ctx.config.resources;
    const spec = {
      image: input.image ?? r.default_image,
      vcpus: input.vcpus ?? r.default_vcpus,
      memory_mb: input.memory_mb ?? r.default_memory_mb,
      disk_gb: input.disk_gb ?? r.default_disk_gb,
    };
    const over = (what: string, v: number, max: number, key: string) =>
      new QuotaExceededError(`${what} ${v} is over this host's limit of ${max}`, `ask for less, or raise [resources] ${key}`, { [what]: v, max });
    if (spec.vcpus > r.max_vcpus) throw over('vcpus', spec.vcpus, r.max_vcpus, 'max_vcpus');
    if (spec.memory_mb > r.max_memory_mb) throw over('memory_mb', spec.memory_mb, r.max_memory_mb, 'max_memory_mb');
    if (spec.disk_gb > r.max_disk_gb) throw over('disk_gb', spec.disk_gb, r.max_disk_gb, 'max_disk_gb');
    const ctx = this.ctx;
    ctx.net.netSpec(false); // NOT_SUPPORTED (bridge mode) before any row exists
    await ctx.rt.artifacts(spec.image); // IMAGE_NOT_FOUND before any row exists

    const now = new Date().toISOString();
    const allow = input.allow_internet ?? this.ctx.config.network.default_allow_internet;
    const rowOf = (id: string): WorkspaceRow => ({
      id, name: input.name ?? (kind === 'run' ? `run-${id.slice(3, 11)}` : id), owner: c.owner, state: 'creating', ...spec, allow_internet: allow ? 1 : 0,
      pid: null, error: null, created_at: now, updated_at: now, disk_path: null, backing_snapshot_id: null, kind,
    });
    const limits = { total: r.max_workspaces, perOwner: r.max_workspaces_per_owner };
    // Fastest: a pre-booted VM of this shape from the warm pool (its row is written when it is handed over).
    // Its lifetime is written while the guest takes its name (claimed runs between the claim and the guest's answer).
    const claimed = (id: string) => {
      if (input.ttl_minutes !== undefined) this.ctx.store.setLifetime(id, { ttl_minutes: input.ttl_minutes });
      this.d.lifetimes.started(id);
      ctx.net.writeEgress(id);
    };
    const hit = warm ? undefined : await this.d.pool()?.assign({ ...spec, allow_internet: allow, no_network: kind === 'run' }, rowOf, limits, o.signal, claimed);
    if (hit) {
      ctx.adopt(hit.id, hit.m);
      this.d.pool()!.kick({ afterMs: REFILL_AFTER_CREATE_MS });
      this.ctx.progress(`workspace ${ctx.mustGet(hit.id).name}: assigned a warm pool VM`);
      return { info: await ctx.infoOf(ctx.mustGet(hit.id)), warmed: false, via: 'pool' };
    }
    const id = newWorkspaceId();
    const row = rowOf(id);
    // Intent first: the row exists before the VM, so a crash mid-create is found and undone by reconcile.
    this.ctx.store.insertChecked(row, limits);
    if (input.ttl_minutes !== undefined) this.ctx.store.setLifetime(id, { ttl_minutes: input.ttl_minutes });
    return ctx.serial(id, async () => {
      let warmed = false;
      try {
        warmed = await this.bootFromTemplate(row, o.signal, warm);
        if (!warmed) await ctx.bootInto(row, true, o.signal);
        this.d.lifetimes.started(id);
        this.d.pool()?.kick({ afterMs: REFILL_AFTER_CREATE_MS }); // refill only once this create is done, so it never competes with it
      } catch (e) {
        await ctx.rollbackCreate(id);
        throw e;
      }
      return { info: await ctx.infoOf(ctx.mustGet(id)), warmed: warmed && warm !== undefined, via: warmed ? 'template' : 'boot' };
    });
  }

  /** Restores a new workspace from its shape's template (built on first use); false: no template, so boot it. */
  private async bootFromTemplate(row: WorkspaceRow, signal?: AbortSignal, warm?: TemplateWarmup): Promise<boolean> {
    if (!this.d.templates) return false;
    const t0 = performance.now();
    const ctx = this.ctx;
    let m: Machine | undefined;
    let phases = '';
    try {
      // The template is built on the spare network (bridge: no lease, a TAP off the bridge); the restore gets the workspace's own.
      const spare = row.kind === 'run' ? undefined : ctx.net.spareNetSpec();
      const t = await this.d.templates.ensure({ image: row.image, vcpus: row.vcpus, memoryMb: row.memory_mb, diskGb: row.disk_gb, net: spare }, signal, warm);
      const net = ctx.net.netSpec(row.allow_internet === 1, row.id);
      phase('template.lookup');
      const t1 = performance.now();
      m = await this.d.templates.restore(t, { id: row.id, disk: ctx.diskPath(row.id), hostname: row.name, net, detached: true, signal });
      const restored = m;
      const t2 = performance.now();
      const took = (a: number) => Math.round(performance.now() - a);
      // bridge: the guest takes its lease (while the host writes its rules) before its TAP joins the bridge. The login
      // key goes in meanwhile: neither step waits for the other, and the identity reset's wait is sshd's re-exec.
      const [identityMs, keyMs] = await Promise.all([
        ctx.net.attach(row, m, () => freshIdentity(restored, row.name, signal, net)).then(() => took(t2)),
        ensureWorkspaceKey(this.ctx.config, row, m, signal).then(() => took(t2)),
      ]);
      phase('identity+ssh.key');
      if (!t.proxyEnv) await ctx.net.guestProxyEnv(row, m);
      phase('proxy.env');
      phases = `template ${Math.round(t1 - t0)} ms, restore ${Math.round(t2 - t1)} ms, identity ${identityMs} ms, ssh key ${keyMs} ms`;
    } catch (e) {
      await m?.destroy({ graceMs: 0 }).catch(() => undefined);
      if (signal?.aborted) throw e;
      this.ctx.progress(`workspace ${row.name}: template restore failed (${firstLine(e)}); booting instead`);
      return false;
    }
    ctx.adopt(row.id, m);
    this.ctx.store.setState(row.id, 'running', { pid: m.vm.pid });
    this.ctx.progress(`workspace ${row.name}: restored from template in ${Math.round(performance.now() - t0)} ms (${phases})`);
    return true;
  }

  /** A new, independent workspace whose disk starts as the snapshot (taken now if none is named); booted with its own identity. */
  async fork(c: Caller, input: ForkInput, o: OpOptions = {}): Promise<WorkspaceInfo> {
    const ctx = this.ctx;
    const src0 = ctx.resolve(c, input.workspace_id);
    ctx.net.netSpec(false);
    const r = ctx.config.resources;
    const id = newWorkspaceId();
    // In the source's queue, so the snapshot cannot be deleted before the fork's row (which depends on it) exists.
    const { row, snap } = await ctx.serial(src0.id, async () => {
      const src = ctx.mustGet(src0.id);
      let snap: SnapshotRow;
      if (input.snapshot) snap = snaps.findSnapshot(ctx.store, src, input.snapshot);
      else {
        const name = `fork-${new Date().toISOString().replace(/[-:.TZ]/g, '')}-${randomBytes(2).toString('hex')}`;
        snap = ctx.store.getSnapshot((await this.d.snapshots.snapshotNow(src.id, { name, description: `taken for fork ${input.name ?? id}` }, o.signal)).snapshot_id)!;
      }
      const now = new Date().toISOString();
      const row: WorkspaceRow = {
        ...src, id, name: input.name ?? id, owner: c.owner, state: 'creating', pid: null, error: null, created_at: now, updated_at: now,
        disk_path: null, backing_snapshot_id: snap.id, kind: 'workspace', // a fork of a run's workspace is the caller's to keep
      };
      ctx.store.insertChecked(row, { total: r.max_workspaces, perOwner: r.max_workspaces_per_owner });
      return { row, snap };
    });
    return ctx.serial(id, async () => {
      try {
        const memory = await this.d.snapshots.memoryOf(snap);
        await snaps.forkDisk(ctx.snap, snap, id, o.signal);
        phase('disk.fork');
        // A memory fork runs the source's guest: its identity and (bridge) its address are made its own before its TAP joins the bridge.
        await ctx.bootInto(row, false, o.signal, memory, (m, net) => freshIdentity(m, row.name, o.signal, net), { newIdentity: true });
        this.d.lifetimes.started(id);
      } catch (e) {
        await ctx.rollbackCreate(id);
        throw e;
      }
      return ctx.infoOf(ctx.mustGet(id));
    });
  }
}
