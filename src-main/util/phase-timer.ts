// Wall time per named phase of a repeated piece of work (a training step: batch, images, feeds, session run, ...),
// summed over calls, so a benchmark or a log line can say where a step's milliseconds go. Cheap enough to stay on:
// one performance.now() per phase boundary.

export interface PhaseTotals {
  /** Summed milliseconds by phase, in the order phases were first seen. */
  ms: Record<string, number>;
  /** How many times each phase ran. */
  count: Record<string, number>;
}

export class PhaseTimer {
  private ms = new Map<string, number>();
  private count = new Map<string, number>();

  add(phase: string, ms: number): void {
    this.ms.set(phase, (this.ms.get(phase) ?? 0) + ms);
    this.count.set(phase, (this.count.get(phase) ?? 0) + 1);
  }

  /** Time `f` (sync or async) as `phase`. */
  async time<T>(phase: string, f: () => T | Promise<T>): Promise<T> {
    const t = performance.now();
    try {
      return await f();
    } finally {
      this.add(phase, performance.now() - t);
    }
  }

  /** Add another timer's totals (e.g. the executor's phases into the trainer's). */
  merge(o: PhaseTotals): void {
    for (const [k, v] of Object.entries(o.ms)) {
      this.ms.set(k, (this.ms.get(k) ?? 0) + v);
      this.count.set(k, (this.count.get(k) ?? 0) + (o.count[k] ?? 0));
    }
  }

  totals(): PhaseTotals {
    return { ms: Object.fromEntries(this.ms), count: Object.fromEntries(this.count) };
  }

  reset(): void {
    this.ms.clear();
    this.count.clear();
  }
}

/** "run 91% (7.2 ms), feeds 4% (0.3 ms), ..." per call of `per` (e.g. per step), largest first. */
export function formatPhases(t: PhaseTotals, per: number): string {
  const total = Object.values(t.ms).reduce((a, b) => a + b, 0);
  return Object.entries(t.ms)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${total > 0 ? Math.round((100 * v) / total) : 0}% (${(v / Math.max(1, per)).toFixed(2)} ms)`)
    .join(', ');
}
