import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import {
  ImageProcessor,
  parsePreprocessorConfig,
  shortestEdgeSize,
  centerCropRgb,
  padToSquareRgb,
  decodeRgb,
  type RgbImage,
} from '../../src-main/models/image-processor';

const FIX = join(import.meta.dirname, '../fixtures/models');
const MEAN = [0.48145466, 0.4578275, 0.40821073];
const STD = [0.26862954, 0.26130258, 0.27577711];
const clipConfig = (size: number, crop: number) => ({
  image_processor_type: 'CLIPImageProcessor',
  do_resize: true,
  size: { shortest_edge: size },
  resample: 3,
  do_center_crop: true,
  crop_size: { height: crop, width: crop },
  do_rescale: true,
  rescale_factor: 1 / 255,
  do_normalize: true,
  image_mean: MEAN,
  image_std: STD,
  do_convert_rgb: true,
});

function rgb(width: number, height: number, f: (x: number, y: number) => [number, number, number]): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(f(x, y), (y * width + x) * 3);
  return { data, width, height };
}

test('rescale + normalize by hand, channel-major output', async () => {
  const p = new ImageProcessor(parsePreprocessorConfig(clipConfig(2, 2)));
  const img = rgb(2, 2, (x, y) => [10 + x, 200 - y, 30 * (x + y)]);
  const pv = await p.process(img);
  assert.equal(pv.data.length, 12);
  assert.equal(pv.width, 2);
  // pixel (x=1, y=0) = (11, 200, 30); channel c at index c*4 + y*2 + x
  const px = [11, 200, 30];
  for (let c = 0; c < 3; c++) {
    const want = (px[c] / 255 - MEAN[c]) / STD[c];
    assert.ok(Math.abs(pv.data[c * 4 + 1] - want) < 1e-6, `channel ${c}: ${pv.data[c * 4 + 1]} vs ${want}`);
  }
  // pixel (0, 1) = (10, 199, 30)
  assert.ok(Math.abs(pv.data[2] - (10 / 255 - MEAN[0]) / STD[0]) < 1e-6);
  assert.ok(Math.abs(pv.data[4 + 2] - (199 / 255 - MEAN[1]) / STD[1]) < 1e-6);
});

test('a square batch stacks the pixel values of each image in order and names an image of another size', async () => {
  const p = new ImageProcessor(parsePreprocessorConfig(clipConfig(2, 2)));
  const images = [0, 1, 2].map((k) => rgb(2, 2, (x, y) => [10 * k + x, 100 + y, 50 * k]));
  const b = await p.squareBatch(images, 2, (m) => new Error(m));
  assert.deepEqual([b.n, b.size, b.data.length], [3, 2, 36]);
  for (let k = 0; k < 3; k++)
    assert.deepEqual([...b.data.subarray(k * 12, k * 12 + 12)], [...(await p.process(images[k])).data]);
  // no center crop: a 4x2 image stays 4x2 after the shortest-edge resize, and the batch names it
  const noCrop = new ImageProcessor(parsePreprocessorConfig({ ...clipConfig(2, 2), do_center_crop: false }));
  await assert.rejects(
    noCrop.squareBatch([images[0], rgb(4, 2, () => [1, 2, 3])], 2, (m) => new RangeError(m), 'the tower'),
    (e: Error) => e instanceof RangeError && /^image 2: the processor gives 4x2, the tower takes 2x2$/.test(e.message),
  );
});

test('shortest-edge sizes and center-crop offsets follow transformers', () => {
  assert.deepEqual(shortestEdgeSize(40, 20, 10), { width: 20, height: 10 });
  assert.deepEqual(shortestEdgeSize(33, 50, 16), { width: 16, height: 24 }); // int(16 * 50 / 33) = 24
  assert.deepEqual(shortestEdgeSize(640, 480, 336), { width: 448, height: 336 });
  // 5x4 -> 3x2: top = (4 - 2) // 2 = 1, left = (5 - 3) // 2 = 1
  const img = rgb(5, 4, (x, y) => [x, y, 0]);
  const c = centerCropRgb(img, 3, 2);
  assert.deepEqual([...c.data], [1, 1, 0, 2, 1, 0, 3, 1, 0, 1, 2, 0, 2, 2, 0, 3, 2, 0]);
  // 6x4 -> 3x3: top = 0 (floor of 0.5), left = 1
  assert.deepEqual(
    [
      ...centerCropRgb(
        rgb(6, 4, (x, y) => [x, y, 9]),
        3,
        3,
      ).data.subarray(0, 3),
    ],
    [1, 0, 9],
  );
  // smaller than the crop: zero padding, image centered with ceil on the leading side
  const small = centerCropRgb(
    rgb(1, 1, () => [7, 7, 7]),
    2,
    3,
  );
  // new top pad = ceil((3-1)/2) = 1, left pad = ceil((2-1)/2) = 1 -> pixel lands at (x=1, y=1)
  assert.deepEqual([...small.data], [0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 7, 7, 0, 0, 0, 0, 0, 0]);
});

test('LLaVA pad-to-square uses int(mean * 255) and centers the image', () => {
  const padded = padToSquareRgb(
    rgb(3, 1, () => [200, 100, 50]),
    [0.5, 0.2, 0.1],
  );
  assert.equal(padded.width, 3);
  assert.equal(padded.height, 3);
  assert.deepEqual([...padded.data.subarray(0, 3)], [127, 51, 25]);
  assert.deepEqual([...padded.data.subarray(9, 12)], [200, 100, 50]); // row 1
  assert.deepEqual([...padded.data.subarray(18, 21)], [127, 51, 25]);
});

