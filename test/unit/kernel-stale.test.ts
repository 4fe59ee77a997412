// `islet check`'s warning for a custom kernel built from another fragment
// than images/kernel/microvm.config has today, and the source-tree cleanup
// after a kernel build. Real files in a temp cache; nothing compiles.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { resolveConfig } from '../../src/core/config.js';
import { cached, setCurrent } from '../../src/images/cache.js';
import { customKernelDir, loadFragment, removeSourceTree, staleCustomKernel } from '../../src/images/custom-kernel.js';
import { runChecks } from '../../src/service/check.js';

test('a custom kernel built from another fragment is stale, by content; check warns with the options that differ', async (t) => {
  const d = await mkdtemp(path.join(os.tmpdir(), 'islet-kstale-'));
  t.after(() => rm(d, { recursive: true, force: true }));
  const config = resolveConfig({ storage: { data_dir: d, cache_dir: path.join(d, 'cache') } });
  assert.equal(await staleCustomKernel(config), undefined, 'nothing built');
  const dir = customKernelDir(config);
  const build = async (key: string, fragment: Record<string, string>) => {
    await cached(dir, key, async (tmp) => {
      await writeFile(path.join(tmp, 'vmlinux'), 'ELF');
      return { recipe: { fragment }, info: { release: '6.1.1-islet' } };
    });
    await setCurrent(dir, key);
  };
  const now = Object.fromEntries(await loadFragment());
  await build('a'.repeat(16), now);
  assert.deepEqual((await staleCustomKernel(config))?.changed, []);
  const [sym, val] = Object.entries(now)[0] ?? ['', ''];
  await build('b'.repeat(16), { ...now, [sym]: val === 'y' ? 'n' : 'y', CONFIG_ISLET_GONE: 'y' });
  assert.deepEqual((await staleCustomKernel(config))?.changed, [sym, 'CONFIG_ISLET_GONE'].sort());
  const checks = await runChecks(config);
  const c = checks.find((x) => x.name === 'custom kernel vs its config fragment');
  assert.ok(c, checks.map((x) => x.name).join(', '));
  assert.equal(c.ok, false);
  assert.equal(c.required, false, 'a warning, not a failure');
  assert.match(c.detail, /older than .*microvm\.config: 2 option\(s\) differ/);
  assert.match(c.hint ?? '', /islet kernel build/);
});

test('removeSourceTree drops the unpacked source and keeps the build dir and the entries', async (t) => {
  const d = await mkdtemp(path.join(os.tmpdir(), 'islet-ksrc-'));
  t.after(() => rm(d, { recursive: true, force: true }));
  await mkdir(path.join(d, 'source', 'linux-source-6.1'), { recursive: true });
  await writeFile(path.join(d, 'source', 'linux-source-6.1', 'Makefile'), 'x');
  await mkdir(path.join(d, 'build'));
  await removeSourceTree(d);
  assert.ok(!existsSync(path.join(d, 'source')));
  assert.ok(existsSync(path.join(d, 'build')));
});
