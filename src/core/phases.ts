// Where a start's time goes (issue 18): named marks along a boot, read by the
// bench to print a phase breakdown. Off (a no-op) unless a sink is set, so the
// service pays nothing for it; only the bench sets one.

/** detail: parts of the phase measured elsewhere (the guest's own steps), in ms. */
export type PhaseSink = (label: string, at: number, detail?: Record<string, number>) => void;

let sink: PhaseSink | undefined;

/** Sets (or with undefined clears) the one sink; returns the previous. */
export function setPhaseSink(s: PhaseSink | undefined): PhaseSink | undefined {
  const prev = sink;
  sink = s;
  return prev;
}

/** Marks the end of a phase now (performance.now() clock). */
export function phase(label: string, detail?: Record<string, number>): void {
  sink?.(label, performance.now(), detail);
}
