import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { cached, cacheKey, canonicalJson, getCurrent, listEntries, setCurrent } from '../../src/images/cache.js';

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'islet-cache-test-'));
  t.after(() => rm(d, { recursive: true, force: true }));
  return d;
}

test('cacheKey ignores object key order but not array order', () => {
  assert.equal(cacheKey([{ a: 1, b: [1, 2] }]), cacheKey([{ b: [1, 2], a: 1 }]));
  assert.notEqual(cacheKey([{ a: 1, b: [1, 2] }]), cacheKey([{ a: 1, b: [2, 1] }]));
  assert.notEqual(cacheKey(['kernel', 1]), cacheKey(['kernel', '1']));
  assert.match(cacheKey(['x']), /^[0-9a-f]{16}$/);
  assert.equal(canonicalJson({ z: undefined, a: null }), '{"a":null}');
  assert.throws(() => canonicalJson([Number.NaN]));
});

test('cached builds once, records meta, and reuses the entry', async (t) => {
  const dir = await tempDir(t);
  let builds = 0;
  const build = async (tmp: string) => {
    builds++;
    await mkdir(path.join(tmp, 'sub'));
    await writeFile(path.join(tmp, 'a.bin'), Buffer.alloc(10));
    await writeFile(path.join(tmp, 'sub', 'b.bin'), Buffer.alloc(5));
    return { recipe: { v: 1 }, info: { note: 'x' } };
  };
  const first = await cached(dir, 'aaaaaaaaaaaaaaaa', build);
  assert.equal(first.reused, false);
  assert.deepEqual(first.meta.files, { 'a.bin': 10, 'sub/b.bin': 5 });
  assert.equal(first.meta.sizeBytes, 15);
  assert.deepEqual(first.meta.recipe, { v: 1 });
  assert.ok(first.meta.buildMs >= 0 && !Number.isNaN(Date.parse(first.meta.builtAt)));
  const onDisk = JSON.parse(await readFile(path.join(dir, 'aaaaaaaaaaaaaaaa', 'meta.json'), 'utf8'));
  assert.deepEqual(onDisk, first.meta);

  const second = await cached(dir, 'aaaaaaaaaaaaaaaa', build);
  assert.equal(second.reused, true);
  assert.equal(builds, 1);
  assert.deepEqual(await readdir(dir), ['aaaaaaaaaaaaaaaa']);
});

test('concurrent callers in one process share a single build', async (t) => {
  const dir = await tempDir(t);
  let builds = 0;
  const build = async (tmp: string) => {
    builds++;
    await new Promise((r) => setTimeout(r, 20));
    await writeFile(path.join(tmp, 'f'), 'x');
  };
  const [a, b] = await Promise.all([cached(dir, 'bbbbbbbbbbbbbbbb', build), cached(dir, 'bbbbbbbbbbbbbbbb', build)]);
  assert.equal(builds, 1);
  assert.equal(a.path, b.path);
});

test('a failed build leaves neither an entry nor a temp directory', async (t) => {
  const dir = await tempDir(t);
  await assert.rejects(cached(dir, 'cccccccccccccccc', async (tmp) => {
    await writeFile(path.join(tmp, 'half'), 'written before the crash');
    throw new Error('boom');
  }), /boom/);
  assert.deepEqual(await readdir(dir), []);
  // and the next attempt builds from scratch
  const e = await cached(dir, 'cccccccccccccccc', async (tmp) => { await writeFile(path.join(tmp, 'ok'), '1'); });
  assert.deepEqual(Object.keys(e.meta.files), ['ok']);
});

test('temp directories of dead builders are swept, live ones kept', async (t) => {
  const dir = await tempDir(t);
  // pid 2^22+1 is above Linux's pid_max ceiling, so never alive; pid 1 always is.
  const dead = path.join(dir, `.tmp-dddddddddddddddd-${(1 << 22) + 1}`);
  const live = path.join(dir, '.tmp-dddddddddddddddd-1');
  await mkdir(dead);
  await writeFile(path.join(dead, 'partial'), 'x');
  await mkdir(live);
  await cached(dir, 'eeeeeeeeeeeeeeee', async (tmp) => { await writeFile(path.join(tmp, 'f'), 'x'); });
  assert.equal(existsSync(dead), false);
  assert.equal(existsSync(live), true);
});

test('current pointer and listing of older entries', async (t) => {
  const dir = await tempDir(t);
  assert.equal(await getCurrent(dir), undefined);
  await cached(dir, '1111111111111111', async (tmp) => { await writeFile(path.join(tmp, 'f'), 'old'); });
  await cached(dir, '2222222222222222', async (tmp) => { await writeFile(path.join(tmp, 'f'), 'new'); });
  await setCurrent(dir, '2222222222222222');
  assert.equal((await getCurrent(dir))?.key, '2222222222222222');
  assert.deepEqual((await listEntries(dir)).map((e) => e.key).sort(), ['1111111111111111', '2222222222222222']);
  // a directory that never got its meta.json is not an entry
  await mkdir(path.join(dir, '3333333333333333'));
  assert.equal((await listEntries(dir)).length, 2);
});
