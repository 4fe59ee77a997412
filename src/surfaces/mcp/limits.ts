// What MCP clients can make the server hold, bounded once per service (all
// stdio and HTTP sessions share it): tool calls in progress, and exec output
// buffered in memory. Each refusal is a QUOTA_EXCEEDED tool result naming the
// config key; nothing is queued, so a flood costs nothing but the refusals.
import type { Config } from '../../core/config.js';
import { IsletError } from '../../core/errors.js';

export class CallLimits {
  private calls = 0;
  private buffered = 0;

  constructor(private readonly server: Config['server']) {}

  /** Claims one call slot; the returned function gives it back (call it once). */
  enterCall(tool: string): () => void {
    const max = this.server.max_concurrent_calls;
    if (this.calls >= max) {
      throw new IsletError('QUOTA_EXCEEDED', `${tool}: ${max} tool calls are already in progress on this server`,
        'retry when one finishes, or raise [server] max_concurrent_calls', { limit: 'max_concurrent_calls', max }, { retryable: true });
    }
    this.calls++;
    return once(() => { this.calls--; });
  }

  /** Reserves memory for output a call may buffer; the returned function releases it. */
  reserveOutput(tool: string, bytes: number): () => void {
    const max = this.server.max_buffered_output_bytes;
    if (this.buffered + bytes > max) {
      throw new IsletError('QUOTA_EXCEEDED',
        `${tool}: buffering ${bytes} more bytes of output would pass the server's limit of ${max} (${this.buffered} in use)`,
        'pass a smaller max_output_bytes, retry when other calls finish, or raise [server] max_buffered_output_bytes',
        { limit: 'max_buffered_output_bytes', max, inUse: this.buffered, asked: bytes }, { retryable: true });
    }
    this.buffered += bytes;
    return once(() => { this.buffered -= bytes; });
  }

  get inUse(): { calls: number; bufferedBytes: number } {
    return { calls: this.calls, bufferedBytes: this.buffered };
  }
}

function once(f: () => void): () => void {
  let done = false;
  return () => { if (!done) { done = true; f(); } };
}

// One per service, whatever number of McpServers (sessions) it serves.
const perService = new WeakMap<object, CallLimits>();

export function limitsFor(svc: { config: Config }): CallLimits {
  let l = perService.get(svc);
  if (!l) perService.set(svc, l = new CallLimits(svc.config.server));
  return l;
}
