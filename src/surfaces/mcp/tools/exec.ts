// exec: run a command in a workspace and wait for it. Cancellation of the MCP
// request kills the guest process; with a progressToken the tool reports
// progress so clients that reset their timeout on progress keep waiting.
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { ExecInput } from '../../../core/schemas.js';
import type { WorkspaceService } from '../../../service/workspaces.js';
import type { Caller, ExecOutput, ExecHooks } from '../../../service/types.js';
import { toToolResult } from '../result.js';

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

const execFields = {
  exit_code: z.number().int().nullable().describe('null when killed by a signal (timeout, cancel)'),
  signal: z.string().nullable().describe('signal that ended the command, e.g. "KILL"'),
  stdout: z.string(),
  stderr: z.string(),
  timed_out: z.boolean().describe('true when timeout_ms expired and the command was killed'),
  truncated: z.boolean().describe('true when stdout or stderr exceeded max_output_bytes'),
  duration_ms: z.number().int().nonnegative(),
  running: z.boolean().optional().describe('long exec: true when the command was still running when this call returned; it keeps running'),
  process_id: z.number().int().optional().describe('long exec: follow the command with process_output / process_wait / process_kill'),
  next_offset: z.number().int().optional().describe('long exec: pass as offset to process_output to get the output after what is here'),
};

// Fails to compile when the service returns something the declared output rejects.
const outputFits = (r: ExecOutput): z.infer<z.ZodObject<typeof execFields>> => r;
void outputFits;

// How much output is kept to find the last line for a progress message, and
// how long that message may be: progress is a heartbeat, not an output stream.
const TAIL_BYTES = 4096;
const MESSAGE_CHARS = 200;

export function register(server: McpServer, svc: WorkspaceService, callerOf: () => Caller): void {
  const interval = svc.config.server.exec_progress_interval_ms;
  const detach = svc.config.server.exec_detach_ms;
  server.registerTool('exec', {
    title: 'Run a command in a workspace',
    description:
      'Runs a command in a running workspace and waits for it to exit. A string runs with /bin/sh -c (pipes, &&, '
      + 'redirects work); an array is an argv. Returns exit_code, stdout, stderr; a non-zero exit_code is a normal '
      + 'result, not a tool error. The command is killed after timeout_ms (default 30000, timed_out=true): pass a '
      + `larger timeout_ms for builds or installs. MCP clients often cancel a call after ~60 s without progress; this `
      + `tool reports progress every ${interval} ms when the request carries a progressToken. Long jobs: when timeout_ms is `
      + `above ${detach} ms and the command still runs after ${detach} ms, the call returns then with running=true, `
      + 'exit_code null, the output so far and a process_id: the command keeps running in the guest; follow it with '
      + 'process_output (offset=next_offset, wait_ms) or process_wait, stop it with process_kill. For servers and watchers '
      + 'use process_start. Cancelling the call kills the command. Output over max_output_bytes per '
      + 'stream (default 1 MiB) is dropped (truncated=true). Runs as root, cwd /root by default. '
      + 'Network: outbound connections work only if the workspace allows internet (see network_policy); busybox (wget, nc) is '
      + 'in the base image.',
    inputSchema: ExecInput.shape,
    outputSchema: execFields,
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
  }, (args, extra) => toToolResult(async () => {
    const reporter = progressReporter(extra, interval);
    try {
      return await svc.exec(callerOf(), args, { ...reporter.hooks, detach: true });
    } finally {
      reporter.stop();
    }
  }, { output: execFields, summary: (o) => execSummary(o as unknown as ExecOutput) }));
}

function execSummary(r: ExecOutput): string {
  const how = r.running ? `still running after ${r.duration_ms} ms as process ${r.process_id ?? '?'} (follow with process_output, offset ${r.next_offset ?? 0})`
    : r.timed_out ? `timed out after ${r.duration_ms} ms (killed)`
    : r.exit_code !== null ? `exit code ${r.exit_code} after ${r.duration_ms} ms`
      : `killed by signal ${r.signal ?? '?'} after ${r.duration_ms} ms`;
  const parts = [how + (r.truncated ? ', output truncated' : '')];
  if (r.stdout) parts.push(`--- stdout ---\n${r.stdout}`);
  if (r.stderr) parts.push(`--- stderr ---\n${r.stderr}`);
  return parts.join('\n');
}

interface Reporter {
  hooks: ExecHooks;
  stop(): void;
}

function progressReporter(extra: Extra, intervalMs: number): Reporter {
  const token = extra._meta?.progressToken;
  if (token === undefined) return { hooks: { signal: extra.signal }, stop: () => {} };
  const t0 = performance.now();
  let tail = '';
  let bytes = 0;
  let last = -1;
  const tick = () => {
    // progress must strictly increase; elapsed ms does, even when the command is silent.
    const progress = Math.max(last + 1, Math.round(performance.now() - t0));
    last = progress;
    const line = lastLine(tail);
    const message = `running ${(progress / 1000).toFixed(1)} s, ${bytes} bytes of output` + (line ? `: ${line}` : '');
    extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress, message } })
      .catch(() => { /* the client went away; the result (or cancel) settles the call */ });
  };
  const timer = setInterval(tick, intervalMs);
  return {
    hooks: {
      signal: extra.signal,
      onData: (_stream, chunk) => {
        bytes += chunk.length;
        tail = (tail + chunk.toString('utf8')).slice(-TAIL_BYTES);
      },
    },
    stop: () => clearInterval(timer),
  };
}

function lastLine(text: string): string {
  const lines = text.split(/\r?\n|\r/).map((l) => l.trim()).filter((l) => l.length > 0);
  const l = lines[lines.length - 1] ?? '';
  // Strip control characters: guest output is untrusted and ends up in a client UI.
  const clean = l.replace(/[\u0000-\u001f\u007f]/g, '');
  return clean.length > MESSAGE_CHARS ? `${clean.slice(0, MESSAGE_CHARS - 1)}…` : clean;
}
