// islet/sdk: drive islet workspaces from TypeScript.
//
//   const islet = new Islet();                      // the local daemon (started if needed)
//   const ws = await islet.workspaces.create({ image: 'dev' });
//   const r = await ws.exec('make test', { onStdout: (b) => process.stdout.write(b) });
//   await ws.files.write('/root/a.txt', Buffer.from('hi'));
//   await ws.destroy();
import type { Readable } from 'node:stream';
import { loadConfig } from '../core/config.js';
import type { CreateInput, ListInput } from '../core/schemas.js';
import type { SessionCreateInput, SessionListInput } from '../core/session-schemas.js';
import type { WorkspaceInfo } from '../service/types.js';
import { ensureDaemon } from '../surfaces/daemon/connect.js';
import type { RunOutput, RunStarted } from '../service/run-ops.js';
import { ApiClient, type ExecResult, type ExecStreamHooks } from './api.js';
import { attachPty, createPty, type PtyHandle, type PtyOptions } from './pty.js';

export * from './errors.js';
export { ApiClient } from './api.js';
export type { ExecResult, ExecStreamHooks } from './api.js';
export type { PtyHandle, PtyOptions } from './pty.js';
export type { WorkspaceInfo } from '../service/types.js';
export type { SessionInfo } from '../service/sessions.js';
export type { RunOutput, RunStarted } from '../service/run-ops.js';

export interface IsletOptions {
  /** A daemon over TCP, e.g. http://127.0.0.1:7420 (needs a token). Default: the local daemon's unix socket. */
  url?: string;
  token?: string;
  /** Config file for the local daemon (default: the usual search). */
  config?: string;
  /** Owner to act as on the local socket (default [server] stdio_owner). */
  owner?: string;
}

export class Islet {
  private api: Promise<ApiClient> | undefined;
  readonly workspaces = {
    create: async (input: CreateInput = {}, o: { signal?: AbortSignal } = {}) => this.wrap(await (await this.client()).create(input, o)),
    list: async (input: ListInput = {}) => (await (await this.client()).list(input)).map((w) => this.wrap(w)),
    get: async (id: string) => this.wrap(await (await this.client()).info(id)),
  };
  /**
   * Agent sessions: a workspace (agent-ready) with a repository at a branch and OpenCode serving it.
   * create returns at once (state "creating"); get(id) until state is "ready", then use url with
   * basic auth opencode:<password>.
   */
  readonly sessions = {
    create: async (input: SessionCreateInput, o: { signal?: AbortSignal } = {}) => (await this.client()).sessionCreate(input, o),
    list: async (input: SessionListInput = {}) => (await this.client()).sessionList(input),
    get: async (id: string) => (await this.client()).sessionGet(id),
    delete: async (id: string, o: { signal?: AbortSignal } = {}) => (await this.client()).sessionDelete(id, o),
  };

  constructor(private readonly o: IsletOptions = {}) {}

  /** The REST client underneath, for routes the high level does not cover. */
  client(): Promise<ApiClient> {
    return this.api ??= (async () => {
      if (this.o.url) return new ApiClient({ url: this.o.url, token: this.o.token });
      const config = loadConfig(this.o.config);
      const socketPath = await ensureDaemon(config);
      return new ApiClient({ socketPath, headers: this.o.owner ? { 'x-islet-owner': this.o.owner } : {} });
    })();
  }

  node(): Promise<Record<string, unknown>> { return this.client().then((c) => c.node()); }

  /**
   * One command in a throwaway VM, as `islet run`: the daemon creates it (no network device), streams the output
   * to the hooks and destroys it when the command ends or this call is aborted. stdin: any bytes, up to 64 MiB.
   */
  async run(command: string | string[], o: ExecStreamHooks & {
    image?: string; vcpus?: number; memoryMb?: number; timeoutMs?: number; env?: Record<string, string>; cwd?: string; stdin?: Buffer | string;
    onStarted?: (s: RunStarted) => void;
  } = {}): Promise<RunOutput & { started: RunStarted }> {
    const stdin = o.stdin === undefined ? undefined : Buffer.from(o.stdin).toString('base64');
    return (await this.client()).run({
      command, image: o.image, vcpus: o.vcpus, memory_mb: o.memoryMb, timeout_ms: o.timeoutMs, env: o.env, cwd: o.cwd, stdin,
    }, o);
  }

  private wrap(info: WorkspaceInfo): Workspace { return new Workspace(this, info); }
}

