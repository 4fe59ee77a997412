// `islet ws snapshot create|list|restore|delete`, `islet ws fork`,
// `islet ws pause|resume`: the snapshot operations of the service, one
// method per subcommand, like the rest of `islet ws`.
import { Command } from 'commander';
import { ForkInput, SnapshotCreateInput, SnapshotRefInput } from '../../core/schemas.js';
import type { SnapshotInfo, SnapshotListOutput } from '../../service/types.js';
import { age, json } from './format.js';
import { Common, common, infoLines, ref, validate, withService } from './ws-common.js';

/** The snapshots as a tree (parent above child), the one the disk builds on marked with "*". */
export function snapshotTree(list: SnapshotListOutput): string {
  if (list.snapshots.length === 0) return 'no snapshots\n';
  const ids = new Set(list.snapshots.map((s) => s.snapshot_id));
  const children = new Map<string | null, SnapshotInfo[]>();
  for (const s of list.snapshots) {
    // A parent outside this list (a fork's source snapshot) makes this a root here.
    const p = s.parent_id !== null && ids.has(s.parent_id) ? s.parent_id : null;
    children.set(p, [...(children.get(p) ?? []), s]);
  }
  const out: string[] = [];
  const walk = (parent: string | null, depth: number) => {
    for (const s of children.get(parent) ?? []) {
      const mark = s.snapshot_id === list.current_snapshot_id ? '*' : ' ';
      const size = s.size_bytes == null ? '-' : `${(s.size_bytes / 2 ** 20).toFixed(1)} MiB`;
      const flags = [s.has_memory ? 'memory' : 'disk', `${size}`, `${age(s.created_at)} ago`].join(', ');
      out.push(`${mark} ${'  '.repeat(depth)}${s.name} (${s.snapshot_id}) [${flags}]${s.description ? ` ${s.description}` : ''}`);
      walk(s.snapshot_id, depth + 1);
    }
  };
  walk(null, 0);
  return `${out.join('\n')}\n`;
}

export function registerWsSnapshots(ws: Command): void {
  const snap = ws.command('snapshot').description('named checkpoints of a workspace: create, list, restore, delete');

  common(snap.command('create').description('snapshot a workspace\'s disk (and memory with --memory); a running one keeps running'))
    .argument('<id>', 'workspace id or name')
    .argument('<name>', 'snapshot name, unique in the workspace')
    .option('--description <text>', 'free text shown by snapshot list')
    .option('--memory', 'also save the running guest\'s memory, so restore and fork resume its processes')
    .action(async (id: string, name: string, f: Common & { description?: string; memory?: boolean }) => {
      const input = validate(SnapshotCreateInput, { workspace_id: id, name, description: f.description, include_memory: f.memory === true },
        { workspace_id: '<id>', name: '<name>', description: '--description' });
      const r = await withService(f, (svc, c, signal) => svc.snapshotCreate(c, input, { signal }));
      if (f.json) json(r);
      else process.stdout.write(`snapshot ${r.name} (${r.snapshot_id}) of ${r.workspace_id}: ${r.has_memory ? 'disk and memory' : 'disk'}, ${r.live ? 'live' : 'stopped'}, ${r.duration_ms} ms\n`);
    });

  common(snap.command('list').description('a workspace\'s snapshots as a tree; * marks the one its disk builds on'))
    .argument('<id>', 'workspace id or name')
    .action(async (id: string, f: Common) => {
      const input = ref(id);
      const r = await withService(f, (svc, c) => svc.snapshotList(c, input));
      if (f.json) json(r); else process.stdout.write(snapshotTree(r));
    });

  common(snap.command('restore').description('roll a workspace back to a snapshot (a running one is restarted)'))
    .argument('<id>', 'workspace id or name')
    .argument('<snapshot>', 'snapshot name or id')
    .action(async (id: string, snapshot: string, f: Common) => {
      const input = validate(SnapshotRefInput, { workspace_id: id, snapshot }, { workspace_id: '<id>', snapshot: '<snapshot>' });
      const r = await withService(f, (svc, c, signal) => svc.snapshotRestore(c, input, { signal }));
      if (f.json) json(r);
      else {
        const how = r.memory_restored ? 'processes resumed from memory' : r.restarted ? 'rebooted' : 'disk rolled back';
        process.stdout.write(`${r.workspace_id} restored to ${r.snapshot_id}: ${how}, now ${r.state}, ${r.duration_ms} ms\n`);
      }
    });

  common(snap.command('delete').description('delete a snapshot (refused while a later snapshot or a fork depends on it)'))
    .argument('<id>', 'workspace id or name')
    .argument('<snapshot>', 'snapshot name or id')
    .action(async (id: string, snapshot: string, f: Common) => {
      const input = validate(SnapshotRefInput, { workspace_id: id, snapshot }, { workspace_id: '<id>', snapshot: '<snapshot>' });
      const r = await withService(f, (svc, c, signal) => svc.snapshotDelete(c, input, { signal }));
      if (f.json) json(r); else process.stdout.write(`deleted snapshot ${r.snapshot_id} of ${r.workspace_id}\n`);
    });

  common(ws.command('fork').description('a new independent workspace from a snapshot (default: one taken now)'))
    .argument('<id>', 'source workspace id or name')
    .option('--snapshot <snapshot>', 'the source\'s snapshot to fork from')
    .option('--name <name>', 'the fork\'s name, also its hostname')
    .action(async (id: string, f: Common & { snapshot?: string; name?: string }) => {
      const input = validate(ForkInput, { workspace_id: id, snapshot: f.snapshot, name: f.name },
        { workspace_id: '<id>', snapshot: '--snapshot', name: '--name' });
      const w = await withService(f, (svc, c, signal) => svc.fork(c, input, { signal }));
      if (f.json) json(w); else process.stdout.write(infoLines(w));
    });

  common(ws.command('pause').description('save a running workspace\'s memory to disk and free its host memory'))
    .argument('<id>', 'workspace id or name')
    .action(async (id: string, f: Common) => {
      const input = ref(id);
      const w = await withService(f, (svc, c, signal) => svc.pause(c, input, { signal }));
      if (f.json) json(w); else process.stdout.write(`${w.name} (${w.workspace_id}): ${w.state} in ${w.pause_ms} ms\n`);
    });

  common(ws.command('resume').description('bring a paused workspace back with its processes'))
    .argument('<id>', 'workspace id or name')
    .action(async (id: string, f: Common) => {
      const input = ref(id);
      const w = await withService(f, (svc, c, signal) => svc.resume(c, input, { signal }));
      if (f.json) json(w); else process.stdout.write(`${w.name} (${w.workspace_id}): ${w.state}\n`);
    });
}
