// Background process tools: process_start, process_list, process_output,
// process_write, process_kill, process_wait. The guest agent owns the
// processes; these only declare the tools and render results.
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import {
  ProcessKillInput, ProcessOutputInput, ProcessStartInput, ProcessWaitInput, ProcessWriteInput,
} from '../../../core/process-schemas.js';
import { WorkspaceRef } from '../../../core/schemas.js';
import type { ProcessInfo, ProcessListOutput, ProcessOutputOutput, ProcessWriteOutput } from '../../../service/process-ops.js';
import type { WorkspaceService } from '../../../service/workspaces.js';
import type { Caller } from '../../../service/types.js';
import { toToolResult } from '../result.js';

const infoFields = {
  workspace_id: z.string(),
  process_id: z.number().int().describe('pass to process_output, process_write, process_kill, process_wait'),
  pid: z.number().int().describe('the guest pid (also its process group)'),
  command: z.string().describe('the command, cut to 256 characters'),
  running: z.boolean(),
  exit_code: z.number().int().nullable().describe('null while running, or when killed by a signal'),
  signal: z.string().nullable().describe('signal that ended it, e.g. "TERM" or "KILL"'),
  exit_status: z.number().int().nullable().describe('as a shell\'s $?: exit_code, or 128 + the signal number (TERM 143, KILL 137); null while running'),
  timed_out: z.boolean().describe('true when its timeout_ms expired and it was killed'),
  started_at: z.string().describe('ISO 8601, guest clock'),
  duration_ms: z.number().int().describe('run time so far, or until the exit'),
  output_bytes: z.number().int().describe('stdout + stderr bytes written so far: the offset after the newest output'),
  dropped_bytes: z.number().int().describe('output dropped from the guest\'s ring buffer: offsets below this can no longer be read'),
  stdin: z.boolean().describe('stdin is open for process_write'),
  pty: z.boolean().describe('runs on a terminal (islet ws shell / exec -t)'),
};
const listOut = { workspace_id: z.string(), processes: z.array(z.object(infoFields)) };
const outputOut = {
  workspace_id: z.string(),
  process_id: z.number().int(),
  stdout: z.string(),
  stderr: z.string(),
  start_offset: z.number().int().describe('offset of the first byte returned (offset + dropped_bytes)'),
  next_offset: z.number().int().describe('pass as offset next time to get only newer output'),
  dropped_bytes: z.number().int().describe('bytes between offset and start_offset that the ring buffer no longer held'),
  process: z.object(infoFields),
};
const writeOut = { workspace_id: z.string(), process_id: z.number().int(), bytes: z.number().int(), closed: z.boolean() };

// Fail to compile when the service returns something the declared output rejects.
const fits = {
  info: (r: ProcessInfo): z.infer<z.ZodObject<typeof infoFields>> => r,
  list: (r: ProcessListOutput): z.infer<z.ZodObject<typeof listOut>> => r,
  output: (r: ProcessOutputOutput): z.infer<z.ZodObject<typeof outputOut>> => r,
  write: (r: ProcessWriteOutput): z.infer<z.ZodObject<typeof writeOut>> => r,
};
void fits;

const status = (o: Record<string, unknown>) => (o.running ? `running (pid ${String(o.pid)})`
  : o.exit_code !== null ? `exited with code ${String(o.exit_code)}` : `killed by signal ${String(o.signal)}`);
const infoSummary = (o: Record<string, unknown>) => `process ${String(o.process_id)} in ${String(o.workspace_id)}: ${status(o)}, `
  + `${String(o.output_bytes)} bytes of output\n${JSON.stringify(o)}`;

