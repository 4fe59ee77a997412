// Disk snapshots as qcow2 chains. A workspace's disk is an "active" overlay
// whose backing chain ends in the base image; a snapshot freezes the active
// overlay (it becomes an immutable file) and gives the workspace a new empty
// overlay on top of it. Restore and fork are new overlays backed by a
// snapshot file. Paths live in the database (workspaces.disk_path,
// snapshots.file), never assumed. Every operation writes its intent first
// and has one commit point (a transaction), so recover() at startup can
// finish or roll back what a crash interrupted, and sweep() removes files
// nothing references. WorkspaceService calls these inside its per-workspace
// queue; nothing here starts or stops VMs.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { GuestStepError, InternalError, InvalidArgumentError, IsletError, SnapshotInUseError, SnapshotNotFoundError, VmExitedError } from '../core/errors.js';
import type { Progress } from '../core/progress.js';
import type { DiskDriver } from '../storage/overlay.js';
import type { Machine } from './machine.js';
import type { SnapshotRow, Store, WorkspaceRow } from './store.js';
import type { SnapshotCreateOutput, SnapshotInfo } from './types.js';

export interface SnapCtx {
  store: Store;
  dataDir: string;
  /** <data_dir>/disks: active overlays. */
  diskDir: string;
  progress: Progress;
  disks: DiskDriver;
}

/** How long the guest stays frozen at most if the thaw never comes: a snapshot's switch takes milliseconds. */
const FREEZE_DEADLINE_MS = 10_000;
const SYNC_TIMEOUT_MS = 120_000;

export const legacyDisk = (ctx: SnapCtx, id: string) => path.join(ctx.diskDir, `${id}.qcow2`);
export const activeDisk = (ctx: SnapCtx, row: WorkspaceRow) => row.disk_path ?? legacyDisk(ctx, row.id);
const snapDir = (ctx: SnapCtx, wsId: string) => path.join(ctx.dataDir, 'snapshots', wsId);
/** Where a paused workspace's memory state is saved. */
export const memoryFile = (ctx: SnapCtx, wsId: string) => path.join(ctx.dataDir, 'memory', `${wsId}.mem`);
/** A memory snapshot's saved memory state. */
export const snapMemory = (ctx: SnapCtx, s: Pick<SnapshotRow, 'id' | 'workspace_id'>) => path.join(snapDir(ctx, s.workspace_id), `${s.id}.mem`);
const MEMORY_SAVE_TIMEOUT_MS = 300_000;
const hex = (n: number) => randomBytes(n).toString('hex');
const exists = (f: string) => stat(f).then(() => true, () => false);
/** Host bytes a file occupies (allocated blocks, not its apparent size). */
export const sizeOnDisk = (f: string) => stat(f).then((s) => s.blocks * 512, () => null);

export const snapshotInfo = (s: SnapshotRow): SnapshotInfo => ({
  snapshot_id: s.id, workspace_id: s.workspace_id, name: s.name, description: s.description, parent_id: s.parent_id,
  created_at: s.created_at, size_bytes: s.size_bytes, has_memory: s.has_memory === 1,
});

/** Ready snapshots of a workspace, oldest first. */
export const readySnapshots = (store: Store, wsId: string) => store.snapshots(wsId).filter((s) => s.state === 'ready');

/** A ready snapshot of this workspace, by id or name. */
export function findSnapshot(store: Store, row: WorkspaceRow, ref: string): SnapshotRow {
  const s = store.findSnapshot(row.id, ref);
  if (!s || s.state !== 'ready') {
    throw new SnapshotNotFoundError(row, ref);
  }
  return s;
}

/**
 * Freezes the workspace's current disk as a snapshot. Running (m given): the
 * guest's root filesystem is frozen (FIFREEZE, thawed right after; with
 * memory, or an agent without caps fs.freeze, its dirty pages are flushed
 * with sync instead), then QEMU switches writes to a new
 * overlay (blockdev-snapshot-sync) and the old active file, left where it is
 * because QEMU keeps it open, becomes the snapshot. Stopped: the active file
 * is moved into the snapshots dir and a new empty overlay takes its place.
 */
