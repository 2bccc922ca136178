// Whisper's log-mel input features, as transformers' WhisperFeatureExtractor computes them (numpy path,
// feature_extraction_whisper.py `_np_extract_fbank_features` with audio_utils.spectrogram / mel_filter_bank):
//
//   1. the mono waveform (float32) is padded with `padding_value` or truncated to chunk_length * sampling_rate samples
//   2. STFT: frames of n_fft samples every hop_length, centered (n_fft / 2 samples of reflect padding each side),
//      periodic Hann window (np.hanning(n_fft + 1)[:-1]), one-sided, power |X|^2
//   3. mel: filters from mel_filter_bank(1 + n_fft / 2, feature_size, 0 Hz, 8000 Hz, sampling_rate, norm='slaney',
//      mel_scale='slaney'), then max(1e-10, .) and log10
//   4. the last frame is dropped (3001 -> 3000 frames for 30 s), values clamped below at (max over the clip) - 8,
//      then (x + 4) / 4
//
// The spectrogram is computed in float64 like numpy; the result is float32 [feature_size, nb_max_frames] per clip.
// The DFT is a mixed-radix FFT (n_fft = 400 = 2^4 * 5^2: 400 x (2+2+2+2+5+5) complex multiply-adds per frame instead
// of 400 x 201 for the direct sum); sizes with a large prime factor fall back to that factor's direct sum.

export interface WhisperFeatureConfig {
  /** feature_size: mel bins (80, or 128 for large-v3) */
  featureSize: number;
  samplingRate: number;
  hopLength: number;
  /** chunk_length in seconds (30): clips are padded / truncated to this */
  chunkLength: number;
  nFft: number;
  paddingValue: number;
  /** chunkLength * samplingRate */
  nSamples: number;
  /** nSamples / hopLength (3000) */
  nbMaxFrames: number;
}

/** preprocessor_config.json of a Whisper folder (WhisperFeatureExtractor), with transformers' defaults. */
export function parseWhisperFeatureConfig(
  json: Record<string, unknown>,
  file = 'preprocessor_config.json',
): WhisperFeatureConfig {
  const int = (key: string, def: number, min: number, max: number): number => {
    const v = json[key] ?? def;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
      throw new Error(`${file}: field "${key}": must be an integer in [${min}, ${max}] (got ${JSON.stringify(v)})`);
    return v;
  };
  const fx = json.feature_extractor_type;
  if (fx !== undefined && fx !== 'WhisperFeatureExtractor')
    throw new Error(`${file}: field "feature_extractor_type": "${String(fx)}" is not WhisperFeatureExtractor`);
  const featureSize = int('feature_size', 80, 1, 512);
  const samplingRate = int('sampling_rate', 16000, 1000, 192000);
  const hopLength = int('hop_length', 160, 1, 100000);
  const chunkLength = int('chunk_length', 30, 1, 600);
  const nFft = int('n_fft', 400, 2, 16384);
  const pv = json.padding_value ?? 0;
  if (typeof pv !== 'number' || !Number.isFinite(pv))
    throw new Error(`${file}: field "padding_value": must be a number (got ${JSON.stringify(pv)})`);
  const nSamples = chunkLength * samplingRate;
  return {
    featureSize,
    samplingRate,
    hopLength,
    chunkLength,
    nFft,
    paddingValue: pv,
    nSamples,
    nbMaxFrames: Math.floor(nSamples / hopLength),
  };
}

/** WhisperFeatureExtractor's defaults (whisper-tiny/base/small: 80 bins, 16 kHz, hop 160, 30 s, n_fft 400). */
export function whisperFeatureConfig(over: Partial<Record<string, number>> = {}): WhisperFeatureConfig {
  return parseWhisperFeatureConfig(over as Record<string, unknown>, 'WhisperFeatureExtractor');
}

function hertzToMelSlaney(f: number): number {
  const minLogHertz = 1000;
  const minLogMel = 15;
  const logstep = 27 / Math.log(6.4);
  return f >= minLogHertz ? minLogMel + Math.log(f / minLogHertz) * logstep : (3 * f) / 200;
}

function melToHertzSlaney(m: number): number {
  const minLogHertz = 1000;
  const minLogMel = 15;
  const logstep = Math.log(6.4) / 27;
  return m >= minLogMel ? minLogHertz * Math.exp(logstep * (m - minLogMel)) : (200 * m) / 3;
}

