// Background processes of a workspace: the guest agent owns them (they
// outlive this process, a host restart and a pause/resume), so every call
// here is a request to the agent of a running workspace; nothing about them
// is stored on the host. Also the long-exec path: an exec that may outlive
// its client's timeout runs as a background process and hands back its id.
import os from 'node:os';
import { IsletError } from '../core/errors.js';
import type {
  ProcessKillInput, ProcessOutputInput, ProcessRef, ProcessStartInput, ProcessWaitInput, ProcessWriteInput,
} from '../core/process-schemas.js';
import type { ExecInput, WorkspaceRef } from '../core/schemas.js';
import { type GuestProcesses, MAX_READ_BYTES, MAX_RING_BYTES, type ProcInfo } from '../guest/agent.js';
import { DEFAULT_MAX_OUTPUT, MAX_OUTPUT_LIMIT } from '../guest/exec.js';
import { execStreams } from '../core/encoding.js';
import type { WorkspaceContext } from './workspace-context.js';
import type { Caller, ExecHooks, ExecOutput, OpOptions } from './types.js';

export interface ProcessInfo {
  workspace_id: string;
  process_id: number;
  pid: number;
  command: string;
  running: boolean;
  exit_code: number | null;
  signal: string | null;
  /** Shell-style: exit_code, or 128 + the signal's number when killed (TERM: 143, KILL: 137); null while running. */
  exit_status: number | null;
  timed_out: boolean;
  started_at: string;
  duration_ms: number;
  output_bytes: number;
  dropped_bytes: number;
  stdin: boolean;
  pty: boolean;
}

export interface ProcessListOutput { workspace_id: string; processes: ProcessInfo[] }

export interface ProcessOutputOutput {
  workspace_id: string;
  process_id: number;
  stdout: string;
  stderr: string;
  start_offset: number;
  next_offset: number;
  dropped_bytes: number;
  process: ProcessInfo;
}

export interface ProcessWriteOutput { workspace_id: string; process_id: number; bytes: number; closed: boolean }

/** Raw output for surfaces that print bytes (CLI logs, shell). */
export interface RawOutput { parts: Array<{ stream: 'stdout' | 'stderr'; data: Buffer }>; next: number; dropped: number; proc: ProcessInfo }

const DEFAULT_WAIT_MS = 30_000;
/** One long poll of the exec path: short, so a cancel or the detach deadline is noticed soon. */
const EXEC_POLL_MS = 5_000;

/** The shell's $? for a process that ended: its code, or 128 + the signal number. */
export function exitStatus(code: number | null, signal: string | null): number {
  if (code !== null) return code;
  const n = signal ? (os.constants.signals as Record<string, number>)[`SIG${signal}`] : undefined;
  return 128 + (n ?? 0);
}

const infoOf = (workspace: string, p: ProcInfo): ProcessInfo => ({
  workspace_id: workspace, process_id: p.id, pid: p.pid, command: p.command, running: p.running, exit_code: p.exitCode,
  signal: p.signal, exit_status: p.running ? null : exitStatus(p.exitCode, p.signal), timed_out: p.timedOut, started_at: new Date(p.startedUnixMs || 0).toISOString(), duration_ms: p.durationMs,
  output_bytes: p.outputBytes, dropped_bytes: p.droppedBytes, stdin: p.stdin, pty: p.pty,
});

export class ProcessOps {
  constructor(private readonly s: WorkspaceContext) {}

  /** The processes of a running workspace's agent, and the workspace's id. */
  private target(c: Caller, ref: string): { procs: GuestProcesses; id: string } {
    return { procs: this.s.running(c, ref).agent.processes, id: this.s.resolve(c, ref).id };
  }

  async start(c: Caller, input: ProcessStartInput & { pty?: { cols: number; rows: number } }, o: OpOptions = {}): Promise<ProcessInfo> {
    const { procs, id } = this.target(c, input.workspace_id);
    const cmd = typeof input.command === 'string' ? { shell: input.command } : { argv: input.command };
    const r = await procs.start({
      ...cmd, env: input.env, cwd: input.cwd, stdin: input.stdin, timeoutMs: input.timeout_ms ?? 0, ringBytes: input.ring_bytes, pty: input.pty,
    }, o.signal);
    // The start reply has only ids; one wait of 0 ms gives the full record.
    return infoOf(id, await procs.wait(r.id, 0, o.signal));
  }

  async list(c: Caller, input: WorkspaceRef, o: OpOptions = {}): Promise<ProcessListOutput> {
    const { procs, id } = this.target(c, input.workspace_id);
    return { workspace_id: id, processes: (await procs.list(o.signal)).map((p) => infoOf(id, p)) };
  }

  async outputRaw(c: Caller, input: ProcessOutputInput, o: OpOptions = {}): Promise<RawOutput> {
    const { procs, id } = this.target(c, input.workspace_id);
    const r = await procs.output({ id: input.process_id, offset: input.offset ?? 0, maxBytes: input.max_bytes, waitMs: input.wait_ms }, o.signal);
    return { parts: r.parts, next: r.next, dropped: r.dropped, proc: infoOf(id, r.proc) };
  }

