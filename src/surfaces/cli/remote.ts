// The CLI's view of the service, served by the daemon: the same methods and
// results as WorkspaceService, each one REST call. The caller (owner, --all)
// travels as a claim on the unix socket, whose file mode is the authentication.
import type { Config } from '../../core/config.js';
import { IsletError } from '../../core/errors.js';
import type {
  CreateInput, ExecInput, FileDownloadInput, FileReadInput, FileUploadInput, FileWriteInput, ForkInput, ListInput, NetworkPolicyInput,
  PortForwardInput, PortForwardRemoveInput, SnapshotCreateInput, SnapshotRefInput, WorkspaceRef,
} from '../../core/schemas.js';
import type { SetLifetimeInput } from '../../core/lifetime-schemas.js';
import type { SessionCreateInput, SessionListInput, SessionRef } from '../../core/session-schemas.js';
import type { ProcessKillInput, ProcessOutputInput, ProcessRef, ProcessStartInput, ProcessWaitInput } from '../../core/process-schemas.js';
import { ApiClient } from '../../sdk/api.js';
import { IsletApiError } from '../../sdk/errors.js';
import type { Caller, ExecHooks, OpOptions, WorkspaceInfo } from '../../service/types.js';
import type { RunInput } from '../../core/run-schemas.js';
import type { RunHooks } from '../../service/run-ops.js';
import { ensureDaemon } from '../daemon/connect.js';

export class RemoteService {
  private constructor(private readonly socketPath: string) {}

  static async connect(config: Config): Promise<RemoteService> {
    return new RemoteService(await ensureDaemon(config));
  }

  private api(c: Caller): ApiClient {
    return new ApiClient({ socketPath: this.socketPath, headers: { 'x-islet-owner': c.owner, ...(c.admin ? { 'x-islet-admin': '1' } : {}) } });
  }

  create(c: Caller, input: CreateInput, o: OpOptions = {}) { return call(() => this.api(c).create(input, o)); }
  list(c: Caller, input: ListInput = {}) { return call(() => this.api(c).list(input)); }
  info(c: Caller, input: WorkspaceRef) { return call(() => this.api(c).info(input.workspace_id)); }
  start(c: Caller, input: WorkspaceRef, o: OpOptions = {}) { return call(() => this.api(c).lifecycle(input.workspace_id, 'start', o)); }
  stop(c: Caller, input: WorkspaceRef, o: OpOptions = {}) { return call(() => this.api(c).lifecycle(input.workspace_id, 'stop', o)); }
  pause(c: Caller, input: WorkspaceRef, o: OpOptions = {}) {
    return call(() => this.api(c).lifecycle(input.workspace_id, 'pause', o)) as Promise<WorkspaceInfo & { pause_ms: number }>;
  }
  resume(c: Caller, input: WorkspaceRef, o: OpOptions = {}) { return call(() => this.api(c).lifecycle(input.workspace_id, 'resume', o)); }
  destroy(c: Caller, input: WorkspaceRef, o: OpOptions = {}) { return call(() => this.api(c).destroy(input.workspace_id, o)); }

  exec(c: Caller, input: ExecInput, o: ExecHooks = {}) {
    const { workspace_id, ...rest } = input;
    return call(() => this.api(c).exec(workspace_id, rest, {
      signal: o.signal, onStdout: (b) => o.onData?.('stdout', b), onStderr: (b) => o.onData?.('stderr', b),
    }));
  }

  fileWrite(c: Caller, input: FileWriteInput, o: OpOptions = {}) {
    const data = Buffer.from(input.content, input.encoding ?? 'utf8');
    return call(() => this.api(c).writeFile(input.workspace_id, input.path, data, { mode: input.mode, signal: o.signal }));
  }
  async fileRead(c: Caller, input: FileReadInput, o: OpOptions = {}) {
    const max = input.max_bytes ?? 1 << 20;
    const data = await call(() => this.api(c).readFile(input.workspace_id, input.path, { signal: o.signal, maxBytes: max }));
    const encoding = input.encoding ?? 'utf8';
    return { path: input.path, content: data.toString(encoding), encoding, bytes: data.length };
  }
  fileUpload(c: Caller, input: FileUploadInput, o: OpOptions = {}) {
    const { workspace_id, ...rest } = input;
    return call(() => this.api(c).upload(workspace_id, rest, o));
  }
  fileDownload(c: Caller, input: FileDownloadInput, o: OpOptions = {}) {
    const { workspace_id, ...rest } = input;
    return call(() => this.api(c).download(workspace_id, rest, o));
  }

