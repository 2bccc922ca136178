// PIL's Image.resize for 8-bit RGB (Pillow's Resample.c: ImagingResample with reducing_gap=None), which
// transformers' Idefics3ImageProcessor calls for every resize: a separable convolution, horizontal pass first, whose
// filter support grows with the downscale factor (antialiasing), coefficients normalised per output pixel and
// rounded to 22-bit fixed point, accumulated in integers from 1 << 21 and clipped to 0..255.
import type { RgbImage } from '../../image-processor';

interface Filter {
  support: number;
  f(x: number): number;
}

function sinc(x: number): number {
  if (x === 0) return 1;
  x *= Math.PI;
  return Math.sin(x) / x;
}

const FILTERS: Record<number, Filter> = {
  // 1 LANCZOS, 2 BILINEAR, 3 BICUBIC (a = -0.5), 4 BOX, 5 HAMMING
  1: { support: 3, f: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) },
  2: { support: 1, f: (x) => (x < 0 && (x = -x), x < 1 ? 1 - x : 0) },
  3: {
    support: 2,
    f: (x) => {
      const a = -0.5;
      if (x < 0) x = -x;
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
  4: { support: 0.5, f: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  5: { support: 1, f: (x) => (x < 0 && (x = -x), x === 0 ? 1 : x >= 1 ? 0 : Math.sin(x * Math.PI) / (x * Math.PI) * (0.54 + 0.46 * Math.cos(x * Math.PI))) },
};

const PRECISION_BITS = 32 - 8 - 2;

/** precompute_coeffs + normalize_coeffs_8bpc: per output pixel, the first input pixel, the count and int weights. */
function coeffs(inSize: number, outSize: number, filter: Filter): { bounds: Int32Array; k: Int32Array; ksize: number } {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const k = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      w[x] = filter.f((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0 ? w[x] / ww : w[x];
      k[xx * ksize + x] = Math.trunc(v * (1 << PRECISION_BITS) + (v < 0 ? -0.5 : 0.5));
    }
    bounds[2 * xx] = xmin;
    bounds[2 * xx + 1] = xmax;
  }
  return { bounds, k, ksize };
}

function clip8(v: number): number {
  const x = v >> PRECISION_BITS;
  return x < 0 ? 0 : x > 255 ? 255 : x;
}

/** Image.resize((width, height), resample) of an RGB image, exactly as Pillow computes it. */
export function pilResizeRgb(img: RgbImage, width: number, height: number, resample: number): RgbImage {
  if (img.width === width && img.height === height) return { data: img.data.slice(), width, height };
  const filter = FILTERS[resample];
  if (!filter) throw new Error(`PIL resample ${resample} is not supported here (1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming)`);
  let cur = img;
  const half = 1 << (PRECISION_BITS - 1);
  if (width !== cur.width) {
    const { bounds, k, ksize } = coeffs(cur.width, width, filter);
    const out = new Uint8Array(width * cur.height * 3);
    for (let y = 0; y < cur.height; y++)
      for (let xx = 0; xx < width; xx++) {
        const xmin = bounds[2 * xx];
        const xmax = bounds[2 * xx + 1];
        for (let c = 0; c < 3; c++) {
          // int32 arithmetic as in C (the sums stay far inside int32 for 8-bit input)
          let s = half;
          for (let x = 0; x < xmax; x++) s = (s + cur.data[((y * cur.width) + x + xmin) * 3 + c] * k[xx * ksize + x]) | 0;
          out[(y * width + xx) * 3 + c] = clip8(s);
        }
      }
    cur = { data: out, width, height: cur.height };
  }
  if (height !== cur.height) {
    const { bounds, k, ksize } = coeffs(cur.height, height, filter);
    const out = new Uint8Array(width * height * 3);
    for (let yy = 0; yy < height; yy++) {
      const ymin = bounds[2 * yy];
      const ymax = bounds[2 * yy + 1];
      for (let x = 0; x < width; x++)
        for (let c = 0; c < 3; c++) {
          let s = half;
          for (let y = 0; y < ymax; y++) s = (s + cur.data[((y + ymin) * width + x) * 3 + c] * k[yy * ksize + y]) | 0;
          out[(yy * width + x) * 3 + c] = clip8(s);
        }
    }
    cur = { data: out, width, height };
  }
  return cur;
}