/** np.linspace(a, b, n) (numpy's formula: a + i * step, the last point exactly b). */
function linspace(a: number, b: number, n: number): Float64Array {
  const out = new Float64Array(n);
  const step = (b - a) / (n - 1);
  for (let i = 0; i < n; i++) out[i] = a + i * step;
  if (n > 1) out[n - 1] = b;
  return out;
}

/**
 * audio_utils.mel_filter_bank(num_frequency_bins, num_mel_filters, min_frequency, max_frequency, sampling_rate,
 * norm='slaney', mel_scale='slaney'): [num_frequency_bins, num_mel_filters], row-major.
 */
export function melFilterBank(
  numFrequencyBins: number,
  numMelFilters: number,
  minFrequency: number,
  maxFrequency: number,
  samplingRate: number,
): Float64Array {
  const melFreqs = linspace(hertzToMelSlaney(minFrequency), hertzToMelSlaney(maxFrequency), numMelFilters + 2);
  const filterFreqs = melFreqs.map(melToHertzSlaney);
  const fftFreqs = linspace(0, Math.floor(samplingRate / 2), numFrequencyBins);
  const out = new Float64Array(numFrequencyBins * numMelFilters);
  for (let m = 0; m < numMelFilters; m++) {
    const dDown = filterFreqs[m + 1] - filterFreqs[m];
    const dUp = filterFreqs[m + 2] - filterFreqs[m + 1];
    const enorm = 2 / (filterFreqs[m + 2] - filterFreqs[m]);
    for (let f = 0; f < numFrequencyBins; f++) {
      const down = -(filterFreqs[m] - fftFreqs[f]) / dDown;
      const up = (filterFreqs[m + 2] - fftFreqs[f]) / dUp;
      out[f * numMelFilters + m] = Math.max(0, Math.min(down, up)) * enorm;
    }
  }
  return out;
}

/** Features [featureSize, nbMaxFrames] of one clip, and how it was fitted to the window. */
export interface LogMelResult {
  data: Float32Array;
  bins: number;
  frames: number;
  /** the clip was longer than the window and its tail was cut (transformers truncates silently) */
  truncated: boolean;
  /** samples of the clip inside the window */
  samples: number;
}

/** The extractor with its tables built once (window, DFT twiddles, mel filters). */
export class WhisperFeatureExtractor {
  private readonly window: Float64Array;
  private readonly fft: MixedRadixFft;
  private readonly mel: Float64Array;
  readonly bins: number;

  constructor(readonly config: WhisperFeatureConfig) {
    const n = config.nFft;
    this.bins = 1 + Math.floor(n / 2);
    // periodic Hann: np.hanning(n + 1)[:-1] = 0.5 - 0.5 cos(2 pi i / n)
    this.window = new Float64Array(n);
    for (let i = 0; i < n; i++) this.window[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / n);
    this.fft = new MixedRadixFft(n);
    this.mel = melFilterBank(this.bins, config.featureSize, 0, 8000, config.samplingRate);
  }

  /** Log-mel features of one mono clip at config.samplingRate (resample first; this does not). */
  extract(waveform: Float32Array | Float64Array | readonly number[]): LogMelResult {
    const c = this.config;
    const n = c.nFft;
    const hop = c.hopLength;
    const half = Math.floor(n / 2);
    const len = c.nSamples;
    if (len <= half)
      throw new Error(`WhisperFeatureExtractor: the window (${len} samples) must be longer than n_fft / 2 (${half})`);
    // pad / truncate to the window, as float32 (np.asarray(raw_speech, dtype=np.float32))
    const x = new Float32Array(len).fill(c.paddingValue);
    const samples = Math.min(waveform.length, len);
    for (let i = 0; i < samples; i++) x[i] = waveform[i];
    // center=True, pad_mode='reflect' (numpy reflect: the edge sample is not repeated)
    const padded = new Float64Array(len + 2 * half);
    for (let i = 0; i < padded.length; i++) {
      let j = i - half;
      if (j < 0) j = -j;
      else if (j >= len) j = 2 * (len - 1) - j;
      padded[i] = x[j];
    }
    const numFrames = 1 + Math.floor((padded.length - n) / hop);
    const frames = numFrames - 1; // log_spec[:, :-1]
    const bins = this.bins;
    const M = c.featureSize;
    const logSpec = new Float32Array(M * frames);
    const power = new Float64Array(bins);
    const buf = new Float64Array(n);
    const zeros = new Float64Array(n);
    for (let f = 0; f < frames; f++) {
      const off = f * hop;
      for (let t = 0; t < n; t++) buf[t] = padded[off + t] * this.window[t];
      const { re, im } = this.fft.transform(buf, zeros);
      for (let k = 0; k < bins; k++) power[k] = re[k] * re[k] + im[k] * im[k];
      for (let m = 0; m < M; m++) {
        let s = 0;
        for (let k = 0; k < bins; k++) s += this.mel[k * M + m] * power[k];
        logSpec[m * frames + f] = Math.log10(Math.max(1e-10, s));
      }
    }
    let max = -Infinity;
    for (const v of logSpec) if (v > max) max = v;
    const floor = Math.fround(max - 8);
    for (let i = 0; i < logSpec.length; i++) logSpec[i] = (Math.max(logSpec[i], floor) + 4) / 4;
    return { data: logSpec, bins: M, frames, truncated: waveform.length > len, samples };
  }

