// Snapshot operations (logic in snapshots.ts): checkpoints, rollback,
// and pause/resume through QEMU's migration-to-file.
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { firstLine, NotSupportedError, VmExitedError } from '../core/errors.js';
import { phase } from '../core/phases.js';
import type { SnapshotCreateInput, SnapshotRefInput, WorkspaceRef } from '../core/schemas.js';
import type { WorkspaceContext } from './workspace-context.js';
import { assertState } from './transitions.js';
import * as snaps from './snapshots.js';
import type { SnapshotRow, WorkspaceRow } from './store.js';
import type {
  Caller, OpOptions, SnapshotCreateOutput, SnapshotDeleteOutput, SnapshotListOutput, SnapshotRestoreOutput, WorkspaceInfo,
} from './types.js';

export class SnapshotOps {
  constructor(private readonly s: WorkspaceContext) {}

  /** Snapshots the disk; a running workspace keeps running (its filesystem is synced first). */
  async snapshotCreate(c: Caller, input: SnapshotCreateInput, o: OpOptions = {}): Promise<SnapshotCreateOutput> {
    const row0 = this.s.resolve(c, input.workspace_id);
    return this.s.serial(row0.id, () => this.snapshotNow(row0.id, input, o.signal));
  }

  async snapshotList(c: Caller, input: WorkspaceRef): Promise<SnapshotListOutput> {
    const row = this.s.resolve(c, input.workspace_id);
    const list = await Promise.all(snaps.readySnapshots(this.s.store, row.id)
      .map(async (s) => ({ ...snaps.snapshotInfo(s), size_bytes: await snaps.sizeOnDisk(s.file) })));
    return { workspace_id: row.id, current_snapshot_id: row.backing_snapshot_id, snapshots: list };
  }

  /** Rolls the disk back to a snapshot; a running workspace is stopped, rolled back and booted again. */
  async snapshotRestore(c: Caller, input: SnapshotRefInput, o: OpOptions = {}): Promise<SnapshotRestoreOutput> {
    const row0 = this.s.resolve(c, input.workspace_id);
    return this.s.serial(row0.id, async () => {
      const row = this.s.mustGet(row0.id);
      assertState(row, 'restore');
      const s = snaps.findSnapshot(this.s.store, row, input.snapshot);
      const memory = await this.memoryOf(s);
      const t0 = performance.now();
      const m = this.s.live.get(row.id);
      const restart = row.state === 'running' && m !== undefined;
      if (row.state === 'paused') await rm(snaps.memoryFile(this.s.snap, row.id), { force: true }); // memory of the old disk
      if (row.state === 'paused') this.s.store.setState(row.id, 'stopped');
      // A running disk that restoreDisk then deletes needs no clean power-off: QEMU quits at once (it still closes the overlay).
      const discarded = !this.s.store.allSnapshots().some((x) => x.file === snaps.activeDisk(this.s.snap, row));
      if (m) await this.s.stopLive(row.id, discarded ? { graceMs: 0 } : {});
      phase('stop');
      await snaps.restoreDisk(this.s.snap, this.s.mustGet(row.id), s, o.signal);
      phase('disk.restore');
      // A memory snapshot resumes its processes, whatever the workspace was doing; a disk one boots if it ran.
      if (restart || memory) await this.s.bootInto(this.s.mustGet(row.id), false, o.signal, memory);
      return {
        workspace_id: row.id, snapshot_id: s.id, restarted: restart || memory !== undefined, memory_restored: memory !== undefined,
        state: this.s.mustGet(row.id).state, duration_ms: Math.round(performance.now() - t0),
        ...(restart || memory ? { boot: this.s.lastBoot.get(row.id) } : {}),
      };
    });
  }

  async snapshotDelete(c: Caller, input: SnapshotRefInput, _o: OpOptions = {}): Promise<SnapshotDeleteOutput> {
    const row0 = this.s.resolve(c, input.workspace_id);
    return this.s.serial(row0.id, async () => {
      const row = this.s.mustGet(row0.id);
      const s = snaps.findSnapshot(this.s.store, row, input.snapshot);
      await snaps.deleteSnapshot(this.s.snap, row, s);
      return { workspace_id: row.id, snapshot_id: s.id, deleted: true as const };
    });
  }

  /** Saves the running workspace's memory to disk and ends its VM: host memory is freed, processes come back on resume. */
  async pause(c: Caller, input: WorkspaceRef, _o: OpOptions = {}): Promise<WorkspaceInfo & { pause_ms: number }> {
    const row0 = this.s.resolve(c, input.workspace_id);
    return this.s.serial(row0.id, async () => {
      const row = this.s.mustGet(row0.id);
      const m = this.s.live.get(row.id);
      assertState(row, 'pause');
      if (!m) throw new VmExitedError(`workspace "${row.name}" lost its VM`, { workspace: row.id });
      const t0 = performance.now();
      const file = snaps.memoryFile(this.s.snap, row.id);
      await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
      this.s.live.delete(row.id);
      try {
        await m.pauseToFile(file, 300_000);
      } catch (e) {
        await rm(file, { force: true });
        if (!m.agent.isClosed) this.s.adopt(row.id, m);
        throw e;
      }
      this.s.store.setState(row.id, 'paused'); // the commit point: a crash before it leaves a stopped workspace and a swept file
      return { ...(await this.s.infoOf(this.s.mustGet(row.id))), pause_ms: Math.round(performance.now() - t0) };
    });
  }

  /** Brings a paused workspace back from its saved memory: processes continue; the guest clock is resynced. */
  async resume(c: Caller, input: WorkspaceRef, o: OpOptions = {}): Promise<WorkspaceInfo> {
    const row0 = this.s.resolve(c, input.workspace_id);
    return this.s.serial(row0.id, async () => {
      const row = this.s.mustGet(row0.id);
      assertState(row, 'resume');
      return this.resumeNow(row, o.signal);
    });
  }

  async resumeNow(row: WorkspaceRow, signal?: AbortSignal): Promise<WorkspaceInfo> {
    const file = snaps.memoryFile(this.s.snap, row.id);
    this.s.net.netSpec(false);
    try {
      await this.s.bootInto(row, false, signal, file);
    } catch (e) {
      this.s.store.setState(row.id, 'paused', { error: firstLine(e) });
      throw e;
    }
    await rm(file, { force: true });
    return this.s.infoOf(this.s.mustGet(row.id));
  }

  /** A memory snapshot's state file, after checking this QEMU can load it; undefined for a disk-only snapshot. */
  async memoryOf(s: SnapshotRow): Promise<string | undefined> {
    if (!s.has_memory) return undefined;
    const here = await this.s.rt.qemuVersion();
    if (s.qemu_version && s.qemu_version !== here) {
      throw new NotSupportedError(`snapshot "${s.name}" holds memory saved by QEMU ${s.qemu_version}; this host runs ${here}`,
        'restore or fork a disk-only snapshot instead, or run the same QEMU version', { snapshot: s.id, saved_by: s.qemu_version, qemu: here });
    }
    return snaps.snapMemory(this.s.snap, s);
  }

  async snapshotNow(id: string, input: { name: string; description?: string; include_memory?: boolean }, signal?: AbortSignal): Promise<SnapshotCreateOutput> {
    const row = this.s.mustGet(id);
    assertState(row, 'snapshot');
    const m = row.state === 'running' ? this.s.live.get(id) : undefined;
    if (row.state === 'running' && (!m || m.agent.isClosed)) throw new VmExitedError(`workspace "${row.name}" lost its VM`, { workspace: row.id });
    return snaps.takeSnapshot(this.s.snap, row, m, input, signal);
  }

}
