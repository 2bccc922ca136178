// Band-limited resampling: windowed-sinc interpolation with a Hann window, the algorithm of
// torchaudio.functional.resample(waveform, orig, new, lowpass_filter_width=6, rolloff=0.99,
// resampling_method='sinc_interp_hann'), which Whisper-style pipelines use to bring audio to 16 kHz.
//
// With the rates reduced by their gcd (o = orig/g, n = new/g), cutoff b = min(o, n)·rolloff and half-width
// w = lpw·o/b input samples, output sample j is
//   y[j] = (b/o) · Σ_k x[k] · sinc(π t) · cos²(π t / (2·lpw)),   t = clamp(b·(k/o − j/n), −lpw, lpw)
// over the input samples within the filter (zero outside the signal), for j < ceil(n·len/o). Computing each
// output directly from that sum is the same as torchaudio's strided conv1d over per-phase kernels; the kernels
// are tabulated when they are small (n phases × (2w + o) taps) and evaluated on the fly otherwise (co-prime rates).
// Arithmetic is float64; tests/media pin it against a PyTorch transcription of torchaudio's code.

export interface ResampleOptions {
  lowpassFilterWidth?: number;
  rolloff?: number;
  /** Largest kernel table (phases × taps) built; past it taps are computed on the fly. */
  maxTable?: number;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

const MAX_TABLE = 4 * 1024 * 1024;

export function resample(x: Float32Array, origRate: number, newRate: number, opts: ResampleOptions = {}): Float32Array {
  if (!Number.isInteger(origRate) || !Number.isInteger(newRate) || origRate <= 0 || newRate <= 0)
    throw new Error(`resample: rates must be positive integers (got ${origRate} → ${newRate})`);
  if (origRate === newRate) return x.slice();
  const lpw = opts.lowpassFilterWidth ?? 6;
  const rolloff = opts.rolloff ?? 0.99;
  const g = gcd(origRate, newRate);
  const o = origRate / g;
  const n = newRate / g;
  const base = Math.min(o, n) * rolloff;
  const width = Math.ceil((lpw * o) / base);
  const scale = base / o;
  const outLen = Math.ceil((n * x.length) / o);
  const y = new Float32Array(outLen);
  const taps = 2 * width + o;
  const tap = (t: number): number => {
    t = Math.max(-lpw, Math.min(lpw, t));
    const w = Math.cos((t * Math.PI) / lpw / 2) ** 2;
    const pt = t * Math.PI;
    return (pt === 0 ? 1 : Math.sin(pt) / pt) * w * scale;
  };
  // phase i = j mod n reads x[q·o − width + m], m ∈ [0, taps), q = floor(j/n), with t = b·((m − width)/o − i/n)
  let table: Float64Array | null = null;
  if (n * taps <= (opts.maxTable ?? MAX_TABLE)) {
    table = new Float64Array(n * taps);
    for (let i = 0; i < n; i++)
      for (let m = 0; m < taps; m++) table[i * taps + m] = tap(base * ((m - width) / o - i / n));
  }
  for (let j = 0; j < outLen; j++) {
    const q = Math.floor(j / n);
    const i = j - q * n;
    const start = q * o - width;
    const m0 = Math.max(0, -start);
    const m1 = Math.min(taps, x.length - start);
    let acc = 0;
    if (table) {
      const row = i * taps;
      for (let m = m0; m < m1; m++) acc += x[start + m] * table[row + m];
    } else {
      // only taps with |t| < lpw are non-zero (the window vanishes at the clamp): skip the rest of the row
      const centre = width + (i * o) / n;
      const half = (lpw * o) / base;
      const lo = Math.max(m0, Math.floor(centre - half));
      const hi = Math.min(m1, Math.ceil(centre + half) + 1);
      for (let m = lo; m < hi; m++) acc += x[start + m] * tap(base * ((m - width) / o - i / n));
    }
    y[j] = acc;
  }
  return y;
}
