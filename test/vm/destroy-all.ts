// Destroying everything a data dir holds, without node:test: the factory
// uses it in-process, and cleanup-child.ts uses it in a process started under
// a prefix (ip netns exec), where the host's network must not be touched.
import { IsletError } from '../../src/core/errors.js';
import type { WorkspaceService } from '../../src/service/workspaces.js';

const ADMIN = { owner: 'vm-test-factory', admin: true };

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
