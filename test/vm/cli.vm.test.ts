// The CLI as a user runs it: real processes, real VMs.
import assert from 'node:assert/strict';
import { type spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Runtime } from '../../src/service/runtime.js';
import { vmEnv } from './factory.js';

// A private data dir: the CLI finds it through $ISLET_CONFIG.
const env = vmEnv('cli');
const bin = path.resolve('bin/islet.js');
const islet = (args: string[], input?: string) =>
  spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', input, timeout: 300_000, env: env.childEnv() });
const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };
const vmDirs = () => {
  try { return readdirSync(path.join(env.config.paths.runDir, 'vm')); } catch { return []; }
};

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

  test('interrupting islet run destroys its VM; a killed islet\'s VM is swept', async () => {
    const before = new Set(vmDirs());
    const waitVm = async (child: ReturnType<typeof spawn>) => {
      let err = '';
      child.stderr?.on('data', (c: Buffer) => { err += c.toString(); });
      for (let i = 0; i < 1200 && !/VM \w+ ready/.test(err); i++) await new Promise((r) => setTimeout(r, 100));
      assert.match(err, /VM (\w+) ready/);
      const id = /VM (\w+) ready/.exec(err)![1]!;
      const pid = Number(readFileSync(path.join(env.config.paths.runDir, 'vm', id, 'qemu.pid'), 'utf8'));
      return { id, pid };
    };
    // SIGINT: islet cancels the command and destroys the VM itself.
    const a = env.spawn(process.execPath, [bin, 'run', '--', 'sleep', '300'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const va = await waitVm(a);
    a.kill('SIGINT');
    const codeA = await new Promise<number | null>((r) => a.once('exit', (c) => r(c)));
    assert.equal(codeA, 130);
    assert.equal(alive(va.pid), false, 'QEMU outlived an interrupted islet run');
    assert.ok(!vmDirs().includes(va.id));

    // SIGKILL: nothing can clean up in-process; QEMU dies with the exit hook
    // or, failing that, the next islet sweeps it by its owner record.
    const b = env.spawn(process.execPath, [bin, 'run', '--', 'sleep', '300'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const vb = await waitVm(b);
    b.kill('SIGKILL');
    await new Promise((r) => b.once('exit', r));
    await Runtime.open(env.config);
    for (let i = 0; i < 50 && alive(vb.pid); i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(alive(vb.pid), false, 'orphan QEMU was not swept');
    assert.ok(!vmDirs().includes(vb.id));
    assert.deepEqual(vmDirs().filter((d) => !before.has(d)), []);
  });
});
