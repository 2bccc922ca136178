// A direct decoder for the common PNG: 8-bit samples, not interlaced, greyscale / RGB / palette / grey+alpha / RGBA.
// A training step's images are small PNGs, and sharp costs about 0.5 ms of fixed work per image (two pipelines:
// header, then pixels) where the inflate and unfiltering take tens of microseconds. Anything this decoder does not
// handle exactly (16-bit or packed samples, interlacing, a bad CRC, an unknown critical chunk, truncated data) returns
// null and the caller decodes with sharp, which also words the error for a broken file.
import { crc32, inflateSync } from 'node:zlib';
import type { RgbImage } from './image-processor';

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/** Larger images go to sharp (its pixel limit and streaming decode); this path is for thumbnails-to-photos. */
const MAX_PIXELS = 16 * 1024 * 1024;
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

/**
 * The image as PIL's Image.open(...).convert("RGB") gives it (alpha dropped, greyscale repeated, palette looked up,
 * ancillary chunks such as gAMA and iCCP ignored), or null when the file is not a PNG this decoder takes.
 */
export function decodePngRgb(buf: Uint8Array): RgbImage | null {
  if (buf.length < 8 + 25 + 12) return null;
  for (let i = 0; i < 8; i++) if (buf[i] !== SIGNATURE[i]) return null;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let width = 0;
  let height = 0;
  let colorType = -1;
  let palette: Uint8Array | null = null;
  const idat: Uint8Array[] = [];
  let pos = 8;
  let first = true;
  for (;;) {
    if (pos + 12 > buf.length) return null;
    const len = view.getUint32(pos);
    const end = pos + 12 + len;
    if (len > 0x7fffffff || end > buf.length) return null;
    const type = String.fromCharCode(buf[pos + 4], buf[pos + 5], buf[pos + 6], buf[pos + 7]);
    const data = buf.subarray(pos + 8, pos + 8 + len);
    if (crc32(buf.subarray(pos + 4, pos + 8 + len)) !== view.getUint32(pos + 8 + len)) return null;
    if (first !== (type === 'IHDR')) return null;
    first = false;
    if (type === 'IHDR') {
      if (len !== 13) return null;
      width = view.getUint32(pos + 8);
      height = view.getUint32(pos + 12);
      const depth = data[8];
      colorType = data[9];
      // compression 0, filter method 0, no interlace
      if (depth !== 8 || !(colorType in CHANNELS) || data[10] !== 0 || data[11] !== 0 || data[12] !== 0) return null;
      if (width === 0 || height === 0 || width * height > MAX_PIXELS) return null;
    } else if (type === 'PLTE') {
      if (len % 3 !== 0 || len === 0 || len > 256 * 3) return null;
      palette = data;
    } else if (type === 'IDAT') {
      idat.push(data);
    } else if (type === 'IEND') {
      break;
    } else if ((buf[pos + 4] & 0x20) === 0) {
      // an unknown critical chunk: a decoder must not guess
      return null;
    }
    pos = end;
  }
  if (idat.length === 0 || (colorType === 3 && !palette)) return null;
  const channels = CHANNELS[colorType];
  const stride = width * channels;
  const expected = (stride + 1) * height;
  let raw: Buffer;
  try {
    raw = inflateSync(idat.length === 1 ? idat[0] : Buffer.concat(idat), { maxOutputLength: expected });
  } catch {
    return null;
  }
  if (raw.length !== expected) return null;
  const rows = unfilter(raw, stride, height, channels);
  if (!rows) return null;
  const data = toRgb(rows, width * height, colorType, palette);
  return data && { data, width, height };
}

/** The scanlines unfiltered, without their filter bytes; null on an unknown filter type. */
function unfilter(raw: Uint8Array, stride: number, height: number, bpp: number): Uint8Array | null {
  const out = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = y * (stride + 1) + 1;
    const at = y * stride;
    const up = at - stride; // the row above in `out`; absent on the first row
    switch (filter) {
      case 0:
        out.set(raw.subarray(src, src + stride), at);
        break;
      case 1:
        for (let x = 0; x < stride; x++) out[at + x] = raw[src + x] + (x >= bpp ? out[at + x - bpp] : 0);
        break;
      case 2:
        if (y === 0) out.set(raw.subarray(src, src + stride), at);
        else for (let x = 0; x < stride; x++) out[at + x] = raw[src + x] + out[up + x];
        break;
      case 3:
        for (let x = 0; x < stride; x++) {
          const a = x >= bpp ? out[at + x - bpp] : 0;
          const b = y > 0 ? out[up + x] : 0;
          out[at + x] = raw[src + x] + ((a + b) >>> 1);
        }
        break;
      case 4:
        for (let x = 0; x < stride; x++) {
          const a = x >= bpp ? out[at + x - bpp] : 0;
          const b = y > 0 ? out[up + x] : 0;
          const c = x >= bpp && y > 0 ? out[up + x - bpp] : 0;
          const p = a + b - c;
          const pa = Math.abs(p - a);
          const pb = Math.abs(p - b);
          const pc = Math.abs(p - c);
          out[at + x] = raw[src + x] + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
        }
        break;
      default:
        return null;
    }
  }
  return out;
}

function toRgb(px: Uint8Array, n: number, colorType: number, palette: Uint8Array | null): Uint8Array | null {
  if (colorType === 2) return px;
  const rgb = new Uint8Array(n * 3);
  if (colorType === 6) {
    for (let i = 0; i < n; i++) {
      rgb[3 * i] = px[4 * i];
      rgb[3 * i + 1] = px[4 * i + 1];
      rgb[3 * i + 2] = px[4 * i + 2];
    }
  } else if (colorType === 3) {
    const pal = palette!;
    const entries = pal.length / 3;
    for (let i = 0; i < n; i++) {
      // an index past a short palette: left to sharp rather than guessed
      if (px[i] >= entries) return null;
      const k = px[i] * 3;
      rgb[3 * i] = pal[k];
      rgb[3 * i + 1] = pal[k + 1];
      rgb[3 * i + 2] = pal[k + 2];
    }
  } else {
    const step = colorType === 4 ? 2 : 1;
    for (let i = 0; i < n; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = px[step * i];
  }
  return rgb;
}
