import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import {
  makeSample,
  allQuestions,
  caption,
  COLORS,
  FAMILIES,
  positionWord,
  type Color,
  type Scene,
  type Shape,
} from '../../src-main/models/demo/shapes';
import { writeDemoDataset } from '../../src-main/models/demo/dataset';
import { decodeRgb } from '../../src-main/models/image-processor';

const { dir, cleanup } = tempDir('demo-dataset-');
after(cleanup);

interface Found {
  color: Color;
  row: number;
  col: number;
  shape: Shape | null;
  pixels: number;
}

/** Recover the objects from the pixels alone: 8-connected non-background components, their colour, cell and shape. */
function analyse(rgb: Uint8Array, size: number, bg: readonly number[], withShape: boolean): Found[] {
  const isBg = (i: number) => rgb[3 * i] === bg[0] && rgb[3 * i + 1] === bg[1] && rgb[3 * i + 2] === bg[2];
  const seen = new Uint8Array(size * size);
  const out: Found[] = [];
  for (let start = 0; start < size * size; start++) {
    if (seen[start] || isBg(start)) continue;
    const stack = [start];
    seen[start] = 1;
    const pix: number[] = [];
    while (stack.length) {
      const p = stack.pop()!;
      pix.push(p);
      const x = p % size;
      const y = Math.floor(p / size);
      for (let dy = -1; dy <= 1; dy++)
        for (let dx = -1; dx <= 1; dx++) {
          const nx = x + dx;
          const ny = y + dy;
          if (nx < 0 || ny < 0 || nx >= size || ny >= size) continue;
          const q = ny * size + nx;
          if (!seen[q] && !isBg(q)) {
            seen[q] = 1;
            stack.push(q);
          }
        }
    }
    // fully covered pixels carry the exact object colour
    const full = pix.filter((p) =>
      Object.values(COLORS).some((c) => c[0] === rgb[3 * p] && c[1] === rgb[3 * p + 1] && c[2] === rgb[3 * p + 2]),
    );
    const c0 = full[0];
    const color = (Object.keys(COLORS) as Color[]).find(
      (k) => COLORS[k][0] === rgb[3 * c0] && COLORS[k][1] === rgb[3 * c0 + 1] && COLORS[k][2] === rgb[3 * c0 + 2],
    )!;
    const cx = full.reduce((s, p) => s + (p % size), 0) / full.length + 0.5;
    const cy = full.reduce((s, p) => s + Math.floor(p / size), 0) / full.length + 0.5;
    let shape: Shape | null = null;
    if (withShape) {
      const xs = full.map((p) => p % size);
      const ys = full.map((p) => Math.floor(p / size));
      const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
      const fill = full.length / ((x1 - x0 + 1) * (y1 - y0 + 1));
      // a star's two legs are separate runs near its bottom; nothing else has a gap there
      const row = Math.round(y0 + 0.88 * (y1 - y0));
      const inRow = new Set(full.filter((p) => Math.floor(p / size) === row).map((p) => p % size));
      let runs = 0;
      for (let x = x0; x <= x1; x++) if (inRow.has(x) && !inRow.has(x - 1)) runs++;
      shape = runs >= 2 ? 'star' : fill > 0.9 ? 'square' : fill > 0.64 ? 'circle' : 'triangle';
    }
    const cell = size / 3;
    out.push({ color, row: Math.floor(cy / cell), col: Math.floor(cx / cell), shape, pixels: pix.length });
  }
  return out;
}

function sceneFromPixels(found: Found[], size: number, bg: Scene['background']): Scene {
  return {
    size,
    background: bg,
    objects: found.map((f) => ({
      shape: f.shape ?? 'circle',
      color: f.color,
      row: f.row,
      col: f.col,
      cx: 0,
      cy: 0,
      r: 0,
    })),
  };
}

test('same (seed, index) gives the same sample; other seeds and indexes differ', () => {
  const a = makeSample(7, 3);
  const b = makeSample(7, 3);
  assert.deepEqual(a, b);
  assert.notDeepEqual(makeSample(8, 3).scene, a.scene);
  assert.notDeepEqual(makeSample(7, 4).scene, a.scene);
  assert.equal(a.rgb.length, 64 * 64 * 3);
  assert.deepEqual(
    a.qa.map((q) => q.family),
    [...FAMILIES].filter((f) => allQuestions(a.scene, f).length > 0),
  );
});