export function register(server: McpServer, svc: WorkspaceService, callerOf: () => Caller): void {
  server.registerTool('process_start', {
    title: 'Start a background process',
    description:
      'Starts a command in a running workspace and returns at once with its process_id, leaving it running: dev servers, '
      + 'watchers, long builds and test suites. A string runs with /bin/sh -c; an array is an argv. The guest agent keeps '
      + 'the process and its newest output (ring_bytes, default 1 MiB; older output is dropped and counted), so it survives '
      + 'this client going away, an islet restart and a workspace pause/resume; it ends when the workspace stops. Read its '
      + 'output with process_output, feed stdin (stdin=true) with process_write, stop it with process_kill, wait for it with '
      + 'process_wait. A server must listen on 0.0.0.0 to be reached through port_forward. At most 64 processes are kept '
      + 'per workspace (exited ones are forgotten, oldest first, to make room); otherwise BUSY (GUEST_ERROR).',
    inputSchema: ProcessStartInput.shape,
    outputSchema: infoFields,
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
  }, (args, extra) => toToolResult(() => svc.processStart(callerOf(), args, { signal: extra.signal }), { output: infoFields, summary: infoSummary }));

  server.registerTool('process_list', {
    title: 'List background processes',
    description: 'Lists the workspace\'s background processes (running and recently exited), oldest first, with status and output size.',
    inputSchema: WorkspaceRef.shape,
    outputSchema: listOut,
    annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  }, (args, extra) => toToolResult(() => svc.processList(callerOf(), args, { signal: extra.signal }), {
    output: listOut,
    summary: (o) => {
      const ps = o.processes as Array<Record<string, unknown>>;
      const lines = ps.map((p) => `${String(p.process_id)}  ${status(p)}  ${String(p.command)}`);
      return `${ps.length} process(es) in ${String(o.workspace_id)}\n${lines.join('\n')}\n${JSON.stringify(o)}`;
    },
  }));

  server.registerTool('process_output', {
    title: 'Read a background process\'s output',
    description:
      'Returns a background process\'s output from a byte offset (stdout and stderr share one offset space, in the order '
      + 'written), with its status (exit_code once it has exited). Start at offset 0; then pass next_offset to get only new '
      + 'output. wait_ms > 0 waits for new output (or the exit) when there is none yet: use it to follow a process without '
      + 'busy polling. If the offset is older than the guest kept, the read starts at the oldest byte held and dropped_bytes '
      + 'says how many were skipped.',
    inputSchema: ProcessOutputInput.shape,
    outputSchema: outputOut,
    annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  }, (args, extra) => toToolResult(() => svc.processOutput(callerOf(), args, { signal: extra.signal }), {
    output: outputOut,
    summary: (o) => {
      const p = o.process as Record<string, unknown>;
      const head = `process ${String(o.process_id)}: ${status(p)}; bytes ${String(o.start_offset)}..${String(o.next_offset)} of `
        + `${String(p.output_bytes)}${(o.dropped_bytes as number) > 0 ? `, ${String(o.dropped_bytes)} dropped` : ''}; next_offset ${String(o.next_offset)}`;
      const parts = [head];
      if (o.stdout) parts.push(`--- stdout ---\n${String(o.stdout)}`);
      if (o.stderr) parts.push(`--- stderr ---\n${String(o.stderr)}`);
      return parts.join('\n');
    },
  }));

  server.registerTool('process_write', {
    title: 'Write to a background process\'s stdin',
    description:
      'Writes text (or base64 bytes) to the stdin of a background process started with stdin=true; close=true then closes '
      + 'its stdin so it reads EOF. A process that does not read within 5 s fails the write (GUEST_ERROR).',
    inputSchema: ProcessWriteInput.shape,
    outputSchema: writeOut,
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
  }, (args, extra) => toToolResult(() => svc.processWrite(callerOf(), args, { signal: extra.signal }), {
    output: writeOut, summary: (o) => `wrote ${String(o.bytes)} bytes to process ${String(o.process_id)}${o.closed ? ', stdin closed' : ''}`,
  }));

  server.registerTool('process_kill', {
    title: 'Signal a background process',
    description:
      'Sends a signal (default TERM) to a background process and everything it started (its process group). It returns '
      + 'at once; use process_wait to see it exit (a process that ignores TERM needs KILL).',
    inputSchema: ProcessKillInput.shape,
    outputSchema: infoFields,
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
  }, (args, extra) => toToolResult(() => svc.processKill(callerOf(), args, { signal: extra.signal }), { output: infoFields, summary: infoSummary }));

  server.registerTool('process_wait', {
    title: 'Wait for a background process to exit',
    description:
      'Waits up to timeout_ms (default 30000) for a background process to exit and returns its status: running=false with '
      + 'exit_code or signal once it has exited, running=true if it is still going when the wait ends (call again).',
    inputSchema: ProcessWaitInput.shape,
    outputSchema: infoFields,
    annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  }, (args, extra) => toToolResult(() => svc.processWait(callerOf(), args, { signal: extra.signal }), { output: infoFields, summary: infoSummary }));
}
