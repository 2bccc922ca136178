// Idefics3ImageProcessor (the slow, PIL path) and the image part of Idefics3Processor, as transformers runs them:
//   1. convert to RGB; resize so the longest edge is size.longest_edge (up or down; the other side
//      int(longest / aspect), rounded up to even; capped at 4096), PIL resample (default LANCZOS)
//   2. with do_image_splitting: resize both sides up to multiples of max_image_size.longest_edge
//      (resize_for_vision_encoder), cut into rows x cols tiles of that size (row-major), then append the whole image
//      resized to max_image_size x max_image_size (the global image); an image no larger than one tile stays one
//      frame (0 x 0 grid). Without splitting: one frame resized to max_image_size square.
//   3. rescale (x * rescale_factor), normalize ((x - mean) / std). Every frame is max_image_size square, so do_pad
//      never pads and the pixel attention mask is all ones.
// Text: each <image> becomes, per tile, <fake_token_around_image><row_r_col_c> + image_seq_len x <image>, a "\n"
// after each row, then "\n<fake_token_around_image><global-img>" + image_seq_len x <image> + "<fake_token_around_image>"
// (a single frame: <fake_token_around_image><global-img> + image_seq_len x <image> + <fake_token_around_image>).
import sharp from 'sharp';
import { decodeRgb, PreprocessorError, type ImageInput, type RgbImage } from '../../image-processor';
import type { FamilyImageProcessor, ImageFrames, ImageGrid, TokenLookup } from '../types';
import { pilResizeRgb } from './pil-resample';

const MAX_IMAGE_SIZE = 4096;

export interface Idefics3ProcessorConfig {
  doConvertRgb: boolean;
  doResize: boolean;
  longestEdge: number;
  resample: number;
  doImageSplitting: boolean;
  maxImageSize: number;
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
}

export function parseIdefics3Preprocessor(json: Record<string, unknown>, file: string): Idefics3ProcessorConfig {
  const err = (field: string, msg: string): never => {
    throw new PreprocessorError(`${file}: field "${field}": ${msg}`);
  };
  const bool = (k: string, d: boolean): boolean => {
    const v = json[k] ?? d;
    if (typeof v !== 'boolean') err(k, `must be true or false, got ${JSON.stringify(v)}`);
    return v as boolean;
  };
  const edge = (k: string, d: number): number => {
    const v = json[k] ?? { longest_edge: d };
    const e = v && typeof v === 'object' ? (v as Record<string, unknown>).longest_edge : undefined;
    if (typeof e !== 'number' || !Number.isInteger(e) || e < 1 || e > MAX_IMAGE_SIZE)
      err(`${k}.longest_edge`, `must be an integer from 1 to ${MAX_IMAGE_SIZE}, got ${JSON.stringify(v)}`);
    return e as number;
  };
  const triple = (k: string): [number, number, number] => {
    const v = json[k] ?? [0.5, 0.5, 0.5];
    const arr = typeof v === 'number' ? [v, v, v] : v;
    if (!Array.isArray(arr) || arr.length !== 3 || !arr.every((x) => typeof x === 'number' && Number.isFinite(x)))
      err(k, `must be 3 numbers, got ${JSON.stringify(v)}`);
    return arr as [number, number, number];
  };
  const resample = json.resample ?? 1;
  if (typeof resample !== 'number' || ![1, 2, 3, 4, 5].includes(resample))
    err('resample', `must be a PIL resample code 1-5, got ${JSON.stringify(resample)}`);
  const rescaleFactor = json.rescale_factor ?? 1 / 255;
  if (typeof rescaleFactor !== 'number' || !Number.isFinite(rescaleFactor))
    err('rescale_factor', `must be a number, got ${JSON.stringify(rescaleFactor)}`);
  const imageStd = triple('image_std');
  if (imageStd.some((x) => x === 0)) err('image_std', 'has a zero');
  return {
    doConvertRgb: bool('do_convert_rgb', true),
    doResize: bool('do_resize', true),
    longestEdge: edge('size', 4 * 364),
    resample: resample as number,
    doImageSplitting: bool('do_image_splitting', true),
    maxImageSize: edge('max_image_size', 364),
    doRescale: bool('do_rescale', true),
    rescaleFactor: rescaleFactor as number,
    doNormalize: bool('do_normalize', true),
    imageMean: triple('image_mean'),
    imageStd,
  };
}

