// Runs an image's verify checks in a booted VM. The VM is anything with an
// exec (structurally a service Machine): the image layer must not depend on
// the service layer, which depends on it.
import type { VerifyCheck } from './recipe.js';

/** Generous because checks compile code, and under TCG that is slow. */
export const DEFAULT_CHECK_TIMEOUT_MS = 120_000;

export interface CheckExec {
  exec(req: { shell: string; timeoutMs?: number; maxOutputBytes?: number }): Promise<{
    exitCode: number | null;
    signal: string | null;
    timedOut: boolean;
    stdout: Buffer;
    stderr: Buffer;
    durationMs: number;
  }>;
}

export interface CheckResult {
  name: string;
  ok: boolean;
  /** Why it failed, or the first line of its output when it passed. */
  detail: string;
  durationMs: number;
}

const firstLine = (s: string) => s.trim().split('\n')[0]?.slice(0, 200) ?? '';
const tail = (s: string) => s.trim().split('\n').slice(-3).join(' | ').slice(0, 400);

/** Pass = exit 0, and stdout (trimmed) contains `expect` when the check has one. */
export function judge(check: VerifyCheck, r: Awaited<ReturnType<CheckExec['exec']>>): CheckResult {
  const stdout = r.stdout.toString('utf8');
  const stderr = r.stderr.toString('utf8');
  const base = { name: check.name, durationMs: r.durationMs };
  if (r.timedOut) return { ...base, ok: false, detail: `timed out after ${check.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS} ms` };
  if (r.exitCode !== 0) {
    const how = r.signal ? `killed by ${r.signal}` : `exit ${r.exitCode}`;
    return { ...base, ok: false, detail: `${how}${stderr.trim() || stdout.trim() ? `: ${tail(stderr || stdout)}` : ''}` };
  }
  if (check.expect !== undefined && !stdout.trim().includes(check.expect)) {
    return { ...base, ok: false, detail: `expected ${JSON.stringify(check.expect)} in stdout, got ${JSON.stringify(tail(stdout))}` };
  }
  return { ...base, ok: true, detail: firstLine(stdout) };
}

/**
 * Runs every check in order, even after a failure (one report shows all
 * that is wrong). A check that cannot even be started (agent gone) is a
 * failure of that check, not an exception.
 */
export async function runVerify(m: CheckExec, checks: readonly VerifyCheck[], onResult: (r: CheckResult) => void = () => {}): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  for (const c of checks) {
    const t0 = performance.now();
    let r: CheckResult;
    try {
      r = judge(c, await m.exec({ shell: c.run, timeoutMs: c.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS, maxOutputBytes: 1 << 20 }));
    } catch (e) {
      r = { name: c.name, ok: false, detail: `could not run: ${(e as Error).message}`, durationMs: Math.round(performance.now() - t0) };
    }
    out.push(r);
    onResult(r);
  }
  return out;
}
