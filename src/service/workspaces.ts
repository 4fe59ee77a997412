// WorkspaceService: the one place that orchestrates workspace lifecycle —
// ownership, quotas, state transitions, persistence, cleanup. Surfaces (MCP,
// CLI, HTTP) only parse, call one of these methods, and render.
import type { Config } from '../core/config.js';
import { IsletError } from '../core/errors.js';
import type { Progress } from '../core/progress.js';
import type {
  CreateInput, ExecInput, FileDownloadInput, FileReadInput, FileUploadInput, FileWriteInput, ListInput, WorkspaceRef,
} from '../core/schemas.js';
import type { Caller, ExecHooks, ExecOutput, OpOptions, WorkspaceInfo } from './types.js';

const todo = (): never => { throw new IsletError('NOT_SUPPORTED', 'not implemented yet'); };

export class WorkspaceService {
  private constructor(readonly config: Config) {}

  /** Opens the state database, reconciles it with live VMs, and returns the service. */
  static async open(config: Config, _o: { progress?: Progress } = {}): Promise<WorkspaceService> {
    return new WorkspaceService(config);
  }

  /** Detaches from every VM (they keep running) and closes the database. */
  async close(): Promise<void> {}

  async create(_c: Caller, _in: CreateInput, _o: OpOptions = {}): Promise<WorkspaceInfo> { return todo(); }
  async start(_c: Caller, _in: WorkspaceRef, _o: OpOptions = {}): Promise<WorkspaceInfo> { return todo(); }
  async stop(_c: Caller, _in: WorkspaceRef, _o: OpOptions = {}): Promise<WorkspaceInfo> { return todo(); }
  async destroy(_c: Caller, _in: WorkspaceRef, _o: OpOptions = {}): Promise<{ workspace_id: string; destroyed: true }> { return todo(); }
  async list(_c: Caller, _in: ListInput = {}): Promise<WorkspaceInfo[]> { return todo(); }
  async info(_c: Caller, _in: WorkspaceRef): Promise<WorkspaceInfo> { return todo(); }
  async exec(_c: Caller, _in: ExecInput, _o: ExecHooks = {}): Promise<ExecOutput> { return todo(); }
  async fileWrite(_c: Caller, _in: FileWriteInput, _o: OpOptions = {}): Promise<{ path: string; bytes: number }> { return todo(); }
  async fileRead(_c: Caller, _in: FileReadInput, _o: OpOptions = {}): Promise<{ path: string; content: string; encoding: 'utf8' | 'base64'; bytes: number }> { return todo(); }
  async fileUpload(_c: Caller, _in: FileUploadInput, _o: OpOptions = {}): Promise<{ host_path: string; guest_path: string; bytes: number }> { return todo(); }
  async fileDownload(_c: Caller, _in: FileDownloadInput, _o: OpOptions = {}): Promise<{ host_path: string; guest_path: string; bytes: number }> { return todo(); }
}
