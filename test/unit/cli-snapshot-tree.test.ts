// The snapshot tree `islet ws snapshot list` prints: children under their
// parent, the current one starred, a fork's foreign parent shown as a root.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SnapshotInfo } from '../../src/service/types.js';
import { snapshotTree } from '../../src/surfaces/cli/ws-snapshot.js';

const at = new Date(Date.now() - 90_000).toISOString();
const snap = (id: string, name: string, parent: string | null, o: Partial<SnapshotInfo> = {}): SnapshotInfo => ({
  snapshot_id: id, workspace_id: 'ws-1', name, description: null, parent_id: parent, created_at: at, size_bytes: 3 * 2 ** 20, has_memory: false, ...o,
});

test('children are indented under their parent and the current one is starred', () => {
  const out = snapshotTree({
    workspace_id: 'ws-1', current_snapshot_id: 'b',
    snapshots: [snap('a', 'one', 'foreign-parent'), snap('b', 'two', 'a', { has_memory: true, description: 'with memory' }), snap('c', 'three', 'a')],
  });
  assert.equal(out, [
    '  one (a) [disk, 3.0 MiB, 1m ago]',
    '*   two (b) [memory, 3.0 MiB, 1m ago] with memory',
    '    three (c) [disk, 3.0 MiB, 1m ago]',
    '',
  ].join('\n'));
});

test('an empty list says so', () => {
  assert.equal(snapshotTree({ workspace_id: 'ws-1', current_snapshot_id: null, snapshots: [] }), 'no snapshots\n');
});
