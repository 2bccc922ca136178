// PIL's Image.resize for 8-bit RGB, in JS, bit for bit (Pillow's libImaging/Resample.c), because transformers'
// slow image processors resize through PIL and every real photo is resized: another kernel (sharp's cubic,
// a different support, no antialiasing when downscaling) moves every pixel a model sees.
//
// What PIL does, and so what this does:
// - separable: a horizontal pass over the rows the vertical pass needs, rounded and clipped to uint8, then a
//   vertical pass (each pass skipped when that dimension keeps its size);
// - per output pixel, center = (i + 0.5) * scale; the filter's support is stretched by the downscale factor
//   (antialiasing) and never shrunk when enlarging; taps from int(center - support + 0.5) to
//   int(center + support + 0.5), clamped to the image; weights filter((x - center + 0.5) / filterscale),
//   normalised to sum 1;
// - 8-bit images use fixed-point weights: round-half-away(w * 2^22), accumulator starts at 2^21 (rounding),
//   result = clip(acc >> 22, 0, 255);
// - NEAREST is PIL's scaling affine transform: source index trunc(running sum of scale from scale / 2).
// reducing_gap is None in transformers, so there is no JPEG-draft or box pre-reduction.

/** PIL resample codes, as in preprocessor_config.json "resample". */
export const PIL_NEAREST = 0;
export const PIL_LANCZOS = 1;
export const PIL_BILINEAR = 2;
export const PIL_BICUBIC = 3;
export const PIL_BOX = 4;
export const PIL_HAMMING = 5;

interface Filter {
  f(x: number): number;
  support: number;
}

const sinc = (x: number): number => {
  if (x === 0) return 1;
  x *= Math.PI;
  return Math.sin(x) / x;
};