export async function takeSnapshot(ctx: SnapCtx, row: WorkspaceRow, m: Machine | undefined,
  input: { name: string; description?: string; include_memory?: boolean }, signal?: AbortSignal): Promise<SnapshotCreateOutput> {
  if (input.include_memory && !m) {
    throw new InvalidArgumentError(`workspace "${row.name}" is ${row.state}: only a running workspace has memory to save`,
      'start it first, or omit include_memory for a disk snapshot', { workspace: row.id, state: row.state });
  }
  const t0 = performance.now();
  const id = `snap-${hex(4)}`;
  const active = activeDisk(ctx, row);
  const base: SnapshotRow = {
    id, workspace_id: row.id, name: input.name, created_at: new Date().toISOString(), parent_id: row.backing_snapshot_id,
    file: active, description: input.description ?? null, size_bytes: null, has_memory: 0, state: 'creating', op_disk: null,
    qemu_version: m?.vm.version ?? null,
  };
  if (m) {
    // A disk-only snapshot freezes the root filesystem across the switch to the new overlay: the snapshot is
    // then a clean filesystem (journal written out), which a fork or restore mounts without a replay. Not
    // with memory: the frozen state would be in the saved RAM, and every copy would wait for its deadline.
    const frozen = !input.include_memory && await freezeRoot(m, signal);
    if (!frozen) {
      // sync makes every completed write durable; a write racing the snapshot may land on either side of
      // it, as after a power cut (the journal keeps the filesystem consistent).
      const r = await m.exec({ argv: ['sync'], timeoutMs: SYNC_TIMEOUT_MS }, { signal });
      if (r.exitCode !== 0) throw new GuestStepError(`sync in the guest failed (exit ${r.exitCode})`, 'retry, or stop the workspace and snapshot it stopped');
    }
    try {
      return await liveSnapshot(ctx, row, m, base, input, t0);
    } finally {
      // The guest thaws by itself at its deadline should this fail (or the service die here).
      if (frozen) await m.agent.fsThaw('/').catch(() => undefined);
    }
  }
  return stoppedSnapshot(ctx, row, base, t0, signal);
}

/** Freezes the guest's root for a snapshot; false (and nothing frozen) when the agent cannot or refuses. */
async function freezeRoot(m: Machine, signal?: AbortSignal): Promise<boolean> {
  try {
    return await m.agent.fsFreeze('/', FREEZE_DEADLINE_MS, signal);
  } catch {
    return false; // a filesystem that cannot freeze (EOPNOTSUPP): sync instead
  }
}

async function liveSnapshot(ctx: SnapCtx, row: WorkspaceRow, m: Machine, base: SnapshotRow,
  input: { include_memory?: boolean }, t0: number): Promise<SnapshotCreateOutput> {
  const { id } = base;
  const active = base.file;
  const next = path.join(ctx.diskDir, `${row.id}.${id}.qcow2`);
  const mem = input.include_memory ? snapMemory(ctx, base) : undefined;
  if (mem) await mkdir(path.dirname(mem), { recursive: true, mode: 0o700 });
  ctx.store.insertSnapshot({ ...base, op_disk: next, has_memory: mem ? 1 : 0 });
  try {
    // With memory: the vCPUs are stopped across both, so the disk and the memory are of the same instant.
    if (mem) await m.vm.pause();
    try {
      await m.vm.snapshotDisk(next);
      if (mem) await m.vm.saveState(mem, { timeoutMs: MEMORY_SAVE_TIMEOUT_MS });
    } catch (e) {
      if (mem) await m.vm.resume().catch(() => undefined);
      throw e;
    }
  } catch (e) {
    // Once QEMU switched to the new overlay it cannot be undone here: keep a disk-only snapshot then.
    if (await settle(ctx, { ...base, op_disk: next, has_memory: mem ? 1 : 0 }) === 'finished') {
      return { ...snapshotInfo(mustReady(ctx, id)), live: true, duration_ms: Math.round(performance.now() - t0) };
    }
    throw e instanceof IsletError && e.code === 'VM_EXITED' ? new VmExitedError(`workspace "${row.name}" lost its VM during the snapshot`) : e;
  }
  await chmod(active, 0o444);
  ctx.store.finishSnapshot(id, row.id, next, await sizeOnDisk(active));
  // After the snapshot is recorded (it is complete either way), and not swallowed: a guest left paused
  // answers nothing, and every later call on it would time out unexplained.
  if (mem) await m.vm.resume();
  return { ...snapshotInfo(mustReady(ctx, id)), live: true, duration_ms: Math.round(performance.now() - t0) };
}

