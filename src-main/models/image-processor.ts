// Image preprocessing from preprocessor_config.json (CLIPImageProcessor / SiglipImageProcessor /
// LlavaImageProcessor): decoding with sharp (exact against PIL for the modes tested), resizing with PIL's own
// resampling re-done in JS (pil-resample.ts). Output is float32 CHW pixel_values.
//
// Order, as transformers does it: convert to RGB (alpha dropped, not composited, like PIL's convert("RGB")),
// [pad to square with the mean colour: LlavaImageProcessor do_pad], resize (CLIP: shortest edge, aspect kept,
// long side int(size * long / short); SigLIP: exact height x width), center crop (top = (h - crop_h) // 2),
// rescale (x * rescale_factor), normalize ((x - mean) / std). Resize and crop work on uint8 as PIL does.
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { pilResize } from './pil-resample';
import { decodePngRgb } from './png-rgb';

export class PreprocessorError extends Error {}

export interface PreprocessorConfig {
  doConvertRgb: boolean;
  doPad: boolean;
  doResize: boolean;
  /** shortest_edge: resize so the short side is this long; height/width: resize to exactly this */
  size: { shortestEdge: number } | { height: number; width: number };
  /** PIL resample code: 0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming */
  resample: number;
  doCenterCrop: boolean;
  cropSize: { height: number; width: number };
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
  raw: Record<string, unknown>;
}

const OPENAI_CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
const OPENAI_CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

