// `islet run` as one operation (POST /v1/run, run-ops.ts): a throwaway
// workspace's shape and one command in it. The bounds are those `islet run`
// always had: 64 MiB of stdin, 64 MiB of output per stream, no timeout
// unless asked for.
import { z } from 'zod';
import { CreateInput, ExecInput } from './schemas.js';

export const MAX_RUN_STDIN_BYTES = 64 << 20;
export const MAX_RUN_OUTPUT_BYTES = 64 << 20;
/** The longest timer Node keeps (a larger one would fire at once); about 24.8 days. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1 - 10_000;

export const RunInput = z.object({
  image: CreateInput.shape.image,
  vcpus: CreateInput.shape.vcpus,
  memory_mb: CreateInput.shape.memory_mb,
  command: ExecInput.shape.command,
  env: ExecInput.shape.env,
  cwd: ExecInput.shape.cwd,
  stdin: z.string().max(Math.ceil(MAX_RUN_STDIN_BYTES / 3) * 4).optional()
    .describe(`the command's standard input as base64 (any bytes, at most ${MAX_RUN_STDIN_BYTES} decoded); absent: none`),
  timeout_ms: z.number().int().min(0).max(MAX_TIMEOUT_MS).optional()
    .describe('kill the command (and its process group) after this many ms; 0 or absent: no limit'),
  max_output_bytes: z.number().int().min(1).max(MAX_RUN_OUTPUT_BYTES).optional()
    .describe(`cap per stream (stdout, stderr); the rest is dropped and truncated=true (default ${MAX_RUN_OUTPUT_BYTES})`),
});
export type RunInput = z.infer<typeof RunInput>;