const FILTERS: Record<number, Filter> = {
  [PIL_BOX]: { support: 0.5, f: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  [PIL_BILINEAR]: {
    support: 1,
    f: (x) => {
      if (x < 0) x = -x;
      return x < 1 ? 1 - x : 0;
    },
  },
  [PIL_HAMMING]: {
    support: 1,
    f: (x) => {
      if (x < 0) x = -x;
      if (x === 0) return 1;
      if (x >= 1) return 0;
      x *= Math.PI;
      // 0.54f / 0.46f: Pillow writes these as float literals, so they are float32 values widened to double
      return (Math.sin(x) / x) * (Math.fround(0.54) + Math.fround(0.46) * Math.cos(x));
    },
  },
  [PIL_BICUBIC]: {
    support: 2,
    f: (x) => {
      const a = -0.5;
      if (x < 0) x = -x;
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
  [PIL_LANCZOS]: { support: 3, f: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) },
};

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;

interface Coeffs {
  ksize: number;
  /** per output index: first input index, number of taps */
  bounds: Int32Array;
  /** fixed-point weights, ksize per output index */
  kk: Int32Array;
}

/** C's (int) cast: truncation toward zero. */
const trunc = (x: number): number => (x < 0 ? Math.ceil(x) : Math.floor(x));

function precomputeCoeffs(inSize: number, outSize: number, filter: Filter): Coeffs {
  const scale = inSize / outSize;
  const filterscale = scale < 1 ? 1 : scale;
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  const ss = 1 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    let xmin = trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = filter.f((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const w = ww !== 0 ? k[x] / ww : k[x];
      // normalize_coeffs_8bpc: round half away from zero, then C's truncating cast
      kk[xx * ksize + x] = w < 0 ? trunc(-0.5 + w * ONE) : trunc(0.5 + w * ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

const clip8 = (acc: number): number => {
  const v = Math.floor(acc / ONE);
  return v < 0 ? 0 : v > 255 ? 255 : v;
};

/** Interleaved uint8 pixels: width x height x channels. */
export interface U8Image {
  data: Uint8Array;
  width: number;
  height: number;
  channels: number;
}

function resampleNearest(img: U8Image, outW: number, outH: number): U8Image {
  // ImagingScaleAffine: the source coordinate is accumulated (xo += scale), not multiplied, and the rounding
  // of that running sum decides which pixel is taken at the boundaries
  const c = img.channels;
  const out = new Uint8Array(outW * outH * c);
  const ax = img.width / outW;
  const ay = img.height / outH;
  const coord = (v: number) => (v < 0 ? -1 : Math.trunc(v));
  const xin = new Int32Array(outW);
  let xo = ax * 0.5;
  for (let x = 0; x < outW; x++) {
    xin[x] = Math.min(img.width - 1, coord(xo));
    xo += ax;
  }
  let yo = ay * 0.5;
  for (let y = 0; y < outH; y++) {
    const iy = Math.min(img.height - 1, coord(yo));
    yo += ay;
    for (let x = 0; x < outW; x++) {
      const si = (iy * img.width + xin[x]) * c;
      const di = (y * outW + x) * c;
      for (let ch = 0; ch < c; ch++) out[di + ch] = img.data[si + ch];
    }
  }
  return { data: out, width: outW, height: outH, channels: c };
}

/** PIL's Image.resize((outW, outH), resample, reducing_gap=None) for an 8-bit image of 1-4 interleaved channels. */
export function pilResize(img: U8Image, outW: number, outH: number, resample: number = PIL_BICUBIC): U8Image {
  if (!Number.isInteger(outW) || !Number.isInteger(outH) || outW < 1 || outH < 1)
    throw new RangeError(`resize target ${outW}x${outH} is not a positive integer size`);
  if (img.width === outW && img.height === outH) return img;
  if (resample === PIL_NEAREST) return resampleNearest(img, outW, outH);
  const filter = FILTERS[resample];
  if (!filter) throw new RangeError(`unknown PIL resample code ${resample}`);
  const c = img.channels;
  const horiz = precomputeCoeffs(img.width, outW, filter);
  const vert = precomputeCoeffs(img.height, outH, filter);
  const needH = outW !== img.width;
  const needV = outH !== img.height;
  let src = img;
  let vbounds = vert.bounds;
  if (needH) {
    // only the rows the vertical pass reads
    const first = vert.bounds[0];
    const last = vert.bounds[outH * 2 - 2] + vert.bounds[outH * 2 - 1];
    const rows = needV ? last - first : img.height;
    const y0 = needV ? first : 0;
    if (needV) {
      vbounds = vert.bounds.slice();
      for (let i = 0; i < outH; i++) vbounds[i * 2] -= first;
    }
    const tmp = new Uint8Array(outW * rows * c);
    const { ksize, bounds, kk } = horiz;
    const acc = new Float64Array(c);
    if (c === 3) horizontalRgb(img.data, img.width, y0, rows, outW, horiz, tmp);
    else
      for (let y = 0; y < rows; y++) {
        const rowOff = (y + y0) * img.width * c;
        for (let xx = 0; xx < outW; xx++) {
          const xmin = bounds[xx * 2];
          const xmax = bounds[xx * 2 + 1];
          acc.fill(ONE / 2);
          for (let x = 0; x < xmax; x++) {
            const w = kk[xx * ksize + x];
            const si = rowOff + (x + xmin) * c;
            for (let ch = 0; ch < c; ch++) acc[ch] += img.data[si + ch] * w;
          }
          const di = (y * outW + xx) * c;
          for (let ch = 0; ch < c; ch++) tmp[di + ch] = clip8(acc[ch]);
        }
      }
    src = { data: tmp, width: outW, height: rows, channels: c };
  }
  if (!needV) return src;
  const out = new Uint8Array(src.width * outH * c);
  const { ksize, kk } = vert;
  const acc = new Float64Array(c);
  const rowLen = src.width * c;
  if (c === 3) {
    verticalRgb(src.data, src.width, outH, vbounds, vert, out);
    return { data: out, width: src.width, height: outH, channels: c };
  }
  for (let yy = 0; yy < outH; yy++) {
    const ymin = vbounds[yy * 2];
    const ymax = vbounds[yy * 2 + 1];
    for (let xx = 0; xx < src.width; xx++) {
      acc.fill(ONE / 2);
      for (let y = 0; y < ymax; y++) {
        const w = kk[yy * ksize + y];
        const si = (y + ymin) * rowLen + xx * c;
        for (let ch = 0; ch < c; ch++) acc[ch] += src.data[si + ch] * w;
      }
      const di = (yy * src.width + xx) * c;
      for (let ch = 0; ch < c; ch++) out[di + ch] = clip8(acc[ch]);
    }
  }
  return { data: out, width: src.width, height: outH, channels: c };
}

// RGB passes with the three sums in locals (the images models see are RGB): the same integer sums in the same order
// as the general loops, about three times faster than a Float64Array accumulator per pixel

function horizontalRgb(
  data: Uint8Array,
  width: number,
  y0: number,
  rows: number,
  outW: number,
  { ksize, bounds, kk }: Coeffs,
  tmp: Uint8Array,
): void {
  const half = ONE / 2;
  for (let y = 0; y < rows; y++) {
    const rowOff = (y + y0) * width * 3;
    for (let xx = 0; xx < outW; xx++) {
      const xmin = bounds[xx * 2];
      const xmax = bounds[xx * 2 + 1];
      let r = half;
      let g = half;
      let b = half;
      let si = rowOff + xmin * 3;
      const k0 = xx * ksize;
      for (let x = 0; x < xmax; x++, si += 3) {
        const w = kk[k0 + x];
        r += data[si] * w;
        g += data[si + 1] * w;
        b += data[si + 2] * w;
      }
      const di = (y * outW + xx) * 3;
      tmp[di] = clip8(r);
      tmp[di + 1] = clip8(g);
      tmp[di + 2] = clip8(b);
    }
  }
}

function verticalRgb(
  data: Uint8Array,
  width: number,
  outH: number,
  vbounds: Int32Array,
  { ksize, kk }: Coeffs,
  out: Uint8Array,
): void {
  const half = ONE / 2;
  const rowLen = width * 3;
  for (let yy = 0; yy < outH; yy++) {
    const ymin = vbounds[yy * 2];
    const ymax = vbounds[yy * 2 + 1];
    const k0 = yy * ksize;
    for (let xx = 0; xx < width; xx++) {
      let r = half;
      let g = half;
      let b = half;
      let si = ymin * rowLen + xx * 3;
      for (let y = 0; y < ymax; y++, si += rowLen) {
        const w = kk[k0 + y];
        r += data[si] * w;
        g += data[si + 1] * w;
        b += data[si + 2] * w;
      }
      const di = (yy * width + xx) * 3;
      out[di] = clip8(r);
      out[di + 1] = clip8(g);
      out[di + 2] = clip8(b);
    }
  }
}