async function stoppedSnapshot(ctx: SnapCtx, row: WorkspaceRow, base: SnapshotRow, t0: number, signal?: AbortSignal): Promise<SnapshotCreateOutput> {
  const { id } = base;
  const active = base.file;
  await mkdir(snapDir(ctx, row.id), { recursive: true, mode: 0o700 });
  const file = path.join(snapDir(ctx, row.id), `${id}.qcow2`);
  const s: SnapshotRow = { ...base, file, op_disk: active };
  ctx.store.insertSnapshot(s);
  try {
    await rename(active, file);
    await ctx.disks.createChildOverlay(file, `${active}.new`, signal);
    await rename(`${active}.new`, active); // the file-system commit point: both files exist
  } catch (e) {
    await settle(ctx, s);
    throw e;
  }
  await settle(ctx, s);
  return { ...snapshotInfo(mustReady(ctx, id)), live: false, duration_ms: Math.round(performance.now() - t0) };
}

function mustReady(ctx: SnapCtx, id: string): SnapshotRow {
  const s = ctx.store.getSnapshot(id);
  if (!s || s.state !== 'ready') throw new InternalError(`snapshot ${id} did not complete`);
  return s;
}

/**
 * Finishes or rolls back a snapshot row left in state 'creating', from what
 * is on disk: the same function ends a normal create and repairs a crash.
 */
async function settle(ctx: SnapCtx, s: SnapshotRow): Promise<'finished' | 'rolled back'> {
  const ws = ctx.store.get(s.workspace_id);
  const target = s.op_disk;
  if (!ws || !target) {
    ctx.store.deleteSnapshot(s.id);
    return 'rolled back';
  }
  const live = s.file === activeDisk(ctx, ws);
  if (live) {
    // QEMU creates the new overlay (backed by the old file) and switches to it in one command.
    const switched = await exists(target) && (await ctx.disks.overlayInfo(target).catch(() => undefined))?.backingFile === s.file;
    if (switched) {
      await chmod(s.file, 0o444);
      if (s.has_memory) {
        // Only a crash or a failed save settles a memory snapshot: its memory file may be partial; keep the disk part.
        await rm(snapMemory(ctx, s), { force: true });
        ctx.store.clearMemory(s.id);
      }
      ctx.store.finishSnapshot(s.id, ws.id, target, await sizeOnDisk(s.file));
      return 'finished';
    }
    await rm(snapMemory(ctx, s), { force: true });
    await rm(target, { force: true });
    ctx.store.deleteSnapshot(s.id);
    return 'rolled back';
  }
  await rm(`${target}.new`, { force: true });
  const [haveActive, haveSnap] = [await exists(target), await exists(s.file)];
  if (haveActive && haveSnap) {
    await chmod(s.file, 0o444);
    ctx.store.finishSnapshot(s.id, ws.id, target, await sizeOnDisk(s.file));
    return 'finished';
  }
  if (haveSnap) await rename(s.file, target);
  ctx.store.deleteSnapshot(s.id);
  return 'rolled back';
}

/**
 * Rolls the workspace's disk back to a snapshot: a new empty overlay backed
 * by it becomes the active disk (the commit point), then the old active file
 * goes. The caller has stopped the VM: a disk swapped under a running kernel
 * would disagree with its page cache and corrupt the filesystem.
 */
export async function restoreDisk(ctx: SnapCtx, row: WorkspaceRow, snap: SnapshotRow, signal?: AbortSignal): Promise<void> {
  const old = activeDisk(ctx, row);
  const next = path.join(ctx.diskDir, `${row.id}.${hex(4)}.qcow2`);
  await ctx.disks.createChildOverlay(snap.file, next, signal);
  ctx.store.setDisk(row.id, next, snap.id);
  if (!ctx.store.allSnapshots().some((s) => s.file === old)) await rm(old, { force: true });
}