test('a uniform image stays exactly uniform through resize and crop', async () => {
  const p = new ImageProcessor(parsePreprocessorConfig(clipConfig(16, 16)));
  const pv = await p.process(rgb(40, 24, () => [90, 150, 210]));
  assert.equal(pv.width, 16);
  assert.equal(pv.height, 16);
  for (let c = 0; c < 3; c++) {
    const want = ([90, 150, 210][c] / 255 - MEAN[c]) / STD[c];
    for (let i = 0; i < 256; i++) assert.ok(Math.abs(pv.data[c * 256 + i] - want) < 1e-6);
  }
});

test('CLIP pipeline matches a PIL reference (bicubic resize, rescale, normalize)', async () => {
  const ref = JSON.parse(readFileSync(join(FIX, 'image-processor-reference.json'), 'utf8'));
  const p = new ImageProcessor(parsePreprocessorConfig(clipConfig(24, 24)));
  const img = await decodeRgb(join(FIX, 'image-processor-input.png'));
  assert.deepEqual([img.width, img.height], [48, 36]);
  assert.deepEqual(p.outputSize(48, 36), { width: 24, height: 24 });
  const pv = await p.process(join(FIX, 'image-processor-input.png'));
  assert.equal(pv.data.length, ref.pixel_values.length);
  let max = 0;
  let sum = 0;
  for (let i = 0; i < pv.data.length; i++) {
    const d = Math.abs(pv.data[i] - ref.pixel_values[i]);
    max = Math.max(max, d);
    sum += d;
  }
  // PIL's resampling re-done bit for bit, then numpy's float32 rescale/normalize: equal to the 6 decimals stored
  assert.ok(max <= 1e-6, `max diff ${max}`);
  assert.ok(sum / pv.data.length < 1e-6, `mean diff ${sum / pv.data.length}`);
});

test('SigLIP: exact height x width resize, no crop, 0.5 mean/std defaults', async () => {
  const cfg = parsePreprocessorConfig({ image_processor_type: 'SiglipImageProcessor', size: { height: 8, width: 12 } });
  assert.equal(cfg.doCenterCrop, false);
  assert.deepEqual(cfg.imageMean, [0.5, 0.5, 0.5]);
  const pv = await new ImageProcessor(cfg).process(rgb(30, 30, () => [255, 0, 51]));
  assert.equal(pv.width, 12);
  assert.equal(pv.height, 8);
  assert.ok(Math.abs(pv.data[0] - 1) < 1e-6);
  assert.ok(Math.abs(pv.data[96] + 1) < 1e-6);
  assert.ok(Math.abs(pv.data[192] - (0.2 - 0.5) / 0.5) < 1e-6);
});

test('decoding: RGBA drops alpha like PIL convert("RGB"); greyscale becomes 3 equal channels', async () => {
  const rgba = await sharp(Buffer.from([10, 20, 30, 0, 40, 50, 60, 255]), { raw: { width: 2, height: 1, channels: 4 } })
    .png()
    .toBuffer();
  const a = await decodeRgb(rgba);
  assert.deepEqual([...a.data], [10, 20, 30, 40, 50, 60]);
  const grey = await sharp(Buffer.from([5, 250]), { raw: { width: 2, height: 1, channels: 1 } })
    .png()
    .toBuffer();
  const g = await decodeRgb(grey);
  assert.deepEqual([...g.data], [5, 5, 5, 250, 250, 250]);
  await assert.rejects(decodeRgb(Buffer.from('not an image'), 'photo.png'), /photo\.png: cannot decode image/);
});

test('bad preprocessor_config.json fields are named', () => {
  assert.throws(
    () => parsePreprocessorConfig({ size: { shortest_edge: 0 } }, 'm/preprocessor_config.json'),
    /m\/preprocessor_config\.json: field "size\.shortest_edge": must be a positive integer/,
  );
  assert.throws(() => parsePreprocessorConfig({ image_mean: [0.5, 0.5] }), /field "image_mean": must be 3 numbers/);
  assert.throws(() => parsePreprocessorConfig({ resample: 9 }), /field "resample": must be a PIL resample code/);
  assert.throws(
    () => parsePreprocessorConfig({ size: { longest: 3 } }),
    /field "size": must be \{shortest_edge\} or \{height, width\}/,
  );
  // old-style integer sizes
  const old = parsePreprocessorConfig({ size: 224, crop_size: 224 });
  assert.deepEqual(old.size, { shortestEdge: 224 });
  assert.deepEqual(old.cropSize, { height: 224, width: 224 });
});

test('EXIF orientation is not applied, as PIL Image.open does not: pixels and size as stored', async () => {
  const stored = await sharp(Buffer.from([10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120]), {
    raw: { width: 2, height: 2, channels: 3 },
  })
    .png()
    .withMetadata({ orientation: 6 })
    .toBuffer();
  assert.equal((await sharp(stored).metadata()).orientation, 6);
  const img = await decodeRgb(stored);
  assert.deepEqual([img.width, img.height], [2, 2]);
  assert.deepEqual([...img.data], [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120]);
  const wide = await sharp({ create: { width: 3, height: 1, channels: 3, background: { r: 1, g: 2, b: 3 } } })
    .jpeg()
    .withMetadata({ orientation: 8 })
    .toBuffer();
  const w = await decodeRgb(wide);
  assert.deepEqual([w.width, w.height], [3, 1]);
});
