// One method per REST route: the SDK's low level, also what the CLI calls.
// Input types come from the operations' zod schemas (core/schemas.ts).
import type { IncomingMessage } from 'node:http';
import type {
  CreateInput, ExecInput, FileDownloadInput, FileUploadInput, ForkInput, ListInput, NetworkPolicyInput, PortForwardInput, SnapshotCreateInput,
} from '../core/schemas.js';
import type {
  ExecOutput, ForwardInfo, NetworkPolicyOutput, SnapshotCreateOutput, SnapshotDeleteOutput, SnapshotListOutput, SnapshotRestoreOutput, WorkspaceInfo,
  WorkspaceIpOutput,
} from '../service/types.js';
import type { ProcessInfo } from '../service/process-ops.js';
import type { LifetimeInfo } from '../service/lifetimes.js';
import type { SetLifetimeInput } from '../core/lifetime-schemas.js';
import type { SessionCreateInput, SessionListInput } from '../core/session-schemas.js';
import type { SessionInfo } from '../service/sessions.js';
import type { RunInput } from '../core/run-schemas.js';
import type { RunOutput, RunStarted } from '../service/run-ops.js';
import { errorFromBody, IsletApiError } from './errors.js';
import { ndjson, readAll, Transport, type Endpoint } from './transport.js';

type Body<T extends { workspace_id: string }> = Omit<T, 'workspace_id'>;
export interface Signal { signal?: AbortSignal }
export interface ExecStreamHooks extends Signal {
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
}
export type { ProcessInfo } from '../service/process-ops.js';
export interface ProcessOutput { parts: Array<{ stream: 'stdout' | 'stderr'; data: Buffer }>; next: number; dropped: number; proc: ProcessInfo }
export type ExecResult = Omit<ExecOutput, 'stdout' | 'stderr'> & { stdout: string; stderr: string };

const enc = encodeURIComponent;
const ws = (id: string, rest = '') => `/v1/workspaces/${enc(id)}${rest}`;

export class ApiClient {
  readonly http: Transport;
  constructor(endpoint: Endpoint) { this.http = new Transport(endpoint); }

  node(): Promise<Record<string, unknown>> { return this.http.json('GET', '/v1/node'); }
  create(input: CreateInput, o: Signal = {}): Promise<WorkspaceInfo> { return this.http.json('POST', '/v1/workspaces', { json: input, ...o }); }
  async list(input: ListInput = {}): Promise<WorkspaceInfo[]> {
    return (await this.http.json<{ workspaces: WorkspaceInfo[] }>('GET', '/v1/workspaces', { query: { state: input.state } })).workspaces;
  }
  info(id: string): Promise<WorkspaceInfo> { return this.http.json('GET', ws(id)); }
  destroy(id: string, o: Signal = {}): Promise<{ workspace_id: string; destroyed: true }> { return this.http.json('DELETE', ws(id), o); }
  lifecycle(id: string, op: 'start' | 'stop' | 'pause' | 'resume', o: Signal = {}): Promise<WorkspaceInfo & { pause_ms?: number }> {
    return this.http.json('POST', ws(id, `/${op}`), o);
  }

  /** Runs a command, streaming its output to the hooks as it arrives; the result carries the whole (capped) output too. */
  async exec(id: string, input: Body<ExecInput>, o: ExecStreamHooks = {}): Promise<ExecResult> {
    const res = await this.http.send('POST', ws(id, '/exec'), { json: input, signal: o.signal });
    const out = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
    const exit = await readExecStream(res, 'exec', o, (stream, chunk) => {
      out[stream].push(chunk);
      (stream === 'stdout' ? o.onStdout : o.onStderr)?.(chunk);
    });
    return { ...(exit as Omit<ExecResult, 'stdout' | 'stderr'>), stdout: Buffer.concat(out.stdout).toString('utf8'), stderr: Buffer.concat(out.stderr).toString('utf8') };
  }