test('answers are what the pixels show (large canvas: colour, cell, and shape recovered from the image)', () => {
  let checked = 0;
  for (let i = 0; i < 40; i++) {
    const s = makeSample(99, i, { size: 192 });
    const found = analyse(s.rgb, 192, s.scene.background, true);
    assert.equal(found.length, s.scene.objects.length, `sample ${i}: object count`);
    const key = (o: { color: string; shape: string | null; row: number; col: number }) =>
      `${o.row},${o.col},${o.color},${o.shape}`;
    assert.deepEqual(found.map(key).sort(), s.scene.objects.map(key).sort(), `sample ${i}: objects`);
    // every question of every family, re-answered from the pixels, agrees with the generator
    const fromPixels = sceneFromPixels(found, 192, s.scene.background);
    const sorted = (qs: ReturnType<typeof allQuestions>) =>
      [...qs].sort((a, b) => a.question.localeCompare(b.question));
    for (const f of FAMILIES)
      assert.deepEqual(sorted(allQuestions(fromPixels, f)), sorted(allQuestions(s.scene, f)), `sample ${i} ${f}`);
    assert.equal(caption(fromPixels), s.caption);
    checked += s.qa.length;
  }
  assert.ok(checked > 100);
});

test('the 64x64 dataset: counts, colours and positions recovered from the written PNGs match the answers', async () => {
  const d1 = join(dir, 'a');
  const samples = await writeDemoDataset(d1, { seed: 5, count: 24, captionsInLlava: true });
  const llava = JSON.parse(readFileSync(join(d1, 'llava.json'), 'utf8'));
  const vqa = readFileSync(join(d1, 'vqa.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const caps = readFileSync(join(d1, 'captions.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(readdirSync(join(d1, 'images')).length, 24);
  assert.equal(caps.length, 24);
  assert.equal(
    vqa.length,
    samples.reduce((s, x) => s + x.qa.length, 0),
  );
  assert.equal(llava.length, vqa.length + 24);
  assert.match(llava[0].conversations[0].value, /^<image>\n/);
  assert.equal(llava[0].conversations[1].from, 'gpt');
  for (const s of samples) {
    const img = await decodeRgb(join(d1, `images/${String(s.index).padStart(5, '0')}.png`));
    assert.deepEqual([...img.data], [...s.rgb], 'PNG is lossless');
    const found = analyse(img.data, 64, s.scene.background, false);
    assert.equal(found.length, s.scene.objects.length);
    for (const qa of vqa.filter((q) => q.image.endsWith(`${String(s.index).padStart(5, '0')}.png`))) {
      if (qa.family === 'counting' && qa.question === 'How many objects are there?')
        assert.equal(qa.answer, String(found.length));
      const mColor = /^How many (\w+) objects are there\?$/.exec(qa.question);
      if (mColor) assert.equal(qa.answer, String(found.filter((f) => f.color === mColor[1]).length));
      const mPos = /^Where is the (\w+) (\w+)\?$/.exec(qa.question);
      if (mPos) {
        const o = s.scene.objects.find((x) => x.color === mPos[1] && x.shape === mPos[2])!;
        const f = found.find((x) => x.row === o.row && x.col === o.col)!;
        assert.equal(f.color, o.color);
        assert.equal(qa.answer, positionWord(f.row, f.col));
      }
      const mShape = /^What shape is the (\w+) object\?$/.exec(qa.question);
      if (mShape)
        assert.equal(found.filter((f) => f.color === mShape[1]).length, 1, 'a shape question names a unique colour');
    }
  }
  // a second write with the same seed is byte-identical
  const d2 = join(dir, 'b');
  await writeDemoDataset(d2, { seed: 5, count: 24, captionsInLlava: true });
  for (const f of ['llava.json', 'vqa.jsonl', 'captions.jsonl', 'scenes.jsonl', 'images/00000.png', 'images/00023.png'])
    assert.deepEqual(readFileSync(join(d2, f)), readFileSync(join(d1, f)), f);
});

test('family selection and disjoint index ranges', () => {
  const s = makeSample(1, 0, { families: ['counting'] });
  assert.deepEqual(
    s.qa.map((q) => q.family),
    ['counting'],
  );
  assert.match(s.qa[0].question, /^How many /);
  assert.match(s.qa[0].answer, /^\d$/);
  const sc = makeSample(1, 0, { minObjects: 5, maxObjects: 5 }).scene;
  assert.equal(sc.objects.length, 5);
  assert.equal(new Set(sc.objects.map((o) => o.row * 3 + o.col)).size, 5, 'one object per cell');
});
