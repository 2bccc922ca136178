// The direct PNG decoder against sharp (whose decode is checked against PIL in image-processor.test.ts and the PIL
// fixtures): every colour type it takes, every filter type, split IDAT chunks; and the files it must leave to sharp.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32, deflateSync } from 'node:zlib';
import sharp, { type PngOptions } from 'sharp';
import { decodePngRgb } from '../../src-main/models/png-rgb';
import { decodeRgb } from '../../src-main/models/image-processor';
import { demoRng } from '../../src-main/models/demo/rng';

/** What the sharp path gives: RGB uint8 with alpha removed. */
async function viaSharp(png: Buffer): Promise<number[]> {
  const { data, info } = await sharp(png, { ignoreIcc: true })
    .removeAlpha()
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  assert.equal(info.channels, 3);
  return [...data];
}

/** Pixels mixing noise and gradients, so adaptive filtering picks different filters on different rows. */
function pixels(w: number, h: number, channels: number, seed: number): Buffer {
  const rng = demoRng(seed);
  const out = Buffer.alloc(w * h * channels);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let c = 0; c < channels; c++)
        out[(y * w + x) * channels + c] = y % 3 === 0 ? rng.int(256) : (x * 7 + y * 3 + c * 50) & 255;
  return out;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/** An 8-bit PNG written by hand: row y uses filter `filters[y % filters.length]`; the IDAT split into `parts`. */
function handPng(w: number, h: number, colorType: number, px: Buffer, filters: number[], parts = 1): Buffer {
  const bpp = { 0: 1, 2: 3, 4: 2, 6: 4 }[colorType as 0 | 2 | 4 | 6];
  const stride = w * bpp;
  const raw = Buffer.alloc((stride + 1) * h);
  for (let y = 0; y < h; y++) {
    const f = filters[y % filters.length];
    raw[y * (stride + 1)] = f;
    for (let x = 0; x < stride; x++) {
      const cur = px[y * stride + x];
      const a = x >= bpp ? px[y * stride + x - bpp] : 0;
      const b = y > 0 ? px[(y - 1) * stride + x] : 0;
      const c = x >= bpp && y > 0 ? px[(y - 1) * stride + x - bpp] : 0;
      const p = a + b - c;
      const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
      const pred = [0, a, b, (a + b) >> 1, pa <= pb && pa <= pc ? a : pb <= pc ? b : c][f];
      raw[y * (stride + 1) + 1 + x] = (cur - pred) & 255;
    }
  }
  const z = deflateSync(raw);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8;
  ihdr[9] = colorType;
  const idats: Buffer[] = [];
  const size = Math.ceil(z.length / parts);
  for (let i = 0; i < z.length; i += size) idats.push(chunk('IDAT', z.subarray(i, i + size)));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    ...idats,
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

test('every colour type sharp writes at 8 bits decodes to the same RGB as sharp', async () => {
  const [w, h] = [37, 23];
  const encode = (channels: 1 | 2 | 3 | 4, seed: number, opts: PngOptions = {}) =>
    sharp(pixels(w, h, channels, seed), { raw: { width: w, height: h, channels } })
      .png(opts)
      .toBuffer();
  const cases: [string, Promise<Buffer>][] = [
    ['rgb', encode(3, 1)],
    ['rgba', encode(4, 2)],
    ['grey', encode(1, 3)],
    ['grey+alpha', encode(2, 4)],
    ['palette', encode(3, 5, { palette: true, colours: 200 })],
    ['rgb, adaptive filtering', encode(3, 6, { adaptiveFiltering: true, compressionLevel: 9 })],
  ];
  for (const [name, made] of cases) {
    const png = await made;
    const got = decodePngRgb(png);
    assert.ok(got, `${name}: taken by the direct decoder`);
    assert.deepEqual([got.width, got.height], [w, h], name);
    assert.deepEqual([...got.data], await viaSharp(png), name);
    // and decodeRgb (what preprocessing calls) agrees, from bytes and from a path alike
    assert.deepEqual([...(await decodeRgb(png)).data], [...got.data], name);
  }
});

test('each of the five filter types, alone and mixed, and an IDAT split in parts', async () => {
  const [w, h] = [19, 11];
  for (const colorType of [0, 2, 4, 6]) {
    const bpp = { 0: 1, 2: 3, 4: 2, 6: 4 }[colorType]!;
    const px = pixels(w, h, bpp, 10 + colorType);
    for (const filters of [[0], [1], [2], [3], [4], [4, 3, 2, 1, 0]]) {
      for (const parts of [1, 3]) {
        const png = handPng(w, h, colorType, px, filters, parts);
        const got = decodePngRgb(png);
        const what = `colour type ${colorType}, filters ${filters}, ${parts} IDAT`;
        assert.ok(got, what);
        assert.deepEqual([...got.data], await viaSharp(png), what);
      }
    }
  }
});

test('what it does not decode exactly is left to sharp: 16 bits, interlaced, a bad CRC, truncated, not a PNG', async () => {
  const [w, h] = [16, 9];
  const base = await sharp(pixels(w, h, 3, 20), { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toBuffer();
  const sixteen = await sharp(pixels(w, h, 3, 21), { raw: { width: w, height: h, channels: 3 } })
    .toColourspace('rgb16')
    .png()
    .toBuffer();
  assert.equal(sixteen[24], 16, 'a 16-bit file');
  assert.equal(decodePngRgb(sixteen), null);
  const interlaced = await sharp(base).png({ progressive: true }).toBuffer();
  assert.equal(interlaced[28], 1, 'an interlaced file');
  assert.equal(decodePngRgb(interlaced), null);
  // and decodeRgb still decodes those, through sharp
  assert.deepEqual([...(await decodeRgb(interlaced)).data], await viaSharp(base));
  const badCrc = Buffer.from(base);
  badCrc[40] ^= 1; // inside the first IDAT
  assert.equal(decodePngRgb(badCrc), null);
  assert.equal(decodePngRgb(base.subarray(0, base.length - 20)), null);
  assert.equal(decodePngRgb(Buffer.from('not an image at all, but long enough to be read as one')), null);
  const badFilter = handPng(w, h, 2, pixels(w, h, 3, 22), [0]);
  assert.ok(decodePngRgb(badFilter));
  // a filter type of 5 inside otherwise valid data
  const raw = Buffer.alloc((w * 3 + 1) * h);
  raw[0] = 5;
  const z = deflateSync(raw);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  const bad = Buffer.concat([
    base.subarray(0, 8),
    chunk('IHDR', ihdr),
    chunk('IDAT', z),
    chunk('IEND', Buffer.alloc(0)),
  ]);
  assert.equal(decodePngRgb(bad), null);
  // an unknown critical chunk ("ABCD": upper-case first letter) is not skipped
  const critical = Buffer.concat([base.subarray(0, 33), chunk('ABCD', Buffer.from([1])), base.subarray(33)]);
  assert.equal(decodePngRgb(critical), null);
  // an unknown ancillary one ("abCD") is
  const ancillary = Buffer.concat([base.subarray(0, 33), chunk('abCD', Buffer.from([1])), base.subarray(33)]);
  assert.deepEqual([...decodePngRgb(ancillary)!.data], await viaSharp(base));
});
