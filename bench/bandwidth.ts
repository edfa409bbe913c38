/**
 * The read-bandwidth probe of the decode benchmarks: the native addon's streaming sum over a
 * 512 MiB buffer (far past every cache), split across the backend's threads; best of `reps`.
 * Decode of a memory-bound model can at best read its weights at this rate.
 */
import type { NativeExtras } from '../src/node/native.js';

const PROBE_BYTES = 512 << 20;
let buffer: Uint8Array | undefined;

/** Bytes per second. */
export function probeBandwidth(be: NativeExtras, reps: number): number {
  if (!buffer) {
    buffer = new Uint8Array(PROBE_BYTES);
    buffer.fill(1); // touch every page before timing
  }
  be.streamSum(buffer);
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    be.streamSum(buffer);
    best = Math.min(best, (performance.now() - t) / 1000);
  }
  return PROBE_BYTES / best;
}