  /**
   * POST /v1/run: one command in a throwaway workspace the daemon destroys when it ends (or when this call is
   * aborted). Output goes only to the hooks, never into the result: it may be 64 MiB per stream.
   */
  async run(input: RunInput, o: ExecStreamHooks & { onStarted?: (s: RunStarted) => void } = {}): Promise<RunOutput & { started: RunStarted }> {
    const res = await this.http.send('POST', '/v1/run', { json: input, signal: o.signal });
    let started: RunStarted | undefined;
    const exit = await readExecStream(res, 'run', o, (stream, chunk) => (stream === 'stdout' ? o.onStdout : o.onStderr)?.(chunk), (ev) => {
      if (ev.type !== 'started') return;
      const { type: _t, ...s } = ev;
      started = s as unknown as RunStarted;
      o.onStarted?.(started);
    });
    if (!started) throw IsletApiError.unavailable(new Error('the run stream ended without its started event'));
    return { ...(exit as Omit<RunOutput, 'workspace_id'>), workspace_id: started.workspace_id, started };
  }

  writeFile(id: string, path: string, data: Buffer | AsyncIterable<Uint8Array>, o: Signal & { mode?: number } = {}): Promise<{ path: string; bytes: number }> {
    return this.http.json('PUT', ws(id, '/files'), { query: { path, mode: o.mode === undefined ? undefined : o.mode.toString(8) }, body: data, signal: o.signal });
  }
  async readFile(id: string, path: string, o: Signal & { maxBytes?: number } = {}): Promise<Buffer> {
    const res = await this.http.send('GET', ws(id, '/files'), { query: { path }, signal: o.signal });
    return readAll(res, o.maxBytes ?? 1 << 30);
  }
  /** The file's bytes as a stream (the HTTP response itself): nothing is held whole. */
  async readFileStream(id: string, path: string, o: Signal = {}): Promise<IncomingMessage> {
    return this.http.send('GET', ws(id, '/files'), { query: { path }, signal: o.signal });
  }
  upload(id: string, input: Body<FileUploadInput>, o: Signal = {}): Promise<{ host_path: string; guest_path: string; bytes: number }> {
    return this.http.json('POST', ws(id, '/files/upload'), { json: input, ...o });
  }
  download(id: string, input: Body<FileDownloadInput>, o: Signal = {}): Promise<{ host_path: string; guest_path: string; bytes: number }> {
    return this.http.json('POST', ws(id, '/files/download'), { json: input, ...o });
  }

  snapshotCreate(id: string, input: Body<SnapshotCreateInput>, o: Signal = {}): Promise<SnapshotCreateOutput> {
    return this.http.json('POST', ws(id, '/snapshots'), { json: input, ...o });
  }
  snapshotList(id: string): Promise<SnapshotListOutput> { return this.http.json('GET', ws(id, '/snapshots')); }
  snapshotRestore(id: string, snapshot: string, o: Signal = {}): Promise<SnapshotRestoreOutput> {
    return this.http.json('POST', ws(id, `/snapshots/${enc(snapshot)}/restore`), o);
  }
  snapshotDelete(id: string, snapshot: string, o: Signal = {}): Promise<SnapshotDeleteOutput> {
    return this.http.json('DELETE', ws(id, `/snapshots/${enc(snapshot)}`), o);
  }
  fork(id: string, input: Body<ForkInput> = {}, o: Signal = {}): Promise<WorkspaceInfo> { return this.http.json('POST', ws(id, '/fork'), { json: input, ...o }); }
  portForward(id: string, input: Body<PortForwardInput>, o: Signal = {}): Promise<ForwardInfo & { workspace_id: string }> {
    return this.http.json('POST', ws(id, '/forwards'), { json: input, ...o });
  }
  portForwardRemove(id: string, hostPort: number, o: Signal = {}): Promise<Record<string, unknown>> {
    return this.http.json('DELETE', ws(id, `/forwards/${hostPort}`), o);
  }
  ip(id: string): Promise<WorkspaceIpOutput> { return this.http.json('GET', ws(id, '/ip')); }
  networkPolicy(id: string, input: Body<NetworkPolicyInput>, o: Signal = {}): Promise<NetworkPolicyOutput> {
    return this.http.json('PUT', ws(id, '/policy'), { json: input, ...o });
  }

  /** TTL, idle stop, retention: minutes, 0 = never, null = the host default, omitted = unchanged. */
  setLifetime(id: string, input: Body<SetLifetimeInput>, o: Signal = {}): Promise<LifetimeInfo & { workspace_id: string }> {
    return this.http.json('PUT', ws(id, '/lifetime'), { json: input, ...o });
  }

