import assert from 'node:assert/strict';
import { test } from 'node:test';
import { z } from 'zod';
import { IsletError } from '../../src/core/errors.js';
import { errorResult, toToolResult } from '../../src/surfaces/mcp/result.js';

const textOf = (r: { content: Array<{ type: string; text?: string }> }) => r.content.map((c) => c.text ?? '').join('');

test('a result becomes structuredContent plus a text block', async () => {
  const r = await toToolResult(async () => ({ a: 1, b: 'x' }));
  assert.deepEqual(r.structuredContent, { a: 1, b: 'x' });
  assert.equal(r.isError, undefined);
  assert.deepEqual(JSON.parse(textOf(r)), { a: 1, b: 'x' });
});

test('a summary replaces the JSON text, and output reduces the result to the declared shape', async () => {
  const r = await toToolResult(async () => ({ a: 1, extra: true }), { output: { a: z.number() }, summary: (o) => `a=${String(o.a)}` });
  assert.deepEqual(r.structuredContent, { a: 1 });
  assert.equal(textOf(r), 'a=1');
});

test('an IsletError becomes isError with its code, message and hint, and no structuredContent', async () => {
  const r = await toToolResult(async () => {
    throw new IsletError('WORKSPACE_NOT_FOUND', 'no workspace "w1"', 'list yours with workspace_list', { id: 'w1' });
  });
  assert.equal(r.isError, true);
  assert.equal(r.structuredContent, undefined);
  assert.deepEqual(JSON.parse(textOf(r)), { code: 'WORKSPACE_NOT_FOUND', message: 'no workspace "w1"', hint: 'list yours with workspace_list' });
});

test('anything else becomes INTERNAL, and its stack goes to the internal log, not the model', async () => {
  const logged: unknown[] = [];
  const boom = new TypeError('cannot read x of undefined');
  const r = await toToolResult(async () => { throw boom; }, { logInternal: (e) => logged.push(e) });
  assert.equal(r.isError, true);
  const body = JSON.parse(textOf(r)) as { code: string; message: string; hint?: string };
  assert.equal(body.code, 'INTERNAL');
  assert.equal(body.message, 'cannot read x of undefined');
  assert.match(body.hint ?? '', /bug in islet/);
  assert.deepEqual(logged, [boom]);
  assert.doesNotMatch(textOf(r), /at /, 'no stack trace in the tool result');
});

test('errorResult omits an absent hint', () => {
  const r = errorResult(new IsletError('CANCELLED', 'exec was cancelled'));
  assert.deepEqual(JSON.parse(textOf(r)), { code: 'CANCELLED', message: 'exec was cancelled' });
});
