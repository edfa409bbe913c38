/**
 * A PhaseTimer for Node: wall seconds, CPU seconds (user + system, all threads of the process)
 * and the largest resident set seen at the end of each timed call, per phase.
 */
import type { PhaseTimer } from '../pipeline/quantize.js';

export interface PhaseFigures {
  wallSeconds: number;
  cpuSeconds: number;
  /** Largest RSS sampled when a call of this phase ended, in MiB (the process's peak is resourceUsage().maxRSS). */
  rssMiB: number;
  calls: number;
}

export class PhaseClock implements PhaseTimer {
  readonly phases = new Map<string, PhaseFigures>();

  time<T>(phase: string, run: () => T): T {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    try {
      return run();
    } finally {
      const c = process.cpuUsage(c0);
      const f = this.phases.get(phase) ?? { wallSeconds: 0, cpuSeconds: 0, rssMiB: 0, calls: 0 };
      f.wallSeconds += (performance.now() - t0) / 1000;
      f.cpuSeconds += (c.user + c.system) / 1e6;
      f.rssMiB = Math.max(f.rssMiB, process.memoryUsage.rss() / 2 ** 20);
      f.calls++;
      this.phases.set(phase, f);
    }
  }

  toJSON(): Record<string, PhaseFigures> {
    return Object.fromEntries(this.phases);
  }
}