export function parsePreprocessorConfig(json: unknown, file = 'preprocessor_config.json'): PreprocessorConfig {
  if (!json || typeof json !== 'object' || Array.isArray(json))
    throw new PreprocessorError(`${file}: not a JSON object`);
  const o = json as Record<string, unknown>;
  const err = (field: string, msg: string): never => {
    throw new PreprocessorError(`${file}: field "${field}": ${msg}`);
  };
  const bool = (k: string, d: boolean) => {
    const v = o[k] ?? d;
    if (typeof v !== 'boolean') err(k, `must be true or false, got ${JSON.stringify(v)}`);
    return v as boolean;
  };
  const posInt = (v: unknown, k: string) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
      err(k, `must be a positive integer, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const triple = (k: string, d: [number, number, number]): [number, number, number] => {
    const v = o[k] ?? d;
    const arr = typeof v === 'number' ? [v, v, v] : v;
    if (!Array.isArray(arr) || arr.length !== 3 || !arr.every((x) => typeof x === 'number' && Number.isFinite(x)))
      err(k, `must be 3 numbers, got ${JSON.stringify(v)}`);
    return arr as [number, number, number];
  };
  const type = typeof o.image_processor_type === 'string' ? o.image_processor_type : '';
  const siglip = /siglip/i.test(type);
  // BlipImageProcessor: an int size means a square (get_size_dict default_to_square), no center crop, 384 by default
  const blip = /^blip/i.test(type);
  const square = siglip || blip;
  let size: PreprocessorConfig['size'];
  const s =
    o.size ?? (blip ? { height: 384, width: 384 } : siglip ? { height: 224, width: 224 } : { shortest_edge: 224 });
  if (typeof s === 'number')
    size = square ? { height: posInt(s, 'size'), width: s } : { shortestEdge: posInt(s, 'size') };
  else if (s && typeof s === 'object' && 'shortest_edge' in s)
    size = { shortestEdge: posInt((s as Record<string, unknown>).shortest_edge, 'size.shortest_edge') };
  else if (s && typeof s === 'object' && 'height' in s && 'width' in s)
    size = {
      height: posInt((s as Record<string, unknown>).height, 'size.height'),
      width: posInt((s as Record<string, unknown>).width, 'size.width'),
    };
  else return err('size', `must be {shortest_edge} or {height, width}, got ${JSON.stringify(s)}`);
  const c = o.crop_size ?? { height: 224, width: 224 };
  let cropSize: PreprocessorConfig['cropSize'];
  if (typeof c === 'number') cropSize = { height: posInt(c, 'crop_size'), width: c };
  else if (c && typeof c === 'object' && 'height' in c && 'width' in c)
    cropSize = {
      height: posInt((c as Record<string, unknown>).height, 'crop_size.height'),
      width: posInt((c as Record<string, unknown>).width, 'crop_size.width'),
    };
  else return err('crop_size', `must be a number or {height, width}, got ${JSON.stringify(c)}`);
  const resample = o.resample ?? 3;
  if (typeof resample !== 'number' || ![0, 1, 2, 3, 4, 5].includes(resample))
    err('resample', `must be a PIL resample code 0-5, got ${JSON.stringify(resample)}`);
  const rescaleFactor = o.rescale_factor ?? 1 / 255;
  if (typeof rescaleFactor !== 'number' || !Number.isFinite(rescaleFactor))
    err('rescale_factor', `must be a number, got ${JSON.stringify(rescaleFactor)}`);
  const imageStd = triple('image_std', siglip ? [0.5, 0.5, 0.5] : OPENAI_CLIP_STD);
  if (imageStd.some((x) => x === 0)) err('image_std', 'has a zero');
  return {
    doConvertRgb: bool('do_convert_rgb', true),
    doPad: bool('do_pad', false),
    doResize: bool('do_resize', true),
    size,
    resample: resample as number,
    doCenterCrop: bool('do_center_crop', !square),
    cropSize,
    doRescale: bool('do_rescale', true),
    rescaleFactor: rescaleFactor as number,
    doNormalize: bool('do_normalize', true),
    imageMean: triple('image_mean', siglip ? [0.5, 0.5, 0.5] : OPENAI_CLIP_MEAN),
    imageStd,
    raw: o,
  };
}

/** An RGB image as interleaved uint8 (HWC). */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

export type ImageInput = string | Buffer | Uint8Array | RgbImage;

/**
 * Decode any image sharp reads (PNG, JPEG, WebP, ...) to interleaved RGB uint8, equal to what transformers' processors
 * get from PIL: Image.open + convert("RGB") (no EXIF rotation, as Image.open). PIL's conversions:
 * alpha dropped, not composited (RGBA, LA, P with transparency); greyscale repeated; palette looked up; 16-bit RGB(A)
 * keeps the high byte; 16-bit greyscale (PIL mode "I") is clipped to 255, not scaled; CMYK becomes
 * nk - nk*c/255 with nk = 255 - k (Pillow's cmyk2rgb, no ICC). Embedded ICC profiles are ignored, as PIL ignores them.
 */
export async function decodeRgb(
  input: string | Buffer | Uint8Array,
  what = typeof input === 'string' ? input : 'image',
  opts: DecodeOptions = {},
): Promise<RgbImage> {
  const rgb = await decodeRgbDropAlpha(input, what);
  if (opts.alpha !== 'white') return rgb;
  let alpha: Buffer;
  try {
    alpha = await sharp(input, { ignoreIcc: true }).ensureAlpha().extractChannel(3).raw().toBuffer();
  } catch (e) {
    throw new PreprocessorError(`${what}: cannot decode image (${(e as Error).message})`);
  }
  if (alpha.length !== rgb.width * rgb.height)
    throw new PreprocessorError(
      `${what}: the alpha channel has ${alpha.length} values for ${rgb.width}x${rgb.height} pixels`,
    );
  return compositeOverWhite(rgb, alpha);
}

export interface DecodeOptions {
  /**
   * 'drop' (default): PIL's convert("RGB"). 'white': Idefics2/3's convert_to_rgb, convert("RGBA") then
   * Image.alpha_composite over opaque white, so transparent areas become white instead of their hidden colour.
   */
  alpha?: 'drop' | 'white';
}

/** Pillow's ImagingAlphaComposite (7-bit fixed point, rounded divisions by 255) of `rgb` + `alpha` over opaque white. */
export function compositeOverWhite(img: RgbImage, alpha: Uint8Array): RgbImage {
  const P = 7;
  const div255 = (a: number) => ((a >>> 8) + a) >>> 8;
  const out = new Uint8Array(img.data.length);
  for (let i = 0; i < alpha.length; i++) {
    const a = alpha[i];
    if (a === 0) {
      out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = 255;
      continue;
    }
    const blend = 255 * (255 - a);
    const outa255 = a * 255 + blend;
    const coef1 = Math.floor((a * 255 * 255 * (1 << P)) / outa255);
    const coef2 = 255 * (1 << P) - coef1;
    for (let c = 0; c < 3; c++) out[3 * i + c] = div255(img.data[3 * i + c] * coef1 + 255 * coef2 + (0x80 << P)) >>> P;
  }
  return { data: out, width: img.width, height: img.height };
}

async function decodeRgbDropAlpha(input: string | Buffer | Uint8Array, what: string): Promise<RgbImage> {
  try {
    // the common PNG decodes directly (tens of microseconds against sharp's fixed half millisecond); the file is
    // read once and handed to sharp as bytes when it is not that PNG
    if (typeof input === 'string') input = await readFile(input);
    const png = decodePngRgb(input);
    if (png) return png;
    // no EXIF rotation: PIL's Image.open does not apply it, and image sizes (tile grids) are read from the header
    const open = () => sharp(input, { ignoreIcc: true });
    const meta = await open().metadata();
    if (meta.space === 'cmyk') {
      const { data, info } = await open()
        .pipelineColourspace('cmyk')
        .toColourspace('cmyk')
        .raw()
        .toBuffer({ resolveWithObject: true });
      if (info.channels !== 4) throw new Error(`CMYK image decoded to ${info.channels} channels`);
      const n = info.width * info.height;
      const rgb = new Uint8Array(n * 3);
      for (let i = 0; i < n; i++) {
        const nk = 255 - data[4 * i + 3];
        for (let c = 0; c < 3; c++) {
          const t = data[4 * i + c] * nk + 128;
          rgb[3 * i + c] = nk - (((t >> 8) + t) >> 8);
        }
      }
      return { data: rgb, width: info.width, height: info.height };
    }
    if (meta.depth === 'ushort' && meta.channels === 1) {
      const { data, info } = await open()
        .toColourspace('grey16')
        .raw({ depth: 'ushort' })
        .toBuffer({ resolveWithObject: true });
      const u16 = new Uint16Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length));
      const n = info.width * info.height;
      const rgb = new Uint8Array(n * 3);
      for (let i = 0; i < n; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = Math.min(255, u16[i * info.channels]);
      return { data: rgb, width: info.width, height: info.height };
    }
    const { data, info } = await open().removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) {
      // greyscale sources come back with one channel on some paths: expand
      const rgb = new Uint8Array(info.width * info.height * 3);
      for (let i = 0; i < info.width * info.height; i++)
        rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = data[i * info.channels];
      return { data: rgb, width: info.width, height: info.height };
    }
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
  } catch (e) {
    throw new PreprocessorError(`${what}: cannot decode image (${(e as Error).message})`);
  }
}

/** transformers' get_resize_output_image_size(default_to_square=False) for shortest_edge. */
export function shortestEdgeSize(width: number, height: number, shortest: number): { width: number; height: number } {
  const short = Math.min(width, height);
  const long = Math.max(width, height);
  const newLong = Math.floor((shortest * long) / short);
  return width <= height ? { width: shortest, height: newLong } : { width: newLong, height: shortest };
}

/** PIL's Image.resize(..., resample, reducing_gap=None) on RGB uint8 (see pil-resample.ts), as transformers' resize does. */
export async function resizeRgb(img: RgbImage, width: number, height: number, resample = 3): Promise<RgbImage> {
  if (img.width === width && img.height === height) return img;
  const out = pilResize({ ...img, channels: 3 }, width, height, resample);
  return { data: out.data, width, height };
}

/** transformers' center_crop: top = (h - ch) // 2, left = (w - cw) // 2; zero-pads when the image is smaller. */
export function centerCropRgb(img: RgbImage, cw: number, ch: number): RgbImage {
  if (img.width === cw && img.height === ch) return img;
  const out = new Uint8Array(cw * ch * 3);
  // offset of the crop window in the source; negative means padding (centered like transformers: ceil on top/left pad)
  const top = img.height >= ch ? Math.floor((img.height - ch) / 2) : -Math.ceil((ch - img.height) / 2);
  const left = img.width >= cw ? Math.floor((img.width - cw) / 2) : -Math.ceil((cw - img.width) / 2);
  for (let y = 0; y < ch; y++) {
    const sy = y + top;
    if (sy < 0 || sy >= img.height) continue;
    for (let x = 0; x < cw; x++) {
      const sx = x + left;
      if (sx < 0 || sx >= img.width) continue;
      const si = (sy * img.width + sx) * 3;
      const di = (y * cw + x) * 3;
      out[di] = img.data[si];
      out[di + 1] = img.data[si + 1];
      out[di + 2] = img.data[si + 2];
    }
  }
  return { data: out, width: cw, height: ch };
}

/** LlavaImageProcessor.pad_to_square: centered, background = int(mean * 255). */
export function padToSquareRgb(img: RgbImage, mean: [number, number, number]): RgbImage {
  if (img.width === img.height) return img;
  const n = Math.max(img.width, img.height);
  const out = new Uint8Array(n * n * 3);
  const bg = mean.map((m) => Math.trunc(m * 255));
  for (let i = 0; i < n * n; i++) {
    out[3 * i] = bg[0];
    out[3 * i + 1] = bg[1];
    out[3 * i + 2] = bg[2];
  }
  const top = Math.floor((n - img.height) / 2);
  const left = Math.floor((n - img.width) / 2);
  for (let y = 0; y < img.height; y++) {
    out.set(img.data.subarray(y * img.width * 3, (y + 1) * img.width * 3), ((y + top) * n + left) * 3);
  }
  return { data: out, width: n, height: n };
}

export interface PixelValues {
  /** [3, height, width] float32, channel-major */
  data: Float32Array;
  height: number;
  width: number;
}

export class ImageProcessor {
  constructor(readonly config: PreprocessorConfig) {}

  /** The output size for an input of this size. */
  outputSize(width: number, height: number): { width: number; height: number } {
    const c = this.config;
    let w = width;
    let h = height;
    if (c.doPad) w = h = Math.max(w, h);
    if (c.doResize)
      ({ width: w, height: h } = 'shortestEdge' in c.size ? shortestEdgeSize(w, h, c.size.shortestEdge) : c.size);
    if (c.doCenterCrop) ({ width: w, height: h } = c.cropSize);
    return { width: w, height: h };
  }

  /** Resized/cropped uint8 RGB, before rescale and normalize. */
  async prepare(input: ImageInput): Promise<RgbImage> {
    const c = this.config;
    let img: RgbImage = typeof input === 'string' || input instanceof Uint8Array ? await decodeRgb(input) : input;
    if (img.data.length !== img.width * img.height * 3)
      throw new PreprocessorError(`image data has ${img.data.length} bytes, expected ${img.width}x${img.height}x3`);
    if (c.doPad) img = padToSquareRgb(img, c.imageMean);
    if (c.doResize) {
      const { width, height } =
        'shortestEdge' in c.size ? shortestEdgeSize(img.width, img.height, c.size.shortestEdge) : c.size;
      img = await resizeRgb(img, width, height, c.resample);
    }
    if (c.doCenterCrop) img = centerCropRgb(img, c.cropSize.width, c.cropSize.height);
    return img;
  }

  /** pixel_values for one image: float32 [3, H, W]. */
  async process(input: ImageInput): Promise<PixelValues> {
    return this.toPixelValues(await this.prepare(input));
  }

  /**
   * pixel_values [N, 3, S, S] of a batch, processed concurrently (decoders that run in libuv's pool overlap); an
   * image the processor does not bring to S x S is refused with `fail`, naming it and `what` takes S x S.
   */
  async squareBatch(
    images: readonly ImageInput[],
    S: number,
    fail: (message: string) => Error,
    what = 'the vision model',
  ): Promise<{ data: Float32Array; n: number; size: number }> {
    const pvs = await Promise.all(images.map((im) => this.process(im)));
    const data = new Float32Array(images.length * 3 * S * S);
    pvs.forEach((pv, i) => {
      if (pv.height !== S || pv.width !== S)
        throw fail(`image ${i + 1}: the processor gives ${pv.width}x${pv.height}, ${what} takes ${S}x${S}`);
      data.set(pv.data, i * 3 * S * S);
    });
    return { data, n: images.length, size: S };
  }

  toPixelValues(img: RgbImage): PixelValues {
    const c = this.config;
    const hw = img.width * img.height;
    const out = new Float32Array(3 * hw);
    const scale = c.doRescale ? c.rescaleFactor : 1;
    // one rounding to float32 at the end; numpy rounds after rescale and after each normalize step (<= 1 ulp apart)
    for (let ch = 0; ch < 3; ch++) {
      const mean = c.doNormalize ? c.imageMean[ch] : 0;
      const std = c.doNormalize ? c.imageStd[ch] : 1;
      for (let i = 0; i < hw; i++) out[ch * hw + i] = (img.data[i * 3 + ch] * scale - mean) / std;
    }
    return { data: out, height: img.height, width: img.width };
  }
}