  // --- background processes ---
  processStart(id: string, input: Record<string, unknown>, o: Signal = {}): Promise<ProcessInfo> {
    return this.http.json('POST', ws(id, '/processes'), { json: input, ...o });
  }
  processList(id: string, o: Signal = {}): Promise<{ workspace_id: string; processes: ProcessInfo[] }> {
    return this.http.json('GET', ws(id, '/processes'), o);
  }
  async processOutput(id: string, pid: number, q: { offset?: number; max_bytes?: number; wait_ms?: number } = {}, o: Signal = {}): Promise<ProcessOutput> {
    const r = await this.http.json<{ parts: Array<{ stream: 'stdout' | 'stderr'; data: string }>; next_offset: number; dropped_bytes: number; process: ProcessInfo }>(
      'GET', ws(id, `/processes/${pid}/output`), { query: { offset: q.offset?.toString(), max_bytes: q.max_bytes?.toString(), wait_ms: q.wait_ms?.toString() }, ...o });
    return { parts: r.parts.map((p) => ({ stream: p.stream, data: Buffer.from(p.data, 'base64') })), next: r.next_offset, dropped: r.dropped_bytes, proc: r.process };
  }
  async processWrite(id: string, pid: number, data: Buffer, o: Signal & { close?: boolean } = {}): Promise<number> {
    const r = await this.http.json<{ bytes: number }>('POST', ws(id, `/processes/${pid}/stdin`), { body: data, query: { close: o.close ? 'true' : undefined }, signal: o.signal });
    return r.bytes;
  }
  processSignal(id: string, pid: number, signal?: string, o: Signal = {}): Promise<ProcessInfo> {
    return this.http.json('POST', ws(id, `/processes/${pid}/signal`), { json: { signal }, ...o });
  }
  processWait(id: string, pid: number, timeoutMs?: number, o: Signal = {}): Promise<ProcessInfo> {
    return this.http.json('POST', ws(id, `/processes/${pid}/wait`), { json: { timeout_ms: timeoutMs }, ...o });
  }
  async processResize(id: string, pid: number, cols: number, rows: number, o: Signal = {}): Promise<void> {
    await this.http.json('POST', ws(id, `/processes/${pid}/resize`), { json: { cols, rows }, ...o });
  }

  // --- agent sessions (Bonfire's routes) ---
  sessionCreate(input: SessionCreateInput, o: Signal = {}): Promise<SessionInfo> {
    return this.http.json('POST', '/api/agent/sessions', { json: input, ...o });
  }
  async sessionList(input: SessionListInput = {}): Promise<SessionInfo[]> {
    return (await this.http.json<{ sessions: SessionInfo[] }>('GET', '/api/agent/sessions', { query: { state: input.state } })).sessions;
  }
  sessionGet(id: string): Promise<SessionInfo> { return this.http.json('GET', `/api/agent/sessions/${enc(id)}`); }
  sessionDelete(id: string, o: Signal = {}): Promise<{ sessionId: string; deleted: true }> {
    return this.http.json('DELETE', `/api/agent/sessions/${enc(id)}`, o);
  }
}

/**
 * Reads an exec-style NDJSON stream (/exec, /run) to its end: output events to onOutput, any other event but
 * exit and error to onEvent; returns the exit event's fields, throws the error event's error. Read to the end
 * even after the last event: a response left unfinished would close the kept-alive connection.
 */
async function readExecStream(
  res: IncomingMessage, what: string, o: { signal?: AbortSignal }, onOutput: (stream: 'stdout' | 'stderr', chunk: Buffer) => void,
  onEvent?: (ev: Record<string, unknown>) => void,
): Promise<Record<string, unknown>> {
  let result: Record<string, unknown> | undefined;
  let failed: Record<string, unknown> | undefined;
  try {
    for await (const ev of ndjson(res)) {
      if (result || failed) continue;
      if (ev.type === 'stdout' || ev.type === 'stderr') onOutput(ev.type, Buffer.from(String(ev.data), 'base64'));
      else if (ev.type === 'exit') { const { type: _t, ...rest } = ev; result = rest; }
      else if (ev.type === 'error') failed = ev;
      else onEvent?.(ev);
    }
  } catch (e) {
    // A stream cut short (daemon killed, connection reset) is the daemon's absence, not a command failure.
    throw e instanceof IsletApiError || o.signal?.aborted ? e : IsletApiError.unavailable(e as Error);
  }
  if (failed) throw errorFromBody(failed.error, 200);
  if (result) return result;
  throw IsletApiError.unavailable(new Error(`the ${what} stream ended without a result`));
}
