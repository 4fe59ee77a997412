// Bytes in JSON: text stays text only when it is cheap to carry; everything
// else is base64 with a flag. Client base64 is checked, never guessed at.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeContent, encodeBytes } from '../../src/core/encoding.js';
import { IsletError } from '../../src/core/errors.js';

test('NULs, invalid UTF-8 and control-heavy text go as base64; plain text as utf8', () => {
  const nul = Buffer.alloc(1000);
  const r = encodeBytes(nul);
  assert.equal(r.encoding, 'base64');
  assert.ok(Buffer.byteLength(JSON.stringify(r.text)) <= 1340, 'encoded size stays near 4/3');
  assert.deepEqual(Buffer.from(r.text, 'base64'), nul);
  assert.equal(encodeBytes(Buffer.from([0xff, 0xfe, 0x41])).encoding, 'base64');
  assert.deepEqual(encodeBytes(Buffer.from('héllo\n\tworld "q"')), { text: 'héllo\n\tworld "q"', encoding: 'utf8' });
  assert.equal(encodeBytes(Buffer.from('text'), 'base64').encoding, 'base64');
  assert.deepEqual(encodeBytes(Buffer.alloc(0)), { text: '', encoding: 'utf8' });
});

test('invalid base64 is refused with INVALID_ARGUMENT naming the field (issue 12 #7)', () => {
  for (const bad of ['hello world', 'aGVsbG8', 'aGVsbG8=x', '####', 'aGVsbG8===']) {
    assert.throws(() => decodeContent(bad, 'base64'), (e: unknown) => e instanceof IsletError && e.code === 'INVALID_ARGUMENT' && /^content: /.test(e.message), bad);
  }
  assert.equal(decodeContent('aGVsbG8=', 'base64').toString(), 'hello');
  assert.equal(decodeContent('aGVs\nbG8=\n', 'base64').toString(), 'hello');
  assert.equal(decodeContent('', 'base64').length, 0);
  assert.equal(decodeContent('hello world', 'utf8').toString(), 'hello world');
});

test('base64 content of 24 MiB is checked without overflowing the stack', () => {
  const big = Buffer.alloc(18 << 20, 7);
  assert.equal(decodeContent(big.toString('base64'), 'base64').length, big.length);
  assert.throws(() => decodeContent(`${big.toString('base64').slice(0, -4)}a#==`, 'base64'), /not valid base64/);
});

test('a short line with a colour code stays text; a NUL anywhere, or mostly escapes, does not', () => {
  assert.deepEqual(encodeBytes(Buffer.from('\u001b[31mred\u001b[0m\n')), { text: '\u001b[31mred\u001b[0m\n', encoding: 'utf8' });
  assert.equal(encodeBytes(Buffer.from('a\u0000b')).encoding, 'base64');
  assert.equal(encodeBytes(Buffer.alloc(4096, 0x1b)).encoding, 'base64');
});