/** _resize_output_size_rescale_to_max_len then _resize_output_size_scale_below_upper_bound. */
export function longestEdgeSize(width: number, height: number, maxLen: number): { width: number; height: number } {
  let w = width;
  let h = height;
  let aspect = w / h;
  if (w >= h) {
    w = maxLen;
    h = Math.trunc(w / aspect);
    if (h % 2 !== 0) h += 1;
  } else {
    h = maxLen;
    w = Math.trunc(h * aspect);
    if (w % 2 !== 0) w += 1;
  }
  h = Math.max(h, 1);
  w = Math.max(w, 1);
  aspect = w / h;
  if (w >= h && w > MAX_IMAGE_SIZE) {
    w = MAX_IMAGE_SIZE;
    h = Math.trunc(w / aspect);
  } else if (h > w && h > MAX_IMAGE_SIZE) {
    h = MAX_IMAGE_SIZE;
    w = Math.trunc(h * aspect);
  }
  return { width: Math.max(w, 1), height: Math.max(h, 1) };
}

/** resize_for_vision_encoder: both sides up to multiples of the tile size, aspect kept through the longer side. */
export function visionEncoderSize(width: number, height: number, tile: number): { width: number; height: number } {
  const aspect = width / height;
  let w = width;
  let h = height;
  if (w >= h) {
    w = Math.ceil(w / tile) * tile;
    h = Math.trunc(w / aspect);
    h = Math.ceil(h / tile) * tile;
  } else {
    h = Math.ceil(h / tile) * tile;
    w = Math.trunc(h * aspect);
    w = Math.ceil(w / tile) * tile;
  }
  return { width: w, height: h };
}

function crop(img: RgbImage, x0: number, y0: number, x1: number, y1: number): RgbImage {
  const w = x1 - x0;
  const h = y1 - y0;
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    out.set(img.data.subarray(((y + y0) * img.width + x0) * 3, ((y + y0) * img.width + x1) * 3), y * w * 3);
  return { data: out, width: w, height: h };
}

export class Idefics3ImageProcessor implements FamilyImageProcessor {
  constructor(readonly config: Idefics3ProcessorConfig) {}

  /** Size after step 1 (the longest-edge resize). */
  private resized(width: number, height: number): { width: number; height: number } {
    return this.config.doResize ? longestEdgeSize(width, height, this.config.longestEdge) : { width, height };
  }

  grid(width: number, height: number): ImageGrid {
    const c = this.config;
    if (!c.doImageSplitting) return { rows: 0, cols: 0 };
    const r = this.resized(width, height);
    const v = visionEncoderSize(r.width, r.height, c.maxImageSize);
    if (v.height <= c.maxImageSize && v.width <= c.maxImageSize) return { rows: 0, cols: 0 };
    return { rows: Math.ceil(v.height / c.maxImageSize), cols: Math.ceil(v.width / c.maxImageSize) };
  }

  async gridOf(input: ImageInput): Promise<ImageGrid> {
    if (typeof input !== 'string' && !(input instanceof Uint8Array)) return this.grid(input.width, input.height);
    let meta;
    try {
      meta = await sharp(input).metadata();
    } catch (e) {
      throw new PreprocessorError(`cannot read the image header (${(e as Error).message})`);
    }
    if (!meta.width || !meta.height) throw new PreprocessorError('the image header has no size');
    // EXIF orientation is not applied by the decoder either (decodeRgb), so the stored size is the size processed
    return this.grid(meta.width, meta.height);
  }

  maxGrid(): ImageGrid {
    const c = this.config;
    if (!c.doImageSplitting) return { rows: 0, cols: 0 };
    const side = Math.ceil((c.doResize ? Math.min(c.longestEdge, MAX_IMAGE_SIZE) : MAX_IMAGE_SIZE) / c.maxImageSize);
    return side <= 1 ? { rows: 0, cols: 0 } : { rows: side, cols: side };
  }

