// POST /v1/workspaces/{id}/exec, answered straight on the node response:
// NDJSON events, one per line, the result last. Written by hand rather than
// through a web ReadableStream because an exec is mostly round trip: the exit
// line and the chunked terminator leave in one write (the client wakes once
// for the result), and no lookup of the workspace precedes the command (the
// service's own check refuses an unknown one, synchronously).
import type { ServerResponse } from 'node:http';
import type { ExecOutput } from '../../service/types.js';

type Stream = 'stdout' | 'stderr';
export type ErrorJson = (e: unknown) => { status: number; body: Record<string, unknown> };

/**
 * Runs `run` and streams its events to `res`. A failure before anything was
 * sent (unknown workspace, one not running) is answered with its own status
 * and {code, message, hint}, as every other route's; after that it is an
 * {"type":"error"} event.
 */
export function streamExec(res: ServerResponse, run: (onData: (s: Stream, chunk: Buffer) => void, emit: (event: Record<string, unknown>) => void) => Promise<Pick<ExecOutput, 'exit_code' | 'signal' | 'timed_out' | 'truncated' | 'duration_ms'>>,
  errorJson: ErrorJson): Promise<void> {
  const head = () => {
    if (!res.headersSent) res.writeHead(200, { 'Content-Type': 'application/x-ndjson', 'Cache-Control': 'no-store', Trailer: 'Server-Timing' });
  };
  // The service call's own time, as a trailer: a client (the bench) can tell what the HTTP path added to this very call.
  const t0 = performance.now();
  const timing = () => { if (res.headersSent && res.chunkedEncoding) res.addTrailers({ 'Server-Timing': `svc;dur=${(performance.now() - t0).toFixed(3)}` }); };
  const live = () => !res.destroyed && !res.writableEnded;
  const line = (v: unknown) => `${JSON.stringify(v)}\n`;
  // Headers go out once a synchronous refusal would be known: from then on the client knows the command was
  // taken, so it never sends it again on a fresh connection (transport.ts resends only what was never answered).
  const timer = setImmediate(() => { if (!live() || res.headersSent) return; head(); res.flushHeaders(); });
  // Other events (a run's "started") go out the same way, in order with the output.
  const emit = (event: Record<string, unknown>) => {
    if (!live()) return;
    head();
    res.write(line(event));
  };
  return run((stream, chunk) => emit({ type: stream, data: chunk.toString('base64') }), emit).then((r) => {
    if (!live()) return;
    head();
    timing();
    res.end(line({ type: 'exit', exit_code: r.exit_code, signal: r.signal, timed_out: r.timed_out, truncated: r.truncated, duration_ms: r.duration_ms }));
  }, (e: unknown) => {
    if (!live()) return;
    const { status, body } = errorJson(e);
    if (res.headersSent) { timing(); res.end(line({ type: 'error', error: body })); return; }
    clearImmediate(timer);
    res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
  }).finally(() => clearImmediate(timer));
}