export class Workspace {
  constructor(private readonly islet: Islet, public info: WorkspaceInfo) {}
  get id(): string { return this.info.workspace_id; }
  private api(): Promise<ApiClient> { return this.islet.client(); }

  /** A string runs with /bin/sh -c; an array is an argv. Output streams to the hooks; the result has it all (capped). */
  async exec(command: string | string[], o: ExecStreamHooks & { timeoutMs?: number; env?: Record<string, string>; cwd?: string; stdin?: string } = {}): Promise<ExecResult> {
    return (await this.api()).exec(this.id, { command, timeout_ms: o.timeoutMs, env: o.env, cwd: o.cwd, stdin: o.stdin }, o);
  }

  readonly files = {
    /** Writes a guest file from a Buffer, a string, or a stream (a Readable or any async iterable of bytes), streamed without holding it whole. */
    write: async (path: string, data: Buffer | Uint8Array | string | AsyncIterable<Uint8Array>, o: { mode?: number; signal?: AbortSignal } = {}) =>
      (await this.api()).writeFile(this.id, path, typeof data === 'string' ? Buffer.from(data) : data instanceof Uint8Array ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : data, o),
    /** A guest file's bytes in one Buffer (at most maxBytes, default 1 GiB); use readStream for larger files. */
    read: async (path: string, o: { signal?: AbortSignal; maxBytes?: number } = {}) => (await this.api()).readFile(this.id, path, o),
    /** A guest file as a Readable of its bytes, streamed from the guest as it is consumed. */
    readStream: async (path: string, o: { signal?: AbortSignal } = {}): Promise<Readable> => (await this.api()).readFileStream(this.id, path, o),
    /** Copies a file of the daemon's host (inside its transfer_dir) into the guest. */
    upload: async (hostPath: string, guestPath: string, o: { mode?: number } = {}) => (await this.api()).upload(this.id, { host_path: hostPath, guest_path: guestPath, mode: o.mode }),
    /** Copies a guest file to the daemon's host (inside its transfer_dir). */
    download: async (guestPath: string, hostPath: string, o: { overwrite?: boolean } = {}) =>
      (await this.api()).download(this.id, { guest_path: guestPath, host_path: hostPath, overwrite: o.overwrite }),
  };

  readonly snapshots = {
    create: async (name: string, o: { description?: string; includeMemory?: boolean } = {}) =>
      (await this.api()).snapshotCreate(this.id, { name, description: o.description, include_memory: o.includeMemory }),
    list: async () => (await this.api()).snapshotList(this.id),
    restore: async (snapshot: string) => (await this.api()).snapshotRestore(this.id, snapshot),
    delete: async (snapshot: string) => (await this.api()).snapshotDelete(this.id, snapshot),
  };

  /** Terminals: create starts a shell (or o.command) on a PTY and streams it over the daemon's WebSocket. */
  readonly pty = {
    create: async (o: PtyOptions): Promise<PtyHandle> => createPty(await this.api(), this.id, o),
    /** Re-attaches to a PTY process (after disconnect, or from another client), replaying output from `offset`. */
    attach: async (processId: number, o: { onData?: (d: Buffer) => void; offset?: number } = {}): Promise<PtyHandle> => {
      const api = await this.api();
      return attachPty(api, this.id, await api.processWait(this.id, processId, 0), o);
    },
  };

  async fork(o: { snapshot?: string; name?: string } = {}): Promise<Workspace> {
    return new Workspace(this.islet, await (await this.api()).fork(this.id, o));
  }
  /** Changes the TTL, idle stop or retention (minutes; 0 = never, null = the host default); see info.lifetime. */
  async setLifetime(o: { ttlMinutes?: number | null; idleStopMinutes?: number | null; retentionMinutes?: number | null }) {
    return (await this.api()).setLifetime(this.id, { ttl_minutes: o.ttlMinutes, idle_stop_minutes: o.idleStopMinutes, retention_minutes: o.retentionMinutes });
  }
  async refresh(): Promise<WorkspaceInfo> { return (this.info = await (await this.api()).info(this.id)); }
  async start(): Promise<void> { this.info = await (await this.api()).lifecycle(this.id, 'start'); }
  async stop(): Promise<void> { this.info = await (await this.api()).lifecycle(this.id, 'stop'); }
  async pause(): Promise<void> { this.info = await (await this.api()).lifecycle(this.id, 'pause'); }
  async resume(): Promise<void> { this.info = await (await this.api()).lifecycle(this.id, 'resume'); }
  async destroy(): Promise<void> { await (await this.api()).destroy(this.id); }
}
