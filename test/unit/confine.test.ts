// Host-side transfer confinement: nothing outside the transfer dir is read,
// written or even created, whatever the path or symlink tricks.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { IsletError } from '../../src/core/errors.js';
import { checkWritable, openConfinedWriter, readConfined, writeConfined } from '../../src/host/confine.js';

const base = mkdtempSync(path.join(os.tmpdir(), 'islet-confine-'));
const root = path.join(base, 'transfer');
const outside = path.join(base, 'outside');
mkdirSync(root);
mkdirSync(outside);
writeFileSync(path.join(outside, 'secret'), 'secret');
writeFileSync(path.join(root, 'ok.txt'), 'fine');
symlinkSync(outside, path.join(root, 'link-dir'));
symlinkSync(path.join(outside, 'secret'), path.join(root, 'link-file'));
const code = (c: string) => (e: unknown) => e instanceof IsletError && e.code === c;

test('reads inside the root, relative or absolute', async () => {
  assert.equal((await readConfined(root, 'ok.txt', 100)).data.toString(), 'fine');
  assert.equal((await readConfined(root, path.join(root, 'ok.txt'), 100)).data.toString(), 'fine');
});

test('traversal, absolute paths elsewhere and symlinks out are refused', async () => {
  for (const p of ['../outside/secret', '/etc/passwd', 'link-file', 'link-dir/secret', `${root}/../outside/secret`, '.', '']) {
    await assert.rejects(readConfined(root, p, 100), (e: unknown) => code('PATH_OUTSIDE_ALLOWED')(e) || code('FILE_NOT_FOUND')(e), p);
  }
  await assert.rejects(readConfined(root, 'link-file', 100), code('PATH_OUTSIDE_ALLOWED'));
});

test('a file over the limit is refused before it is read', async () => {
  await assert.rejects(readConfined(root, 'ok.txt', 2), code('FILE_TOO_LARGE'));
});

test('writes stay inside; nothing is created outside through a symlinked directory', async () => {
  await writeConfined(root, 'new/dir/x.bin', Buffer.from([1, 2, 3]), false);
  assert.deepEqual([...readFileSync(path.join(root, 'new/dir/x.bin'))], [1, 2, 3]);
  await assert.rejects(writeConfined(root, 'link-dir/sub/x.txt', Buffer.from('x'), false), code('PATH_OUTSIDE_ALLOWED'));
  assert.equal(existsSync(path.join(outside, 'sub')), false, 'a directory was created outside the root');
  await assert.rejects(writeConfined(root, 'link-file', Buffer.from('x'), true), code('PATH_OUTSIDE_ALLOWED'));
  assert.equal(readFileSync(path.join(outside, 'secret'), 'utf8'), 'secret');
  await assert.rejects(writeConfined(root, '../escape.txt', Buffer.from('x'), true), code('PATH_OUTSIDE_ALLOWED'));
  await assert.rejects(writeConfined(root, 'ok.txt', Buffer.from('x'), false), code('INVALID_ARGUMENT'));
  await writeConfined(root, 'ok.txt', Buffer.from('new'), true);
  assert.equal(readFileSync(path.join(root, 'ok.txt'), 'utf8'), 'new');
});

test('a FIFO or device is refused without blocking a thread (issue 12 #3)', async () => {
  const fifo = path.join(root, 'pipe');
  execFileSync('mkfifo', [fifo]);
  // Five at once: more than libuv's four threads, so one blocked open would hang the rest.
  const all = Promise.all([0, 1, 2, 3, 4].map(() => readConfined(root, 'pipe', 100).then(() => 'read', (e) => (e as IsletError).code)));
  const timeout = new Promise((resolve) => setTimeout(() => resolve('blocked'), 3000).unref());
  assert.deepEqual(await Promise.race([all, timeout]), ['INVALID_ARGUMENT', 'INVALID_ARGUMENT', 'INVALID_ARGUMENT', 'INVALID_ARGUMENT', 'INVALID_ARGUMENT']);
  await assert.rejects(writeConfined(root, 'pipe', Buffer.from('x'), true), code('INVALID_ARGUMENT'));
});

test('20 parallel writes of different files all succeed (issue 12 #4: unique temp names)', async () => {
  const rs = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => writeConfined(root, `par/f${i}`, Buffer.from(String(i)), false)));
  assert.deepEqual(rs.filter((r) => r.status === 'rejected'), []);
  const same = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => writeConfined(root, 'par/same', Buffer.from(String(i)), true)));
  assert.deepEqual(same.filter((r) => r.status === 'rejected'), []);
  assert.deepEqual(readdirSync(path.join(root, 'par')).filter((f) => f.endsWith('.tmp')), [], 'temp files left behind');
});

test('checkWritable refuses a bad destination and never touches an existing file (issue 12 #1)', async () => {
  writeFileSync(path.join(root, 'keep.txt'), 'precious');
  await assert.rejects(checkWritable(root, 'keep.txt', false), code('INVALID_ARGUMENT'));
  await checkWritable(root, 'keep.txt', true);
  assert.equal(readFileSync(path.join(root, 'keep.txt'), 'utf8'), 'precious');
  await assert.rejects(checkWritable(root, '../x', true), code('PATH_OUTSIDE_ALLOWED'));
  await assert.rejects(checkWritable(root, 'link-file', true), code('PATH_OUTSIDE_ALLOWED'));
});

test('without overwrite, a file that appears during the write is not replaced', async () => {
  writeFileSync(path.join(root, 'race.txt'), 'first');
  await assert.rejects(writeConfined(root, 'race.txt', Buffer.from('second'), false), code('INVALID_ARGUMENT'));
  assert.equal(readFileSync(path.join(root, 'race.txt'), 'utf8'), 'first');
});

test('a streamed write lands only on commit; abort leaves the destination as it was', async () => {
  writeFileSync(path.join(root, 'stream.txt'), 'old');
  const w = await openConfinedWriter(root, 'stream.txt', true);
  for (const c of ['a', 'b', 'c']) w.write(Buffer.from(c));
  assert.equal(readFileSync(path.join(root, 'stream.txt'), 'utf8'), 'old', 'replaced before commit');
  assert.deepEqual(await w.commit(), { abs: path.join(realpathSync(root), 'stream.txt'), bytes: 3 });
  assert.equal(readFileSync(path.join(root, 'stream.txt'), 'utf8'), 'abc');
  const w2 = await openConfinedWriter(root, 'stream.txt', true);
  w2.write(Buffer.from('partial'));
  await w2.abort();
  assert.equal(readFileSync(path.join(root, 'stream.txt'), 'utf8'), 'abc');
  assert.deepEqual(readdirSync(root).filter((f) => f.endsWith('.tmp')), []);
  await assert.rejects(openConfinedWriter(root, 'stream.txt', false), code('INVALID_ARGUMENT'));
  await assert.rejects(openConfinedWriter(root, 'link-dir/x', true), code('PATH_OUTSIDE_ALLOWED'));
  const w3 = await openConfinedWriter(root, 'late.txt', false);
  writeFileSync(path.join(root, 'late.txt'), 'first');
  w3.write(Buffer.from('second'));
  await assert.rejects(w3.commit(), code('INVALID_ARGUMENT'));
  assert.equal(readFileSync(path.join(root, 'late.txt'), 'utf8'), 'first');
});
