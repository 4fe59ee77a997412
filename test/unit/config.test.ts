import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { loadConfig, resolveConfig } from '../../src/core/config.js';
import { IsletError } from '../../src/core/errors.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'islet-cfg-'));
const file = (name: string, text: string) => { const p = path.join(dir, name); writeFileSync(p, text); return p; };
const configError = (re: RegExp) => (e: unknown) => e instanceof IsletError && e.code === 'CONFIG_INVALID' && re.test(e.message);

test('defaults', () => {
  const c = resolveConfig({});
  assert.equal(c.vm.accel, 'auto');
  assert.equal(c.vm.tcg_tb_size_mb, 32);
  assert.equal(c.resources.default_memory_mb, 256);
  assert.ok(path.isAbsolute(c.paths.dataDir) && c.paths.cacheDir.startsWith(c.paths.dataDir));
});

test('a TOML file is parsed and paths resolved', () => {
  const c = loadConfig(file('ok.toml', '[storage]\ndata_dir = "/srv/islet"\n[vm]\naccel = "tcg"\n'));
  assert.equal(c.vm.accel, 'tcg');
  assert.equal(c.paths.cacheDir, '/srv/islet/cache');
});

test('unknown keys are rejected with their section', () => {
  assert.throws(() => loadConfig(file('u.toml', '[vm]\nacel = "tcg"\n')), configError(/unknown key\(s\) "acel" in \[vm\]/));
  assert.throws(() => loadConfig(file('s.toml', '[bogus]\nx = 1\n')), configError(/"bogus"/));
});

test('bad values name the key and what is allowed', () => {
  assert.throws(() => loadConfig(file('b.toml', '[vm]\naccel = "xen"\n')), configError(/vm\.accel/));
  assert.throws(() => loadConfig(file('r.toml', '[vm]\nboot_timeout_ms = 5\n')), configError(/vm\.boot_timeout_ms/));
  assert.throws(() => loadConfig(file('p.toml', '[storage]\ndata_dir = "relative"\n')), configError(/absolute/));
});

test('unreadable and invalid TOML files are config errors', () => {
  assert.throws(() => loadConfig(path.join(dir, 'missing.toml')), configError(/cannot read/));
  assert.throws(() => loadConfig(file('bad.toml', '[vm\n')), configError(/not valid TOML/));
});
