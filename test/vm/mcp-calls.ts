// Tool calls as the MCP VM tests make them, through the official client:
// `ok` expects a result and returns its structured content, `fails` expects
// an isError result carrying the given stable code.
import assert from 'node:assert/strict';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult, Progress } from '@modelcontextprotocol/sdk/types.js';

export const SLOW = { timeout: 300_000 };

export interface CallOptions { onprogress?: (p: Progress) => void; signal?: AbortSignal }

export async function call(c: Client, name: string, args: Record<string, unknown>, o: CallOptions = {}): Promise<CallToolResult> {
  return await c.callTool({ name, arguments: args }, undefined, { ...SLOW, ...o }) as CallToolResult;
}

export async function ok<T>(c: Client, name: string, args: Record<string, unknown>, o: CallOptions = {}): Promise<T> {
  const r = await call(c, name, args, o);
  assert.notEqual(r.isError, true, `${name} failed: ${JSON.stringify(r.content)}`);
  return r.structuredContent as T;
}

export async function fails(c: Client, name: string, args: Record<string, unknown>, code: string): Promise<void> {
  const r = await call(c, name, args);
  assert.equal(r.isError, true, `${name} should fail with ${code}, got ${JSON.stringify(r.structuredContent)}`);
  const text = (r.content[0] as { text: string }).text;
  assert.equal((JSON.parse(text) as { code: string }).code, code, text);
}
