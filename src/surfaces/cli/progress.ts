// Progress lines go to stderr so that stdout carries only the guest's output.
import type { Progress } from '../../core/progress.js';

export function stderrProgress(): Progress {
  const t0 = performance.now();
  return (msg) => {
    const s = ((performance.now() - t0) / 1000).toFixed(1).padStart(5);
    process.stderr.write(`[${s}s] ${msg}\n`);
  };
}
