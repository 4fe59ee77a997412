// Every islet tool goes through here on its way into the SDK, for two things
// the SDK does not do our way:
// - Input validation failures become isError results with code
//   INVALID_ARGUMENT and the field named (MCP 2025-11-25, SEP-1303: they are
//   tool execution errors the model can read). SDK 1.32 turns a failed parse
//   into a result whose text is "MCP error -32602: ...", with no islet code.
//   So the SDK gets the same zod object with a .catch() that hands the
//   failure to us instead; zod-to-json-schema renders a catch as its inner
//   schema, so tools/list still advertises the exact schema (bounds, required).
// - A call slot from CallLimits for every call.
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { InvalidArgumentError } from '../../core/errors.js';
import type { CallLimits } from './limits.js';
import { errorResult } from './result.js';

const INVALID = Symbol('invalid tool input');
type Invalid = { [INVALID]: z.ZodError };

/** The same schema for tools/list; a parse that never fails, for tools/call. */
export function lenientInput(shape: z.ZodRawShape): z.ZodTypeAny {
  const strict = z.object(shape);
  const onFail = (ctx: { error: z.ZodError }): Invalid => ({ [INVALID]: ctx.error });
  const s = strict.catch(onFail as unknown as (ctx: { error: z.ZodError; input: unknown }) => z.output<typeof strict>);
  // The SDK advertises (and parses with) a schema only if it looks like an object: it checks .shape.
  Object.defineProperty(s, 'shape', { get: () => strict.shape });
  return s;
}

export function inputError(tool: string, err: z.ZodError): InvalidArgumentError {
  const lines = err.issues.map((i) => `${i.path.length ? i.path.join('.') : 'arguments'}: ${i.message}`);
  return new InvalidArgumentError(`${tool}: ${lines.join('; ')}`, 'fix the named argument; the tool\'s input schema lists what is allowed',
    { fields: err.issues.map((i) => i.path.join('.')) });
}

type AnyCallback = (args: unknown, extra: unknown) => unknown;

/** Wraps server.registerTool so every tool registered afterwards gets both guards. */
export function guardTools(server: McpServer, limits: CallLimits): void {
  const register = server.registerTool.bind(server) as unknown as (name: string, config: Record<string, unknown>, cb: AnyCallback) => unknown;
  const patched = (name: string, config: Record<string, unknown>, cb: AnyCallback) => {
    const shape = config.inputSchema as z.ZodRawShape | undefined;
    const guarded: AnyCallback = async (args, extra) => {
      if (args !== null && typeof args === 'object' && INVALID in args) return errorResult(inputError(name, (args as Invalid)[INVALID]));
      let leave: () => void;
      try {
        leave = limits.enterCall(name);
      } catch (e) {
        return errorResult(e);
      }
      try {
        return await cb(args, extra);
      } finally {
        leave();
      }
    };
    return register(name, shape ? { ...config, inputSchema: lenientInput(shape) } : config, guarded);
  };
  (server as unknown as { registerTool: typeof patched }).registerTool = patched;
}
