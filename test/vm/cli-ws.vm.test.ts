// `islet ws` and `islet status` as a user runs them: every step a separate
// process, so each one reattaches to the VM the previous one left running.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, test } from 'node:test';
import { vmEnv } from './factory.js';

// A fresh data dir (its own state database) and the real cache, so the
// images `islet setup` built are reused; the CLI finds it through $ISLET_CONFIG.
const env = vmEnv('cli-ws');
const bin = path.resolve('bin/islet.js');
const islet = (args: string[], input?: string | Buffer) => {
  const r = spawnSync(process.execPath, [bin, ...args], { input, timeout: 300_000, maxBuffer: 64 << 20, env: env.childEnv() });
  return { status: r.status, stdout: r.stdout, out: r.stdout.toString('utf8'), err: r.stderr.toString('utf8') };
};
const ok = (args: string[], input?: string | Buffer) => {
  const r = islet(args, input);
  assert.equal(r.status, 0, `islet ${args.join(' ')} exited ${r.status}\n${r.err}`);
  return r;
};

interface Row { name: string; workspace_id: string; state: string; pid: number | null; pid_alive: boolean | null }
const statusOf = (name: string) => (JSON.parse(ok(['status', '--json']).out) as Row[]).find((w) => w.name === name);

describe('islet ws', { timeout: 900_000 }, () => {
  let id = '';

  test('create boots a workspace and reports it', () => {
    const r = ok(['ws', 'create', '--name', 't1', '--json']);
    const w = JSON.parse(r.out) as { name: string; workspace_id: string; state: string; owner: string };
    assert.equal(w.name, 't1');
    assert.equal(w.state, 'running');
    assert.equal(w.owner, 'local');
    id = w.workspace_id;
    const info = ok(['ws', 'info', 't1']).out;
    assert.match(info, /^name: +t1$/m);
    assert.match(info, new RegExp(`^id: +${id}$`, 'm'));
  });

  test('exec runs a command in the running workspace and exits with its code', () => {
    const r = ok(['ws', 'exec', 't1', '-q', '--', 'uname', '-s']);
    assert.equal(r.out, 'Linux\n');
    const f = islet(['ws', 'exec', 't1', '-q', '--sh', 'echo out; echo err >&2; exit 3']);
    assert.equal(f.status, 3, f.err);
    assert.equal(f.out, 'out\n');
    assert.match(f.err, /^err$/m);
    const j = JSON.parse(islet(['ws', 'exec', id, '-q', '--json', '-e', 'GREETING=hi', '--', 'sh', '-c', 'echo $GREETING']).out) as { exit_code: number; stdout: string };
    assert.deepEqual([j.exit_code, j.stdout], [0, 'hi\n']);
  });

  test('write and read round-trip binary content', () => {
    const bytes = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7) % 256));
    const w = JSON.parse(ok(['ws', 'write', 't1', '/root/blob.bin', '--json', '-q'], bytes).out) as { bytes: number };
    assert.equal(w.bytes, bytes.length);
    const r = ok(['ws', 'read', 't1', '/root/blob.bin', '-q']);
    assert.ok(r.stdout.equals(bytes), 'read returned different bytes');
    const missing = islet(['ws', 'read', 't1', '/root/nope', '-q']);
    assert.equal(missing.status, 66, missing.err);
    assert.match(missing.err, /error\[FILE_NOT_FOUND\]/);
  });

  test('snapshot create, list, restore: the file is back; an unknown snapshot is SNAPSHOT_NOT_FOUND', () => {
    const before = ok(['ws', 'read', 't1', '/root/blob.bin', '-q']).stdout;
    const s = JSON.parse(ok(['ws', 'snapshot', 'create', 't1', 's1', '--description', 'before the change', '--json', '-q']).out) as { snapshot_id: string; live: boolean };
    assert.equal(s.live, true);
    ok(['ws', 'exec', 't1', '-q', '--sh', 'echo changed > /root/blob.bin && sync']);
    const tree = ok(['ws', 'snapshot', 'list', 't1', '-q']).out;
    assert.match(tree, new RegExp(`^\\* s1 \\(${s.snapshot_id}\\) \\[disk, .*\\] before the change$`, 'm'));
    const r = ok(['ws', 'snapshot', 'restore', 't1', 's1', '-q']).out;
    assert.match(r, /restored to .*: rebooted, now running/);
    assert.ok(ok(['ws', 'read', 't1', '/root/blob.bin', '-q']).stdout.equals(before), 'restore did not bring the file back');
    const missing = islet(['ws', 'snapshot', 'delete', 't1', 'nope', '-q']);
    assert.notEqual(missing.status, 0);
    assert.match(missing.err, /error\[SNAPSHOT_NOT_FOUND\]/);
  });

  test('status (read-only) shows it running, then stopped', () => {
    const running = statusOf('t1');
    assert.equal(running?.workspace_id, id);
    assert.equal(running?.state, 'running');
    assert.equal(running?.pid_alive, true);
    ok(['ws', 'stop', 't1', '-q']);
    assert.equal(statusOf('t1')?.state, 'stopped');
    assert.match(ok(['status']).out, new RegExp(`^t1 +${id} +stopped `, 'm'));
  });

  test('destroy removes it; info then fails with WORKSPACE_NOT_FOUND', () => {
    assert.equal(ok(['ws', 'destroy', 't1', '-q']).out, `destroyed ${id}\n`);
    const r = islet(['ws', 'info', 't1']);
    assert.equal(r.status, 66, r.err);
    assert.match(r.err, /error\[WORKSPACE_NOT_FOUND\]/);
    assert.equal(statusOf('t1'), undefined);
  });
});
