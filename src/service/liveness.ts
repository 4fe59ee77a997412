// A workspace whose commands time out is probed once with the agent's health
// request, and what the probe finds is reported as the workspace's error
// (workspace_info / workspace_list) until a command completes in time again.
// Without it a fork-bombed guest reads as plainly `running` while every exec
// times out, and the caller has no hint that a restart is the way out.
import type { Machine } from './machine.js';

/** Load average per vCPU above which a timed-out guest is called overloaded. */
const OVERLOAD_PER_VCPU = 4;
/** The probe's own deadline: an overloaded guest must not hold up the exec result for long. */
const PROBE_MS = 5_000;

export function livenessNote(probe: { ok: true; load1: number | undefined } | { ok: false; why: string }, vcpus: number): string | undefined {
  const hint = 'restart it (workspace_stop, then workspace_start) if commands keep timing out';
  if (!probe.ok) return `unresponsive: a command timed out and the guest agent did not answer a health check (${probe.why}); ${hint}`;
  if (probe.load1 !== undefined && probe.load1 > OVERLOAD_PER_VCPU * vcpus) {
    return `overloaded: a command timed out with the guest's load average at ${probe.load1.toFixed(1)} on ${vcpus} vCPU(s) (runaway processes?); ${hint}`;
  }
  return undefined;
}

export class Liveness {
  private readonly notes = new Map<string, string>();

  /** After an exec: clears the note when it finished in time, else probes the guest and records what it found. */
  async afterExec(id: string, m: Machine, vcpus: number, timedOut: boolean): Promise<void> {
    if (!timedOut) {
      this.notes.delete(id);
      return;
    }
    const deadline = AbortSignal.timeout(PROBE_MS);
    const probe = await m.health(deadline).then(
      (h) => ({ ok: true as const, load1: typeof h.load1 === 'number' ? h.load1 : undefined }),
      (e: unknown) => ({
        ok: false as const,
        why: deadline.aborted ? `no answer within ${PROBE_MS} ms` : e instanceof Error ? e.message.slice(0, 200) : String(e),
      }),
    );
    const note = livenessNote(probe, vcpus);
    if (note) this.notes.set(id, note);
    else this.notes.delete(id);
  }

  error(id: string): string | undefined {
    return this.notes.get(id);
  }

  forget(id: string): void {
    this.notes.delete(id);
  }
}
