// Where a start's time goes (issue 18): named marks along a boot, read by the
// bench to print a phase breakdown. Off (a no-op) unless a sink is set, so the
// service pays nothing for it; only the bench sets one.

export type PhaseSink = (label: string, at: number) => void;

let sink: PhaseSink | undefined;

/** Sets (or with undefined clears) the one sink; returns the previous. */
export function setPhaseSink(s: PhaseSink | undefined): PhaseSink | undefined {
  const prev = sink;
  sink = s;
  return prev;
}

/** Marks the end of a phase now (performance.now() clock). */
export function phase(label: string): void {
  sink?.(label, performance.now());
}
