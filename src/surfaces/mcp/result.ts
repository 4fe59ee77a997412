// The only place a service result or an error becomes an MCP CallToolResult.
// Domain failures are tool results (isError: true) so the model can read the
// code and hint and retry; they never become JSON-RPC errors.
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { toIsletError } from '../../core/errors.js';

/** Where INTERNAL errors' stacks go: stderr, which the stdio protocol leaves free. */
export type InternalErrorLog = (e: unknown) => void;

const stderrLog: InternalErrorLog = (e) => {
  const stack = e instanceof Error ? e.stack : String(e);
  process.stderr.write(`islet: internal error in an MCP tool: ${stack}\n`);
};

export interface ToToolResultOptions {
  /**
   * The tool's outputSchema shape. The result is reduced to it: the advertised JSON
   * Schema says additionalProperties: false and SDK clients validate against it, so a
   * field the service adds later must not reach them before the schema declares it.
   */
  output?: z.ZodRawShape;
  /** The text block the model reads; default: the structured content as JSON (the MCP spec's fallback). */
  summary?: (out: Record<string, unknown>) => string;
  logInternal?: InternalErrorLog;
}

export async function toToolResult<T extends object>(
  run: () => Promise<T>,
  o: ToToolResultOptions = {},
): Promise<CallToolResult> {
  try {
    const raw = await run();
    const out = (o.output ? z.object(o.output).parse(raw) : raw) as Record<string, unknown>;
    return { structuredContent: out, content: [{ type: 'text', text: (o.summary ?? JSON.stringify)(out) }] };
  } catch (e) {
    return errorResult(e, o.logInternal ?? stderrLog);
  }
}

/**
 * No structuredContent on errors: the SDK skips outputSchema validation for
 * isError results, and clients must not mistake an error for data.
 */
export function errorResult(e: unknown, logInternal: InternalErrorLog = stderrLog): CallToolResult {
  const err = toIsletError(e);
  if (err.code === 'INTERNAL') logInternal(err.cause ?? err);
  const body: { code: string; message: string; hint?: string } = { code: err.code, message: err.message };
  if (err.hint !== undefined) body.hint = err.hint;
  return { isError: true, content: [{ type: 'text', text: JSON.stringify(body) }] };
}