  /** Features of several clips stacked [N, featureSize, nbMaxFrames] (input_features). */
  batch(clips: ReadonlyArray<Float32Array | Float64Array | readonly number[]>): {
    data: Float32Array;
    dims: [number, number, number];
    truncated: boolean[];
  } {
    const c = this.config;
    const per = c.featureSize * c.nbMaxFrames;
    const data = new Float32Array(clips.length * per);
    const truncated: boolean[] = [];
    clips.forEach((clip, i) => {
      const r = this.extract(clip);
      if (r.frames !== c.nbMaxFrames)
        throw new Error(`WhisperFeatureExtractor: ${r.frames} frames, expected ${c.nbMaxFrames}`);
      data.set(r.data, i * per);
      truncated.push(r.truncated);
    });
    return { data, dims: [clips.length, c.featureSize, c.nbMaxFrames], truncated };
  }
}

/** Complex DFT X[k] = sum_t x[t] exp(-2 pi i k t / n) by recursive mixed-radix decimation in time. */
export class MixedRadixFft {
  private readonly factors: number[] = [];
  private readonly wr: Float64Array;
  private readonly wi: Float64Array;
  private readonly outRe: Float64Array;
  private readonly outIm: Float64Array;
  private readonly tmpRe: Float64Array;
  private readonly tmpIm: Float64Array;

  constructor(readonly n: number) {
    let m = n;
    for (let p = 2; m > 1;) {
      if (m % p === 0) {
        this.factors.push(p);
        m /= p;
      } else p = p * p > m ? m : p + 1;
    }
    this.wr = new Float64Array(n);
    this.wi = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      const a = (2 * Math.PI * j) / n;
      this.wr[j] = Math.cos(a);
      this.wi[j] = -Math.sin(a);
    }
    this.outRe = new Float64Array(n);
    this.outIm = new Float64Array(n);
    this.tmpRe = new Float64Array(n);
    this.tmpIm = new Float64Array(n);
  }

  /** The transform of (re, im); the result arrays are reused by the next call. */
  transform(re: Float64Array, im: Float64Array): { re: Float64Array; im: Float64Array } {
    this.rec(re, im, 0, 1, this.n, 0, 0);
    return { re: this.outRe, im: this.outIm };
  }

  private rec(
    xr: Float64Array,
    xi: Float64Array,
    inOff: number,
    stride: number,
    n: number,
    outOff: number,
    fi: number,
  ): void {
    const or = this.outRe;
    const oi = this.outIm;
    if (n === 1) {
      or[outOff] = xr[inOff];
      oi[outOff] = xi[inOff];
      return;
    }
    const p = this.factors[fi];
    const m = n / p;
    for (let r = 0; r < p; r++) this.rec(xr, xi, inOff + r * stride, stride * p, m, outOff + r * m, fi + 1);
    // X[k + q m] = sum_r Y_r[k] W_n^(r (k + q m)), W_n^j = W_N^(j N / n)
    const step = this.n / n;
    const tr = this.tmpRe;
    const ti = this.tmpIm;
    for (let k = 0; k < m; k++)
      for (let q = 0; q < p; q++) {
        const kk = k + q * m;
        let sr = 0;
        let si = 0;
        for (let r = 0; r < p; r++) {
          const j = ((r * kk) % n) * step;
          const yr = or[outOff + r * m + k];
          const yi = oi[outOff + r * m + k];
          sr += yr * this.wr[j] - yi * this.wi[j];
          si += yr * this.wi[j] + yi * this.wr[j];
        }
        tr[kk] = sr;
        ti[kk] = si;
      }
    for (let k = 0; k < n; k++) {
      or[outOff + k] = tr[k];
      oi[outOff + k] = ti[k];
    }
  }
}
