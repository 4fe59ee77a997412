// Schemas of the background process operations (process_* tools, `islet ws
// ps|logs|kill|shell`, `ws exec --detach`). Kept apart from schemas.ts so the
// process surface can grow without touching the shared file.
import { z } from 'zod';
import { ExecInput, WorkspaceId } from './schemas.js';

export const ProcessId = z.number().int().min(1).max(2 ** 31)
  .describe('process id from process_start or process_list (the agent\'s own numbering, not the guest pid)');

export const SIGNALS = ['TERM', 'KILL', 'INT', 'HUP', 'QUIT', 'USR1', 'USR2'] as const;

export const ProcessStartInput = ExecInput.omit({ stdin: true, max_output_bytes: true, timeout_ms: true }).extend({
  stdin: z.boolean().optional().describe('keep the process\'s stdin open for process_write (default false: stdin is /dev/null)'),
  timeout_ms: z.number().int().min(0).max(7 * 24 * 3_600_000).optional()
    .describe('kill the process group after this many ms (default 0: never; it runs until it exits or is killed)'),
  ring_bytes: z.number().int().min(4096).max(16 << 20).optional()
    .describe('how much of the newest output the guest keeps for process_output (default 1 MiB); older output is dropped and counted'),
});
export type ProcessStartInput = z.infer<typeof ProcessStartInput>;

export const ProcessRef = z.object({ workspace_id: WorkspaceId, process_id: ProcessId });
export type ProcessRef = z.infer<typeof ProcessRef>;

export const ProcessOutputInput = ProcessRef.extend({
  offset: z.number().int().min(0).optional()
    .describe('byte offset to read from (default 0); pass the previous call\'s next_offset to get only new output'),
  max_bytes: z.number().int().min(1).max(4 << 20).optional().describe('most bytes to return (default 256 KiB)'),
  wait_ms: z.number().int().min(0).max(600_000).optional()
    .describe('if there is no output at offset yet, wait up to this long for some (or for the exit); default 0. '
      + 'Keep it below your client\'s request timeout (often 60 s)'),
});
export type ProcessOutputInput = z.infer<typeof ProcessOutputInput>;

export const ProcessWriteInput = ProcessRef.extend({
  input: z.string().max(1 << 20).describe('text (or base64 with encoding "base64") to write to the process\'s stdin'),
  encoding: z.enum(['utf8', 'base64']).optional().describe('encoding of input (default utf8)'),
  close: z.boolean().optional().describe('close stdin after writing (the process then reads EOF); default false'),
});
export type ProcessWriteInput = z.infer<typeof ProcessWriteInput>;

export const ProcessKillInput = ProcessRef.extend({
  signal: z.enum(SIGNALS).optional().describe('signal for the process group (default TERM; KILL cannot be caught)'),
});
export type ProcessKillInput = z.infer<typeof ProcessKillInput>;

export const ProcessWaitInput = ProcessRef.extend({
  timeout_ms: z.number().int().min(0).max(600_000).optional()
    .describe('wait at most this long for the exit (default 30000); keep it below your client\'s request timeout (often 60 s)'),
});
export type ProcessWaitInput = z.infer<typeof ProcessWaitInput>;
