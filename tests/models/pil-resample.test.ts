// The resampler and decoder against PIL itself (fixtures from tests/fixtures/models/make_pil_reference.py):
// what transformers' slow image processors compute before rescale/normalize.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pilResize, PIL_BICUBIC } from '../../src-main/models/pil-resample';
import { decodeRgb, ImageProcessor, parsePreprocessorConfig } from '../../src-main/models/image-processor';

const DIR = join(import.meta.dirname, '../fixtures/models/pil');
interface Case {
  input: string;
  op: 'convert' | 'resize' | 'clip' | 'composite_white';
  mode?: string;
  resample?: number;
  shortest_edge?: number;
  crop?: number;
  width: number;
  height: number;
  rgb_b64: string;
}
const ref = JSON.parse(readFileSync(join(DIR, 'reference.json'), 'utf8')) as { cases: Case[] };

function maxDiff(a: Uint8Array, b: Uint8Array): { max: number; count: number } {
  assert.equal(a.length, b.length);
  let max = 0;
  let count = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (d) count++;
    max = Math.max(max, d);
  }
  return { max, count };
}

const want = (c: Case) => new Uint8Array(Buffer.from(c.rgb_b64, 'base64'));

test('decoding equals PIL Image.open(...).convert("RGB") for every mode', async () => {
  const modes = new Set<string>();
  for (const c of ref.cases.filter((x) => x.op === 'convert')) {
    const img = await decodeRgb(join(DIR, c.input));
    assert.deepEqual([img.width, img.height], [c.width, c.height], c.input);
    const d = maxDiff(img.data, want(c));
    assert.equal(d.max, 0, `${c.input} (PIL mode ${c.mode}): ${d.count} values differ, max ${d.max}`);
    modes.add(c.mode!);
  }
  // RGBA, LA, P (with and without transparency), L, 16-bit greyscale (PIL "I"), 16-bit RGB, CMYK JPEG, RGB JPEG
  assert.deepEqual([...modes].sort(), ['CMYK', 'I', 'L', 'LA', 'P', 'RGB', 'RGBA']);
});

test('Idefics2/3 convert_to_rgb: alpha composited over white exactly as Pillow does', async () => {
  const cases = ref.cases.filter((x) => x.op === 'composite_white');
  assert.ok(cases.length >= 7);
  for (const c of cases) {
    const img = await decodeRgb(join(DIR, c.input), c.input, { alpha: 'white' });
    const d = maxDiff(img.data, want(c));
    assert.equal(d.max, 0, `${c.input} (PIL mode ${c.mode}): ${d.count} values differ, max ${d.max}`);
  }
});

test('pilResize equals PIL Image.resize for every filter, down and up, odd sizes', async () => {
  const cases = ref.cases.filter((x) => x.op === 'resize');
  assert.ok(cases.length >= 20);
  const exact: string[] = [];
  for (const c of cases) {
    const src = await decodeRgb(join(DIR, c.input));
    const out = pilResize({ ...src, channels: 3 }, c.width, c.height, c.resample);
    const d = maxDiff(out.data, want(c));
    const what = `${c.input} ${src.width}x${src.height} -> ${c.width}x${c.height} resample ${c.resample}`;
    assert.ok(d.max <= 1, `${what}: max ${d.max}/255 over ${d.count} values`);
    if (d.max === 0) exact.push(what);
    else console.log(`not bit-exact: ${what} max ${d.max}`);
  }
  // the fixed-point arithmetic is PIL's own, so nearly every case is bit-exact (hamming/lanczos use sin/cos, where libm may differ by an ulp)
  assert.ok(exact.length >= cases.length - 2, `only ${exact.length}/${cases.length} bit-exact`);
});

test('CLIP shortest-edge resize + center crop equals transformers on PIL, before rescale', async () => {
  for (const c of ref.cases.filter((x) => x.op === 'clip')) {
    const p = new ImageProcessor(
      parsePreprocessorConfig({
        image_processor_type: 'CLIPImageProcessor',
        size: { shortest_edge: c.shortest_edge },
        crop_size: { height: c.crop, width: c.crop },
        resample: PIL_BICUBIC,
      }),
    );
    const img = await p.prepare(join(DIR, c.input));
    const d = maxDiff(img.data, want(c));
    assert.equal(
      d.max,
      0,
      `${c.input} shortest ${c.shortest_edge} crop ${c.crop}: ${d.count} values differ, max ${d.max}`,
    );
  }
});

test('pilResize: a uniform image stays uniform; bad sizes are refused', () => {
  const data = new Uint8Array(7 * 5 * 3);
  for (let i = 0; i < data.length; i += 3) data.set([3, 128, 252], i);
  for (const r of [1, 2, 3, 4, 5]) {
    for (const [w, h] of [
      [2, 2],
      [19, 11],
      [7, 13],
    ]) {
      const out = pilResize({ data, width: 7, height: 5, channels: 3 }, w, h, r);
      for (let i = 0; i < out.data.length; i += 3)
        assert.deepEqual([...out.data.subarray(i, i + 3)], [3, 128, 252], `resample ${r} ${w}x${h}`);
    }
  }
  assert.throws(() => pilResize({ data, width: 7, height: 5, channels: 3 }, 0, 3), /resize target 0x3/);
  assert.throws(() => pilResize({ data, width: 7, height: 5, channels: 3 }, 3, 3, 9), /unknown PIL resample code 9/);
});