  snapshotCreate(c: Caller, input: SnapshotCreateInput, o: OpOptions = {}) {
    const { workspace_id, ...rest } = input;
    return call(() => this.api(c).snapshotCreate(workspace_id, rest, o));
  }
  snapshotList(c: Caller, input: WorkspaceRef) { return call(() => this.api(c).snapshotList(input.workspace_id)); }
  snapshotRestore(c: Caller, input: SnapshotRefInput, o: OpOptions = {}) {
    return call(() => this.api(c).snapshotRestore(input.workspace_id, input.snapshot, o));
  }
  snapshotDelete(c: Caller, input: SnapshotRefInput, o: OpOptions = {}) {
    return call(() => this.api(c).snapshotDelete(input.workspace_id, input.snapshot, o));
  }
  fork(c: Caller, input: ForkInput, o: OpOptions = {}) {
    const { workspace_id, ...rest } = input;
    return call(() => this.api(c).fork(workspace_id, rest, o));
  }

  processStart(c: Caller, input: ProcessStartInput & { pty?: { cols: number; rows: number } }, o: OpOptions = {}) {
    const { workspace_id, ...rest } = input;
    return call(() => this.api(c).processStart(workspace_id, rest, o));
  }
  processList(c: Caller, input: WorkspaceRef, o: OpOptions = {}) { return call(() => this.api(c).processList(input.workspace_id, o)); }
  processOutputRaw(c: Caller, input: ProcessOutputInput, o: OpOptions = {}) {
    return call(() => this.api(c).processOutput(input.workspace_id, input.process_id, { offset: input.offset, max_bytes: input.max_bytes, wait_ms: input.wait_ms }, o));
  }
  processWriteRaw(c: Caller, input: ProcessRef, data: Buffer, o: OpOptions = {}) {
    return call(() => this.api(c).processWrite(input.workspace_id, input.process_id, data, o));
  }
  processKill(c: Caller, input: ProcessKillInput, o: OpOptions = {}) {
    return call(() => this.api(c).processSignal(input.workspace_id, input.process_id, input.signal, o));
  }
  processWait(c: Caller, input: ProcessWaitInput, o: OpOptions = {}) {
    return call(() => this.api(c).processWait(input.workspace_id, input.process_id, input.timeout_ms, o));
  }
  processResize(c: Caller, input: ProcessRef & { cols: number; rows: number }, o: OpOptions = {}) {
    return call(() => this.api(c).processResize(input.workspace_id, input.process_id, input.cols, input.rows, o));
  }

  setLifetime(c: Caller, input: SetLifetimeInput) {
    const { workspace_id, ...rest } = input;
    return call(() => this.api(c).setLifetime(workspace_id, rest));
  }

  portForward(c: Caller, input: PortForwardInput, o: OpOptions = {}) {
    const { workspace_id, ...rest } = input;
    return call(() => this.api(c).portForward(workspace_id, rest, o));
  }
  portForwardRemove(c: Caller, input: PortForwardRemoveInput, o: OpOptions = {}) {
    return call(() => this.api(c).portForwardRemove(input.workspace_id, input.host_port, o)) as Promise<{ workspace_id: string; host_port: number; removed: true }>;
  }
  workspaceIp(c: Caller, input: WorkspaceRef) { return call(() => this.api(c).ip(input.workspace_id)); }
  networkPolicy(c: Caller, input: NetworkPolicyInput, o: OpOptions = {}) {
    const { workspace_id, ...rest } = input;
    return call(() => this.api(c).networkPolicy(workspace_id, rest, o));
  }

  sessionCreate(c: Caller, input: SessionCreateInput, o: OpOptions = {}) { return call(() => this.api(c).sessionCreate(input, o)); }
  sessionList(c: Caller, input: SessionListInput = {}) { return call(() => this.api(c).sessionList(input)); }
  sessionGet(c: Caller, input: SessionRef) { return call(() => this.api(c).sessionGet(input.sessionId)); }
  sessionDestroy(c: Caller, input: SessionRef, o: OpOptions = {}) { return call(() => this.api(c).sessionDelete(input.sessionId, o)); }

  run(c: Caller, input: RunInput, o: RunHooks = {}) {
    return call(() => this.api(c).run(input, {
      signal: o.signal, onStdout: (b) => o.onData?.('stdout', b), onStderr: (b) => o.onData?.('stderr', b), onStarted: o.onStarted,
    }));
  }

  /** Nothing to release: each call is one request. */
  async close(): Promise<void> {}
}

/** The daemon's error bodies become the same IsletError the in-process service throws, so the CLI renders them alike. */
async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof IsletApiError) {
      const code = (e.code === 'DAEMON_UNAVAILABLE' || e.code === 'UNAUTHORIZED' || e.code === 'NOT_FOUND') ? 'HOST_PREREQUISITE' : e.code;
      throw new IsletError(code as never, e.message.replace(/ \(hint: .*\)$/s, ''), e.hint, { ...e.details, ...(code !== e.code ? { api_code: e.code } : {}) }, { cause: e, retryable: e.retryable });
    }
    throw e;
  }
}
