// mulberry32: a small, well-mixed 32-bit PRNG; the same seed gives the same sequence everywhere (32-bit integer
// arithmetic only). Used where data must be reproducible bit for bit: dataset splits, demo data and weights, tests.

/** A generator of uniform numbers in [0, 1) for `seed`. */
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
