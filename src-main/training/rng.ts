// The one seedable pseudo-random generator: xoshiro128** (Blackman & Vigna, 2018) with a serialisable state,
// seeded through splitmix32 so that nearby seeds give unrelated streams; or, for demo data and random weights whose
// bytes are pinned by fixtures, the mulberry32 stream (`Rng.mulberry32(seed)`, util/mulberry32.ts) with paired
// Box-Muller normals. Same seed → same numbers on every platform (only 32-bit integer arithmetic via Math.imul and >>> 0).
import { mulberry32 } from '../util/mulberry32';

/** The full generator state: four unsigned 32-bit words (never all zero). JSON-safe. */
export interface RngState {
  algo: 'xoshiro128**';
  s: [number, number, number, number];
}

function splitmix32(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** Mix several integers into one 32-bit seed (e.g. `deriveSeed(seed, epoch)` for a per-epoch shuffle). */
export function deriveSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    if (!Number.isFinite(p)) throw new Error(`deriveSeed: part ${p} is not a finite number`);
    // fold the part in as two 32-bit halves so seeds above 2^32 are not truncated
    const lo = p >>> 0;
    const hi = Math.floor(p / 4294967296) >>> 0;
    h = splitmix32(h ^ lo)() ^ hi;
    h = splitmix32(h)();
  }
  return h >>> 0;
}

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  /** the mulberry32 stream, when made by Rng.mulberry32 */
  private m32?: () => number;
  private spare: number | null = null;

  /** The mulberry32 stream of `seed` (demo data, random weights): float() is one draw, normals come in pairs. */
  static mulberry32(seed: number): Rng {
    const r = new Rng(seed);
    r.m32 = mulberry32(seed);
    return r;
  }

  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new Error(`Rng: seed must be a finite number, got ${seed}`);
    const next = splitmix32(deriveSeed(seed));
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  static fromState(state: RngState): Rng {
    if (!state || state.algo !== 'xoshiro128**' || !Array.isArray(state.s) || state.s.length !== 4)
      throw new Error(`Rng.fromState: not an xoshiro128** state: ${JSON.stringify(state)}`);
    if (state.s.some((w) => !Number.isInteger(w) || w < 0 || w > 0xffffffff))
      throw new Error(`Rng.fromState: state words must be unsigned 32-bit integers: ${JSON.stringify(state.s)}`);
    if (state.s.every((w) => w === 0)) throw new Error('Rng.fromState: the all-zero state is invalid');
    const r = Object.create(Rng.prototype) as Rng;
    [r.s0, r.s1, r.s2, r.s3] = state.s;
    return r;
  }

  /** A copy of the state; `Rng.fromState(rng.state())` continues the same stream. */
  state(): RngState {
    if (this.m32) throw new Error('Rng.state: a mulberry32 stream has no serialisable state');
    return { algo: 'xoshiro128**', s: [this.s0, this.s1, this.s2, this.s3] };
  }

  /** The next unsigned 32-bit integer. */
  nextU32(): number {
    if (this.m32) return this.m32() * 4294967296;
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 = (this.s2 ^ this.s0) >>> 0;
    this.s3 = (this.s3 ^ this.s1) >>> 0;
    this.s1 = (this.s1 ^ this.s2) >>> 0;
    this.s0 = (this.s0 ^ this.s3) >>> 0;
    this.s2 = (this.s2 ^ t) >>> 0;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits (mulberry32: 32 bits, one draw). */
  float(): number {
    if (this.m32) return this.m32();
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n) without modulo bias (n ≤ 2^32). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 4294967296)
      throw new Error(`Rng.int: n must be an integer in [1, 2^32], got ${n}`);
    if (n === 1) return 0;
    const limit = 4294967296 - (4294967296 % n);
    for (;;) {
      const x = this.nextU32();
      if (x < limit) return x % n;
    }
  }

  /** float(), by its other name. */
  next(): number {
    return this.float();
  }

  /** Integer in [lo, hi]: lo + floor(float() * (hi - lo + 1)). */
  between(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }

  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.float() * xs.length)];
  }

  /** Fisher–Yates with j = floor(float() * (i + 1)), in place (shuffleInPlace draws unbiased integers instead). */
  shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = Math.floor(this.float() * (i + 1));
      [xs[i], xs[j]] = [xs[j], xs[i]];
    }
    return xs;
  }

  /**
   * Standard normal (Box–Muller). xoshiro: the second value is not cached, so the state alone determines the stream;
   * mulberry32: the pair's second value is the next call's.
   */
  normal(): number {
    if (this.m32) {
      if (this.spare !== null) {
        const v = this.spare;
        this.spare = null;
        return v;
      }
      let u = 0;
      while (u === 0) u = this.float();
      const v = this.float();
      const r = Math.sqrt(-2 * Math.log(u));
      this.spare = r * Math.sin(2 * Math.PI * v);
      return r * Math.cos(2 * Math.PI * v);
    }
    let u = 0;
    while (u === 0) u = this.float();
    const v = this.float();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Fisher–Yates shuffle in place, driven by `rng`; returns the array. */
export function shuffleInPlace<T>(array: T[], rng: Rng): T[] {
  for (let i = array.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const tmp = array[i];
    array[i] = array[j];
    array[j] = tmp;
  }
  return array;
}

/** A permutation of 0..n-1 determined by `seed`. */
export function permutation(n: number, seed: number): number[] {
  if (!Number.isInteger(n) || n < 0) throw new Error(`permutation: n must be a non-negative integer, got ${n}`);
  return shuffleInPlace(
    Array.from({ length: n }, (_, i) => i),
    new Rng(seed),
  );
}