  async output(c: Caller, input: ProcessOutputInput, o: OpOptions = {}): Promise<ProcessOutputOutput> {
    const r = await this.outputRaw(c, input, o);
    const text = (s: 'stdout' | 'stderr') => Buffer.concat(r.parts.filter((p) => p.stream === s).map((p) => p.data)).toString('utf8');
    return {
      workspace_id: r.proc.workspace_id, process_id: input.process_id, stdout: text('stdout'), stderr: text('stderr'),
      start_offset: (input.offset ?? 0) + r.dropped, next_offset: r.next, dropped_bytes: r.dropped, process: r.proc,
    };
  }

  async write(c: Caller, input: ProcessWriteInput, o: OpOptions = {}): Promise<ProcessWriteOutput> {
    const { procs, id } = this.target(c, input.workspace_id);
    const data = Buffer.from(input.input, input.encoding ?? 'utf8');
    const bytes = await procs.write(input.process_id, data, input.close === true, o.signal);
    return { workspace_id: id, process_id: input.process_id, bytes, closed: input.close === true };
  }

  async kill(c: Caller, input: ProcessKillInput, o: OpOptions = {}): Promise<ProcessInfo> {
    const { procs, id } = this.target(c, input.workspace_id);
    return infoOf(id, await procs.signal(input.process_id, input.signal ?? 'TERM', o.signal));
  }

  async wait(c: Caller, input: ProcessWaitInput, o: OpOptions = {}): Promise<ProcessInfo> {
    const { procs, id } = this.target(c, input.workspace_id);
    return infoOf(id, await procs.wait(input.process_id, input.timeout_ms ?? DEFAULT_WAIT_MS, o.signal));
  }

  async resize(c: Caller, input: ProcessRef & { cols: number; rows: number }, o: OpOptions = {}): Promise<void> {
    const { procs } = this.target(c, input.workspace_id);
    await procs.resize(input.process_id, input.cols, input.rows, o.signal);
  }

  /** Writes raw bytes (terminal keystrokes); no close. */
  async writeRaw(c: Caller, input: ProcessRef, data: Buffer, o: OpOptions = {}): Promise<number> {
    const { procs } = this.target(c, input.workspace_id);
    return procs.write(input.process_id, data, false, o.signal);
  }

  /** Whether exec should take the detachable path: the command may outlive detachMs and the agent can keep it. */
  detachable(c: Caller, input: ExecInput, timeoutMs: number, detachMs: number): boolean {
    return (timeoutMs === 0 || timeoutMs > detachMs) && this.s.running(c, input.workspace_id).agent.processes.supports('proc');
  }

  /**
   * exec as a background process: waits up to detachMs for the exit; if the
   * command is still running then, returns what it printed so far with
   * running=true and its process_id (it keeps running in the guest).
   */
  async execDetachable(c: Caller, input: ExecInput, timeoutMs: number, detachMs: number, hooks: ExecHooks = {}): Promise<ExecOutput> {
    const { procs } = this.target(c, input.workspace_id);
    const t0 = performance.now();
    const maxOut = Math.min(input.max_output_bytes || DEFAULT_MAX_OUTPUT, MAX_OUTPUT_LIMIT);
    const cmd = typeof input.command === 'string' ? { shell: input.command } : { argv: input.command };
    const { id } = await procs.start({
      ...cmd, env: input.env, cwd: input.cwd, stdin: input.stdin !== undefined, timeoutMs,
      ringBytes: Math.min(2 * maxOut, MAX_RING_BYTES),
    }, hooks.signal);
    const kill = () => procs.signal(id, 'KILL').catch(() => undefined);
    const out = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
    const size = { stdout: 0, stderr: 0 };
    let truncated = false;
    let offset = 0;
    try {
      if (input.stdin !== undefined) await procs.write(id, Buffer.from(input.stdin), true, hooks.signal);
      for (;;) {
        const left = detachMs - (performance.now() - t0);
        const r = await procs.output({ id, offset, maxBytes: MAX_READ_BYTES, waitMs: Math.max(0, Math.min(EXEC_POLL_MS, left)) }, hooks.signal);
        if (r.dropped > 0) truncated = true;
        for (const p of r.parts) {
          const room = maxOut - size[p.stream];
          const kept = p.data.length > room ? p.data.subarray(0, Math.max(0, room)) : p.data;
          if (kept.length < p.data.length) truncated = true;
          if (kept.length) {
            out[p.stream].push(kept);
            size[p.stream] += kept.length;
            hooks.onData?.(p.stream, kept);
          }
        }
        offset = r.next;
        const done = !r.proc.running && offset >= r.proc.outputBytes;
        if (done || performance.now() - t0 >= detachMs) {
          return {
            exit_code: done ? r.proc.exitCode : null, signal: done ? r.proc.signal : null,
            ...execStreams(Buffer.concat(out.stdout), Buffer.concat(out.stderr)),
            timed_out: done && r.proc.timedOut, truncated, duration_ms: done ? r.proc.durationMs : Math.round(performance.now() - t0),
            running: !done, process_id: id, next_offset: offset,
          };
        }
      }
    } catch (e) {
      // Cancelled (or the link failed) while waiting: the caller gave up on the command, as with a plain exec.
      if (hooks.signal?.aborted || (e instanceof IsletError && e.code === 'CANCELLED')) await kill();
      throw e;
    }
  }
}
