// `islet run` in the daemon: a throwaway workspace, one command in it with
// its output streamed, then the workspace destroyed, whatever ends the run:
// the command's exit, a failure, the caller going away (its signal; REST: the
// client's connection closing, also when the client was killed), or the
// service closing. The workspace is an ordinary one created the usual way, so
// a warm pool VM or a template restore serves it instead of a cold boot; its
// row says kind 'run', so a daemon that starts after a crash removes it
// (reconcile.ts). It has no network device, as `islet run`'s VM never had.
import { decodeContent } from '../core/encoding.js';
import { firstLine, StateConflictError } from '../core/errors.js';
import { MAX_RUN_OUTPUT_BYTES, type RunInput } from '../core/run-schemas.js';
import type { CreateOps } from './create-ops.js';
import type { Lifetimes } from './lifetimes.js';
import type { Caller } from './types.js';
import type { WorkspaceContext } from './workspace-context.js';

export interface RunStarted {
  workspace_id: string;
  name: string;
  /** How the VM came up: a warm pool VM, a template restore, or a boot. */
  via: 'pool' | 'template' | 'boot';
  create_ms: number;
}

export interface RunOutput {
  workspace_id: string;
  exit_code: number | null;
  signal: string | null;
  timed_out: boolean;
  truncated: boolean;
  duration_ms: number;
}

export interface RunHooks {
  signal?: AbortSignal;
  onData?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
  /** The workspace is up and the command is about to start. */
  onStarted?: (s: RunStarted) => void;
}

export interface RunDeps {
  creates: CreateOps;
  lifetimes: Lifetimes;
  destroy: (c: Caller, id: string) => Promise<unknown>;
}

export class RunOps {
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Aborted by close: runs end (and destroy their workspaces) before the service detaches from its VMs. */
  private readonly closing = new AbortController();

  constructor(private readonly ctx: WorkspaceContext, private readonly d: RunDeps) {}

  /** What can be refused before anything is created: an unknown image (IMAGE_NOT_FOUND), stdin that is not base64. */
  async check(input: RunInput): Promise<void> {
    if (input.stdin !== undefined) decodeContent(input.stdin, 'base64', 'stdin');
    await this.ctx.rt.artifacts(input.image ?? this.ctx.config.resources.default_image);
  }

  run(c: Caller, input: RunInput, o: RunHooks = {}): Promise<RunOutput> {
    if (this.closing.signal.aborted) {
      return Promise.reject(new StateConflictError('the islet daemon is stopping', 'run the command again: the next call starts a new daemon'));
    }
    const p = this.runNow(c, input, o);
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p)).catch(() => undefined);
    return p;
  }

  private async runNow(c: Caller, input: RunInput, o: RunHooks): Promise<RunOutput> {
    const stdin = input.stdin === undefined ? undefined : decodeContent(input.stdin, 'base64', 'stdin');
    const signal = o.signal ? AbortSignal.any([o.signal, this.closing.signal]) : this.closing.signal;
    const t0 = performance.now();
    // ttl 0: no lifetime rule may stop the VM under a command that runs for days; the run itself bounds its life.
    const { info, via } = await this.d.creates.createFrom(c, { image: input.image, vcpus: input.vcpus, memory_mb: input.memory_mb, ttl_minutes: 0 },
      { signal }, undefined, 'run');
    const id = info.workspace_id;
    const createMs = Math.round(performance.now() - t0);
    this.ctx.progress(`run ${info.name}: ${via === 'pool' ? 'a warm pool VM' : via === 'template' ? 'restored from a template' : 'booted'} in ${createMs} ms`);
    try {
      this.ctx.store.setLifetime(id, { idle_stop_minutes: 0, retention_minutes: 0 });
      const m = this.ctx.running(c, id);
      o.onStarted?.({ workspace_id: id, name: info.name, via, create_ms: createMs });
      const release = this.d.lifetimes.hold(id);
      try {
        const r = await m.agent.exec({
          ...(typeof input.command === 'string' ? { shell: input.command } : { argv: input.command }),
          env: input.env, cwd: input.cwd, stdin,
          timeoutMs: input.timeout_ms ?? 0,
          maxOutputBytes: input.max_output_bytes ?? MAX_RUN_OUTPUT_BYTES,
          streamOnly: true,
        }, { signal, onData: o.onData });
        return { workspace_id: id, exit_code: r.exitCode, signal: r.signal, timed_out: r.timedOut, truncated: r.truncated, duration_ms: r.durationMs };
      } finally {
        release();
      }
    } finally {
      await this.d.destroy(c, id).catch((e: unknown) =>
        this.ctx.progress(`run ${info.name}: could not destroy its workspace (${firstLine(e)}); the next daemon start removes it`));
    }
  }

  /** Ends every run in flight (each destroys its workspace) and waits for them. */
  async close(): Promise<void> {
    this.closing.abort(new Error('the islet daemon is stopping'));
    await Promise.allSettled([...this.inFlight]);
  }
}
