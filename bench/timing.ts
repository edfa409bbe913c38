/** Timing shared by the kernel benchmarks. */

export interface TimingOptions {
  /** Each batch repeats the call until it lasts at least this long. */
  minBatchMs: number;
  /** Batches timed after the warm-up; the median is reported. */
  batches: number;
}

/** Median seconds per call of fn over `batches` batches, after one warm-up call. */
export function medianSeconds(fn: () => void, { minBatchMs, batches }: TimingOptions): number {
  fn();
  let reps = 1;
  for (;;) {
    const t = performance.now();
    for (let i = 0; i < reps; i++) fn();
    if (performance.now() - t >= minBatchMs) break;
    reps *= 2;
  }
  const times: number[] = [];
  for (let b = 0; b < batches; b++) {
    const t = performance.now();
    for (let i = 0; i < reps; i++) fn();
    times.push((performance.now() - t) / 1000 / reps);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}