  /** The uint8 frames (tiles row-major, then the global image) and the grid. */
  async frames(input: ImageInput): Promise<{ frames: RgbImage[]; grid: ImageGrid }> {
    const c = this.config;
    // Idefics3's convert_to_rgb composites transparency over white (not PIL's plain convert("RGB"))
    let img: RgbImage =
      typeof input === 'string' || input instanceof Uint8Array
        ? await decodeRgb(input, undefined, { alpha: c.doConvertRgb ? 'white' : 'drop' })
        : input;
    if (img.data.length !== img.width * img.height * 3)
      throw new PreprocessorError(`image data has ${img.data.length} bytes, expected ${img.width}x${img.height}x3`);
    if (c.doResize) {
      const s = longestEdgeSize(img.width, img.height, c.longestEdge);
      img = pilResizeRgb(img, s.width, s.height, c.resample);
    }
    const m = c.maxImageSize;
    if (!c.doImageSplitting) return { frames: [pilResizeRgb(img, m, m, c.resample)], grid: { rows: 0, cols: 0 } };
    const v = visionEncoderSize(img.width, img.height, m);
    img = pilResizeRgb(img, v.width, v.height, c.resample);
    const frames: RgbImage[] = [];
    let grid: ImageGrid = { rows: 0, cols: 0 };
    if (img.height > m || img.width > m) {
      const rows = Math.ceil(img.height / m);
      const cols = Math.ceil(img.width / m);
      const oh = Math.ceil(img.height / rows);
      const ow = Math.ceil(img.width / cols);
      for (let r = 0; r < rows; r++)
        for (let col = 0; col < cols; col++) {
          const x0 = col * ow;
          const y0 = r * oh;
          frames.push(crop(img, x0, y0, Math.min(x0 + ow, img.width), Math.min(y0 + oh, img.height)));
        }
      img = pilResizeRgb(img, m, m, c.resample);
      grid = { rows, cols };
    }
    frames.push(img);
    return { frames, grid };
  }

  async process(input: ImageInput): Promise<ImageFrames> {
    const c = this.config;
    const { frames, grid } = await this.frames(input);
    const m = c.maxImageSize;
    const hw = m * m;
    const out = new Float32Array(frames.length * 3 * hw);
    const scale = c.doRescale ? c.rescaleFactor : 1;
    frames.forEach((f, n) => {
      if (f.width !== m || f.height !== m)
        throw new PreprocessorError(`frame ${n} is ${f.width}x${f.height}, expected ${m}x${m}`);
      for (let ch = 0; ch < 3; ch++) {
        const mean = c.doNormalize ? c.imageMean[ch] : 0;
        const std = c.doNormalize ? c.imageStd[ch] : 1;
        const base = (n * 3 + ch) * hw;
        // float32 steps as numpy does them on the float32 array: x * scale, then (x - mean) / std
        for (let i = 0; i < hw; i++) out[base + i] = (Math.fround(f.data[i * 3 + ch] * scale) - mean) / std;
      }
    });
    return { data: out, frames: frames.length, height: m, width: m, ...grid };
  }
}

export const IDEFICS3_TOKENS = { fake: '<fake_token_around_image>', image: '<image>', global: '<global-img>' } as const;

/** The text one <image> becomes (Idefics3Processor get_image_prompt_string). */
export function imagePromptString(grid: ImageGrid, imageSeqLen: number): string {
  const { fake, image, global } = IDEFICS3_TOKENS;
  const run = image.repeat(imageSeqLen);
  if (grid.rows === 0 && grid.cols === 0) return `${fake}${global}${run}${fake}`;
  let s = '';
  for (let r = 0; r < grid.rows; r++) {
    for (let c = 0; c < grid.cols; c++) s += `${fake}<row_${r + 1}_col_${c + 1}>${run}`;
    s += '\n';
  }
  return `${s}\n${fake}${global}${run}${fake}`;
}

/**
 * Token ids of imagePromptString. The string starts and ends with special tokens, so tokenizing it alone gives the
 * same ids as tokenizing the whole expanded prompt (the tokenizer splits on special tokens first).
 */
export function imagePromptIds(grid: ImageGrid, imageSeqLen: number, tokens: TokenLookup): number[] {
  return tokens.encode(imagePromptString(grid, imageSeqLen), { addSpecialTokens: false });
}
