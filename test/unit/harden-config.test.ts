// Issue 12: contradictory config, unbounded config reads, and names that
// could be mistaken for ids are refused with coded errors.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { loadConfig, resolveConfig } from '../../src/core/config.js';
import { IsletError } from '../../src/core/errors.js';
import { SnapshotCreateInput, CreateInput, ForkInput } from '../../src/core/schemas.js';

const configError = (re: RegExp) => (e: unknown) => e instanceof IsletError && e.code === 'CONFIG_INVALID' && re.test(e.message);

test('contradictory pairs are refused, naming both keys (issue 12 #9)', () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ resources: { default_memory_mb: 8192, max_memory_mb: 4096 } }, /resources\.default_memory_mb.*max_memory_mb/],
    [{ resources: { default_vcpus: 8, max_vcpus: 4 } }, /resources\.default_vcpus.*max_vcpus/],
    [{ resources: { default_disk_gb: 100, max_disk_gb: 64 } }, /resources\.default_disk_gb.*max_disk_gb/],
    [{ resources: { max_workspaces: 4, max_workspaces_per_owner: 8 } }, /max_workspaces_per_owner.*max_workspaces/],
    [{ pool: { min_size: 5, max_size: 2 } }, /pool\.min_size.*max_size/],
    [{ pool: { target_free: 5, max_size: 2 } }, /pool\.target_free.*max_size/],
    [{ server: { tokens: [{ token: 'a'.repeat(16), owner: 'alice' }, { token: 'a'.repeat(16), owner: 'bob' }] } }, /server\.tokens\.1\.token.*one owner/],
  ];
  for (const [raw, re] of cases) assert.throws(() => resolveConfig(raw), configError(re), JSON.stringify(raw));
  resolveConfig({ resources: { default_memory_mb: 1024, max_memory_mb: 1024 }, pool: { min_size: 2, max_size: 2 } });
});

test('--config reads are bounded and never hang: /dev/zero, a FIFO, a huge file (issue 12 #8)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'islet-cfg-'));
  const fifo = path.join(dir, 'fifo.toml');
  execFileSync('mkfifo', [fifo]);
  const big = path.join(dir, 'big.toml');
  writeFileSync(big, `# ${'x'.repeat(2 << 20)}\n`);
  assert.throws(() => loadConfig('/dev/zero'), configError(/not a regular file/));
  assert.throws(() => loadConfig(fifo), configError(/not a regular file/));
  assert.throws(() => loadConfig(big), configError(/over \d+ bytes/));
});

test('names that look like ids are refused, so ids and names never collide (issue 12 #5)', () => {
  assert.equal(CreateInput.safeParse({ name: 'ws-0123abcd' }).success, false);
  assert.equal(ForkInput.safeParse({ workspace_id: 'a', name: 'ws-x' }).success, false);
  assert.equal(CreateInput.safeParse({ name: 'my-ws-1' }).success, true);
  for (const n of ['snap-0123abcd', 'SNAP-1', 'snap-']) {
    assert.equal(SnapshotCreateInput.safeParse({ workspace_id: 'a', name: n }).success, false, n);
  }
  assert.equal(SnapshotCreateInput.safeParse({ workspace_id: 'a', name: 'before-snap-1' }).success, true);
});
