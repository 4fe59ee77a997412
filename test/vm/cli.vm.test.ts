// The CLI as a user runs it: real processes, real VMs.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { vmEnv } from './factory.js';

// A private data dir: the CLI finds it through $ISLET_CONFIG.
const env = vmEnv('cli');
const bin = path.resolve('bin/islet.js');
const islet = (args: string[], input?: string) =>
  spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', input, timeout: 300_000, env: env.childEnv() });

describe('islet CLI', { timeout: 900_000 }, () => {
  test('islet run streams output and exits with the command\'s code', () => {
    const r = islet(['run', '-q', '--', 'sh', '-c', 'uname -s; echo to-stderr >&2; exit 7']);
    assert.equal(r.stdout, 'Linux\n');
    assert.match(r.stderr, /to-stderr/);
    assert.equal(r.status, 7, r.stderr);
  });

  test('islet run --sh and --stdin', () => {
    const r = islet(['run', '-q', '-i', '--sh', 'tr a-z A-Z'], 'hello guest\n');
    assert.equal(r.stdout, 'HELLO GUEST\n', r.stderr);
    assert.equal(r.status, 0);
  });

  test('islet run with no command is a usage error', () => {
    const r = islet(['run']);
    assert.equal(r.status, 64);
    assert.match(r.stderr, /error\[INVALID_ARGUMENT\]: no command given/);
  });

  test('islet check passes here and reports JSON', () => {
    const r = islet(['check', '--json']);
    assert.equal(r.status, 0, r.stdout);
    const v = JSON.parse(r.stdout) as { ok: boolean; checks: Array<{ name: string; ok: boolean }> };
    assert.equal(v.ok, true);
    assert.ok(v.checks.find((c) => c.name === 'kernel')?.ok);
    assert.match(JSON.stringify(v.checks.find((c) => c.name === 'kvm')), /accelerator (kvm|tcg)/);
  });

  test('islet check fails clearly when the kernel path is wrong', (t) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'islet-check-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const cfg = path.join(dir, 'islet.toml');
    writeFileSync(cfg, '[vm]\nkernel_path = "/nonexistent/vmlinux"\n');
    const r = islet(['check', '--no-canary', '--config', cfg]);
    assert.equal(r.status, 1);
    assert.match(r.stdout, /\[FAIL\] kernel: .*\/nonexistent\/vmlinux/);
    const bad = path.join(dir, 'bad.toml');
    writeFileSync(bad, '[vm]\nkernal_path = "/x"\n');
    const r2 = islet(['check', '--config', bad]);
    assert.equal(r2.status, 64);
    assert.match(r2.stderr, /error\[CONFIG_INVALID\].*unknown key\(s\) "kernal_path" in \[vm\]/);
  });
  // islet run's VM under Ctrl-C, SIGKILL of the CLI and of the daemon: run.vm.test.ts.
});