/** Deletes a snapshot that nothing depends on (its file backs no snapshot, workspace or fork). */
export async function deleteSnapshot(ctx: SnapCtx, row: WorkspaceRow, snap: SnapshotRow): Promise<void> {
  const deps = ctx.store.dependentsOf([snap.id]);
  if (deps.snapshots.length || deps.workspaces.length) {
    throw new SnapshotInUseError(`cannot delete snapshot "${snap.name}" of workspace "${row.name}"`,
      { snapshots: deps.snapshots.map((s) => s.id), workspaces: deps.workspaces.map((w) => w.id) });
  }
  ctx.store.deleteSnapshot(snap.id);
  await rm(snap.file, { force: true });
  await rm(snapMemory(ctx, snap), { force: true });
}

/** A fork's disk: a new overlay at the fork's own (legacy) path, backed by the snapshot. */
export async function forkDisk(ctx: SnapCtx, snap: SnapshotRow, forkId: string, signal?: AbortSignal): Promise<string> {
  const disk = legacyDisk(ctx, forkId);
  await ctx.disks.createChildOverlay(snap.file, disk, signal);
  return disk;
}


/** Refuses to destroy a workspace whose snapshots another workspace (a fork) or its snapshots build on. */
export function checkDestroy(ctx: SnapCtx, row: WorkspaceRow): void {
  const own = ctx.store.snapshots(row.id).map((s) => s.id);
  const deps = ctx.store.dependentsOf(own);
  const users = {
    snapshots: deps.snapshots.filter((s) => s.workspace_id !== row.id).map((s) => s.id),
    workspaces: deps.workspaces.filter((w) => w.id !== row.id).map((w) => w.id),
  };
  if (users.snapshots.length || users.workspaces.length) {
    throw new SnapshotInUseError(`cannot destroy workspace "${row.name}": its snapshots are in use`, users,
      'destroy the forks made from it first (workspace_destroy on each), then this workspace');
  }
}

/** Removes every file of a workspace whose row is gone: its active overlay and its snapshot files. */
export async function removeFiles(ctx: SnapCtx, row: WorkspaceRow, snaps: SnapshotRow[]): Promise<void> {
  await rm(activeDisk(ctx, row), { force: true });
  await rm(memoryFile(ctx, row.id), { force: true });
  for (const s of snaps) await rm(s.file, { force: true });
  await rm(snapDir(ctx, row.id), { recursive: true, force: true });
}

/** At startup: settles every snapshot a crash left half-made. */
export async function recover(ctx: SnapCtx): Promise<void> {
  for (const s of ctx.store.allSnapshots()) {
    if (s.state !== 'creating') continue;
    const how = await settle(ctx, s);
    ctx.progress(`snapshot ${s.name} of ${s.workspace_id}: interrupted by a crash; ${how}`);
  }
}

/**
 * At startup, after reconcile: removes workspace disk files and snapshot
 * files that no row references (left by a crash between a file operation and
 * its commit, or after one). Only ws-* names in disks/ are ours to judge:
 * ephemeral `islet run` VMs keep their disks there too.
 */
export async function sweep(ctx: SnapCtx): Promise<void> {
  const keep = new Set<string>();
  for (const w of ctx.store.all()) keep.add(activeDisk(ctx, w));
  for (const s of ctx.store.allSnapshots()) {
    keep.add(s.file);
    if (s.op_disk) keep.add(s.op_disk);
    if (s.has_memory) keep.add(snapMemory(ctx, s));
  }
  const drop = async (f: string) => {
    if (keep.has(f)) return;
    await rm(f, { recursive: true, force: true });
    ctx.progress(`removed unreferenced disk file ${f}`);
  };
  for (const f of await readdir(ctx.diskDir).catch(() => [] as string[])) {
    if (f.startsWith('ws-')) await drop(path.join(ctx.diskDir, f));
  }
  // Memory states: only a paused workspace's is alive (a crash mid-pause leaves a partial one).
  for (const w of ctx.store.all()) if (w.state === 'paused') keep.add(memoryFile(ctx, w.id));
  for (const f of await readdir(path.join(ctx.dataDir, 'memory')).catch(() => [] as string[])) await drop(path.join(ctx.dataDir, 'memory', f));
  const root = path.join(ctx.dataDir, 'snapshots');
  const known = new Set(ctx.store.all().map((w) => w.id));
  for (const d of await readdir(root).catch(() => [] as string[])) {
    if (!known.has(d)) { await drop(path.join(root, d)); continue; }
    for (const f of await readdir(path.join(root, d)).catch(() => [] as string[])) await drop(path.join(root, d, f));
  }
}
