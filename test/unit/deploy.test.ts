// deploy/: the systemd unit passes `systemd-analyze verify` (where systemd is
// installed) once its ExecStart names a real executable, and the package
// exposes the SDK as `islet/sdk` with a build step for installs from git.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

const hasSystemd = spawnSync('systemd-analyze', ['--version']).status === 0;

test('the systemd unit verifies', { skip: hasSystemd ? false : 'systemd-analyze is not installed' }, () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'islet-unit-'));
  try {
    const unit = readFileSync('deploy/islet.service', 'utf8');
    assert.match(unit, /@ISLET_BIN@/);
    const ok = path.join(dir, 'islet.service');
    writeFileSync(ok, unit.replace('@ISLET_BIN@', path.resolve('bin/islet.js')));
    const r = spawnSync('systemd-analyze', ['verify', ok], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    // The check can fail: a unit naming a missing program does not verify.
    const bad = path.join(dir, 'bad.service');
    writeFileSync(bad, unit.replace('@ISLET_BIN@', path.join(dir, 'no-such-islet')));
    assert.notEqual(spawnSync('systemd-analyze', ['verify', bad], { encoding: 'utf8' }).status, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('package.json exports islet/sdk and builds dist on install from a checkout', async () => {
  const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { exports: Record<string, { default: string; types: string }>; scripts: Record<string, string>; bin: Record<string, string> };
  assert.equal(pkg.bin.islet, 'bin/islet.js');
  assert.match(pkg.scripts.prepare ?? '', /tsc/);
  const sdk = pkg.exports['./sdk'];
  assert.ok(sdk);
  const mod = await import(path.resolve(sdk.default)) as Record<string, unknown>;
  for (const name of ['Islet', 'ApiClient', 'WorkspaceNotFoundError', 'StateConflictError', 'DaemonUnavailableError']) assert.equal(typeof mod[name], 'function', name);
  assert.ok(readFileSync(path.resolve(sdk.types), 'utf8').includes('class Islet'));
});
