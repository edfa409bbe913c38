/** Seeded random numbers for reproducible initialisations and tests (no global state). */

/** Uniform [0, 1) from a 32-bit seed (mulberry32): small, fast, good enough for k-means seeding. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n normal samples with standard deviation sd (Box–Muller over `rand`). */
export function gaussians(rand: () => number, n: number, sd = 1): Float32Array {
  return Float32Array.from({ length: n }, () => sd * Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand()));
}
