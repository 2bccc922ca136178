// Demo data and random init draw from the mulberry32 stream of the one Rng (training/rng.ts).

import { Rng } from '../../training/rng';

/** The demo stream of `seed` (training/rng.ts Rng on mulberry32): demo data and random weights are pinned to it. */
export function demoRng(seed: number): Rng {
  return Rng.mulberry32(seed);
}

export type { Rng };

/** Mix a seed and an index into an independent 32-bit seed. */
export function subSeed(seed: number, index: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  h = Math.imul(h ^ (index + 0x7f4a7c15), 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}
