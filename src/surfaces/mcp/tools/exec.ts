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
import { limitsFor } from '../limits.js';
import { toToolResult } from '../result.js';

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

const execFields = {
  exit_code: z.number().int().nullable().describe('null when killed by a signal (timeout, cancel)'),
  signal: z.string().nullable().describe('signal that ended the command, e.g. "KILL"'),
  stdout: z.string().describe('standard output, encoded as stdout_encoding says'),
  stdout_encoding: z.enum(['utf8', 'base64'])
    .describe('"base64" when stdout is not plain text (invalid UTF-8, a NUL byte, or mostly control bytes): decode it to get the bytes'),
  stderr: z.string().describe('standard error, encoded as stderr_encoding says'),
  stderr_encoding: z.enum(['utf8', 'base64']),
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
/** The text block repeats only the end of each stream: the output itself travels once, in structuredContent. */
const SUMMARY_TAIL_CHARS = 2000;
const DEFAULT_MAX_OUTPUT = 1 << 20;

export function register(server: McpServer, svc: WorkspaceService, callerOf: () => Caller): void {
  const interval = svc.config.server.exec_progress_interval_ms;
  // Both streams of one result together stay under [server] max_result_bytes.
  const perStream = Math.floor(svc.config.server.max_result_bytes / 2);
  const limits = limitsFor(svc);
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
      + `stream (default 1 MiB; over MCP at most ${perStream} bytes, whatever you ask) is dropped (truncated=true): for more, `
      + 'redirect it to a file in the guest and fetch that with file_download. stdout/stderr that are not plain UTF-8 text '
      + '(invalid UTF-8, a NUL byte, or mostly control bytes) come base64-encoded, with stdout_encoding/stderr_encoding "base64". The output '
      + 'is in the structured result; the text block shows only its end. Runs as root, cwd /root by default. '
      + 'Network: outbound connections work only if the workspace allows internet (see network_policy); busybox (wget, nc) is '
      + 'in the base image.',
    inputSchema: ExecInput.shape,
    outputSchema: execFields,
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
  }, (args, extra) => toToolResult(async () => {
    const max = Math.min(args.max_output_bytes ?? DEFAULT_MAX_OUTPUT, perStream);
    const release = limits.reserveOutput('exec', 2 * max);
    const reporter = progressReporter(extra, interval);
    try {
      return await svc.exec(callerOf(), { ...args, max_output_bytes: max }, { ...reporter.hooks, detach: true });
    } finally {
      reporter.stop();
      release();
    }
  }, { output: execFields, summary: (o) => execSummary(o as unknown as ExecOutput) }));
}

function execSummary(r: ExecOutput): string {
  const how = r.running ? `still running after ${r.duration_ms} ms as process ${r.process_id ?? '?'} (follow with process_output, offset ${r.next_offset ?? 0})`
    : r.timed_out ? `timed out after ${r.duration_ms} ms (killed)`
    : r.exit_code !== null ? `exit code ${r.exit_code} after ${r.duration_ms} ms`
      : `killed by signal ${r.signal ?? '?'} after ${r.duration_ms} ms`;
  const parts = [how + (r.truncated ? ', output truncated' : '')];
  const stream = (name: string, text: string, enc: string) => {
    if (!text) return;
    if (enc === 'base64') {
      parts.push(`--- ${name}: ${Math.floor(text.length / 4) * 3} bytes, not plain text (base64 in the structured result) ---`);
    } else if (text.length > SUMMARY_TAIL_CHARS) {
      parts.push(`--- ${name} (last ${SUMMARY_TAIL_CHARS} of ${text.length} characters; all of it in the structured result) ---\n`
        + text.slice(-SUMMARY_TAIL_CHARS));
    } else {
      parts.push(`--- ${name} ---\n${text}`);
    }
  };
  stream('stdout', r.stdout, r.stdout_encoding);
  stream('stderr', r.stderr, r.stderr_encoding);
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
