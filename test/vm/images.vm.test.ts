// `islet image` as a user runs it: real builds (cached), real VMs.
// dev is here too because it builds in under a minute on this host (about
// 40 s from scratch, 20 s to verify under TCG); heavier images are left to
// `npm run test:images`.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { loadConfig } from '../../src/core/config.js';
import { vmEnv } from './factory.js';

// The verify VMs run on a private data dir (found through $ISLET_CONFIG); builds land in the shared cache.
const vm = vmEnv('images');
const bin = path.resolve('bin/islet.js');
const islet = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 900_000, env: vm.childEnv(env) });
const MiB = 1024 * 1024;

describe('islet image', { timeout: 1_800_000 }, () => {
  test('verify base: every check passes', () => {
    const r = islet(['image', 'verify', 'base']);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    for (const name of ['agent answers', '/ is ext4 and writable']) assert.match(r.stdout, new RegExp(`^\\[PASS\\] ${name} `, 'm'));
    assert.doesNotMatch(r.stdout, /\[FAIL\]/);
    assert.match(r.stdout, /base: (\d+)\/\1 checks passed/);
  });

  test('a failing check prints [FAIL] and exits 1; editing checks does not rebuild', (t) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'islet-images-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    cpSync(path.resolve('images/base'), path.join(dir, 'base'), { recursive: true });
    const file = path.join(dir, 'base', 'recipe.json');
    const recipe = JSON.parse(readFileSync(file, 'utf8')) as { verify: unknown[] };
    recipe.verify.push({ name: 'deliberately wrong', run: 'echo 3', expect: '4' });
    writeFileSync(file, JSON.stringify(recipe));
    const r = islet(['image', 'verify', 'base'], { ISLET_IMAGES_DIR: dir });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /^\[PASS\] agent answers /m);
    assert.match(r.stdout, /^\[FAIL\] deliberately wrong .*expected "4" in stdout, got "3"/m);
    assert.match(r.stderr, /image base: cached/, 'verify checks are not part of the cache key');
  });

  test('build and verify dev: C, C++, Python, Node.js and git really run', () => {
    const b = islet(['image', 'build', 'dev', '--json']);
    assert.equal(b.status, 0, b.stderr);
    const built = JSON.parse(b.stdout) as { usedBytes: number; chain: string[]; ms: number };
    assert.deepEqual(built.chain, ['base', 'dev']);
    process.stderr.write(`dev: ${(built.usedBytes / MiB).toFixed(1)} MiB, ensured in ${(built.ms / 1000).toFixed(1)} s\n`);
    const r = islet(['image', 'verify', 'dev', '--no-build']);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    for (const name of ['gcc compiles and runs a C hello world', 'Python 3 runs a script', 'Node.js runs a script', 'git commits in a new repository']) {
      assert.match(r.stdout, new RegExp(`^\\[PASS\\] ${name} `, 'm'));
    }
  });

  test('list shows base and dev with parent, size and recipe hash', () => {
    const r = islet(['image', 'list', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as Array<{ name: string; parent: string | null; usedBytes: number; key: string; built: boolean }>;
    const base = rows.find((x) => x.name === 'base');
    const dev = rows.find((x) => x.name === 'dev');
    assert.ok(base?.built && dev?.built, r.stdout);
    assert.ok(base.usedBytes < 100 * MiB, `base is ${base.usedBytes} bytes`);
    assert.equal(dev.parent, 'base');
    assert.match(dev.key, /^[0-9a-f]{16}$/);
    assert.match((dev as { kernel?: string }).kernel ?? '', /^(distro|custom|path) \S+/, 'the kernel a workspace of it boots');
    const text = islet(['image', 'list']);
    assert.match(text.stdout, / RECIPE HASH +KERNEL /);
    assert.match(text.stdout, /^NAME +PARENT +INIT +SIZE +REFERENCE/);
    assert.match(text.stdout, /^dev +base +fast +\d/m);
    // The size beside agentkernel's for the like image (catalog.ts REFERENCE_SIZES).
    assert.match(text.stdout, /^base +- +fast +[\d.]+ MiB +~64 MB /m);
    assert.equal((base as { referenceMB?: number }).referenceMB, 64);
  });

  test('rm is refused while a workspace uses the image, and fails clearly when nothing is built', (t) => {
    // A scratch data dir with its own state DB; the cache stays the real one, so nothing built is touched.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'islet-image-rm-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const cfg = path.join(dir, 'islet.toml');
    writeFileSync(cfg, `[storage]\ndata_dir = "${dir}"\ncache_dir = "${loadConfig().paths.cacheDir}"\n`);
    const db = new Database(path.join(dir, 'state.db'));
    db.exec('CREATE TABLE workspaces (id TEXT PRIMARY KEY, name TEXT, state TEXT, image TEXT, created_at TEXT)');
    db.prepare('INSERT INTO workspaces VALUES (?, ?, ?, ?, ?)').run('ws-1', 'web', 'stopped', 'no-such-image', 'now');
    db.close();
    const r = islet(['image', 'rm', 'no-such-image', '--config', cfg]);
    assert.equal(r.status, 75, r.stderr); // STATE_CONFLICT: not a bug (docs/cli.md)
    assert.match(r.stderr, /error\[STATE_CONFLICT\]: image "no-such-image" is used by 1 workspace\(s\): web \(ws-1, stopped\)/);
    const r2 = islet(['image', 'rm', 'never-built', '--config', cfg]);
    assert.equal(r2.status, 66, r2.stderr);
    assert.match(r2.stderr, /error\[IMAGE_NOT_FOUND\]: image "never-built" has no build to remove/);
  });

  test('import registers a real ext4 + vmlinux, and refuses a non-ext4 file, a missing kernel and a path outside', (t) => {
    // Scratch data and cache dirs: the import lands there, not in the real cache.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'islet-image-import-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const cfg = path.join(dir, 'islet.toml');
    writeFileSync(cfg, `[storage]\ndata_dir = "${dir}"\ncache_dir = "${path.join(dir, 'cache')}"\n`);
    const real = loadConfig().paths.cacheDir;
    const cur = (kind: string) => path.join(real, kind, readFileSync(path.join(real, kind, 'current'), 'utf8').trim());
    const kernel = path.join(dir, 'vmlinux');
    const rootfs = path.join(dir, 'base.ext4');
    copyFileSync(path.join(cur('kernel'), 'vmlinux'), kernel);
    copyFileSync(path.join(cur('images/base'), 'rootfs.ext4'), rootfs);
    const ok = islet(['image', 'import', 'my-base', '--kernel', kernel, '--rootfs', rootfs, '--config', cfg, '--json']);
    assert.equal(ok.status, 0, ok.stderr);
    const r = JSON.parse(ok.stdout) as { rootfs: string; hasAgent: boolean | null };
    assert.ok(r.rootfs.startsWith(path.join(dir, 'cache', 'images', 'my-base')), r.rootfs);
    assert.notEqual(r.hasAgent, false, 'base has the agent');
    const list = JSON.parse(islet(['image', 'list', '--json', '--config', cfg]).stdout) as Array<{ name: string; built: boolean }>;
    assert.ok(list.find((x) => x.name === 'my-base')?.built);

    const notExt4 = islet(['image', 'import', 'x', '--kernel', kernel, '--rootfs', kernel, '--config', cfg]);
    assert.equal(notExt4.status, 64, notExt4.stderr);
    assert.match(notExt4.stderr, /error\[INVALID_ARGUMENT\]: rootfs .* is not an ext4 filesystem/);
    const missing = islet(['image', 'import', 'x', '--kernel', path.join(dir, 'nope'), '--rootfs', rootfs, '--config', cfg]);
    assert.equal(missing.status, 66, missing.stderr);
    assert.match(missing.stderr, /error\[FILE_NOT_FOUND\]: kernel .* does not exist/);
    symlinkSync('/etc/hostname', path.join(dir, 'escape.ext4'));
    const outside = islet(['image', 'import', 'x', '--kernel', kernel, '--rootfs', path.join(dir, 'escape.ext4'), '--config', cfg], { HOME: dir });
    assert.equal(outside.status, 64, outside.stderr);
    assert.match(outside.stderr, /error\[PATH_OUTSIDE_ALLOWED\]/);
  });
});
