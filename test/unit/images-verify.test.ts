// The verify runner's verdicts, the unit enabling script, and the check that
// keeps `islet image rm` from pulling an image out from under a workspace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readlinkSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { enableUnitArgv } from '../../src/images/systemd.js';
import { judge, runVerify } from '../../src/images/verify.js';
import { workspacesUsing } from '../../src/surfaces/cli/image.js';

const res = (o: Partial<{ exitCode: number | null; signal: string | null; timedOut: boolean; stdout: string; stderr: string }>) => ({
  exitCode: o.exitCode === undefined ? 0 : o.exitCode, signal: o.signal ?? null, timedOut: o.timedOut ?? false,
  stdout: Buffer.from(o.stdout ?? ''), stderr: Buffer.from(o.stderr ?? ''), durationMs: 5,
});

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'islet-verify-'));
  t.after(() => rm(d, { recursive: true, force: true }));
  return d;
}

test('judge: exit status, expected output, timeouts', () => {
  const c = { name: 'py', run: 'python3 -c "print(2)"', expect: '2' };
  assert.deepEqual(judge(c, res({ stdout: '2\n' })), { name: 'py', ok: true, detail: '2', durationMs: 5 });
  assert.match(judge(c, res({ stdout: '3\n' })).detail, /expected "2" in stdout, got "3"/);
  assert.match(judge(c, res({ exitCode: 127, stderr: 'sh: python3: not found\n' })).detail, /exit 127: sh: python3: not found/);
  assert.match(judge(c, res({ exitCode: null, signal: 'SIGKILL' })).detail, /killed by SIGKILL/);
  assert.match(judge({ ...c, timeoutMs: 5000 }, res({ timedOut: true, exitCode: null })).detail, /timed out after 5000 ms/);
  assert.equal(judge({ name: 'n', run: 'true' }, res({})).ok, true);
});

test('runVerify runs every check even after failures, and reports an exec error as a failure', async () => {
  const seen: string[] = [];
  const m = {
    async exec(req: { shell: string; timeoutMs?: number }) {
      seen.push(`${req.shell}@${req.timeoutMs}`);
      if (req.shell === 'boom') throw new Error('agent gone');
      return res({ exitCode: req.shell === 'false' ? 1 : 0, stdout: 'ok\n' });
    },
  };
  const lines: string[] = [];
  const out = await runVerify(m, [
    { name: 'a', run: 'false' }, { name: 'b', run: 'boom' }, { name: 'c', run: 'true', expect: 'ok', timeoutMs: 3000 },
  ], (r) => lines.push(`${r.ok ? 'PASS' : 'FAIL'} ${r.name}`));
  assert.deepEqual(lines, ['FAIL a', 'FAIL b', 'PASS c']);
  assert.match(out[1]?.detail ?? '', /could not run: agent gone/);
  assert.deepEqual(seen, ['false@120000', 'boom@120000', 'true@3000']);
});

test('enableUnitArgv links a unit into multi-user.target.wants, and fails for a missing unit', async (t) => {
  const tree = await tempDir(t);
  await mkdir(path.join(tree, 'lib/systemd/system'), { recursive: true });
  await writeFile(path.join(tree, 'lib/systemd/system/ssh.service'), '[Unit]\n');
  const [cmd, ...args] = enableUnitArgv(tree, 'ssh.service');
  const r = spawnSync(cmd!, args, { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(readlinkSync(path.join(tree, 'etc/systemd/system/multi-user.target.wants/ssh.service')), '/lib/systemd/system/ssh.service');
  const [cmd2, ...args2] = enableUnitArgv(tree, 'nope.service');
  const r2 = spawnSync(cmd2!, args2, { encoding: 'utf8' });
  assert.equal(r2.status, 1);
  assert.match(r2.stderr, /no unit file nope\.service in the image/);
});

test('workspacesUsing reads the state DB read-only and ignores destroyed workspaces', async (t) => {
  const d = await tempDir(t);
  const file = path.join(d, 'state.db');
  assert.deepEqual(workspacesUsing(file, 'dev'), [], 'no DB yet');
  const db = new Database(file);
  db.exec('CREATE TABLE workspaces (id TEXT PRIMARY KEY, name TEXT, state TEXT, image TEXT, created_at TEXT)');
  const ins = db.prepare('INSERT INTO workspaces VALUES (?, ?, ?, ?, ?)');
  ins.run('ws-1', 'one', 'running', 'dev', '1');
  ins.run('ws-2', 'two', 'destroyed', 'dev', '2');
  ins.run('ws-3', 'three', 'stopped', 'dev', '3');
  ins.run('ws-4', 'four', 'running', 'base', '4');
  db.close();
  assert.deepEqual(workspacesUsing(file, 'dev').map((w) => w.id), ['ws-1', 'ws-3']);
  assert.deepEqual(workspacesUsing(file, 'python'), []);
  assert.ok(existsSync(file));
});
