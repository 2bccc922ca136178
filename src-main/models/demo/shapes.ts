// Procedural icon scenes for the demo dataset: circles, squares, triangles and stars in a few colours on a
// 3x3 grid, rasterized in plain JS (4x4 supersampling), with questions and answers computed from the scene:
// counting, colours, shapes, positions, plus captions. Everything is deterministic in (seed, index).
import { demoRng, subSeed, type Rng } from './rng';

export const SHAPES = ['circle', 'square', 'triangle', 'star'] as const;
export type Shape = (typeof SHAPES)[number];
export const COLORS = {
  red: [215, 38, 38],
  green: [34, 160, 64],
  blue: [40, 84, 220],
  yellow: [240, 196, 20],
  purple: [140, 56, 180],
} as const satisfies Record<string, readonly [number, number, number]>;
export type Color = keyof typeof COLORS;
export const COLOR_NAMES = Object.keys(COLORS) as Color[];
export const BACKGROUNDS: ReadonlyArray<readonly [number, number, number]> = [
  [255, 255, 255],
  [236, 236, 236],
  [246, 240, 226],
];
export const FAMILIES = ['counting', 'colors', 'shapes', 'positions'] as const;
export type Family = (typeof FAMILIES)[number];

export interface SceneObject {
  shape: Shape;
  color: Color;
  /** grid cell, 0..2 each */
  row: number;
  col: number;
  /** center and radius in pixels */
  cx: number;
  cy: number;
  r: number;
}

export interface Scene {
  size: number;
  background: readonly [number, number, number];
  objects: SceneObject[];
}

export interface QA {
  family: Family;
  question: string;
  answer: string;
}

const ROW_WORDS = ['top', '', 'bottom'];
const COL_WORDS = ['left', '', 'right'];
export function positionWord(row: number, col: number): string {
  return [ROW_WORDS[row], COL_WORDS[col]].filter(Boolean).join(' ') || 'center';
}
export const NUMBER_WORDS = ['no', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];
export function plural(shape: Shape): string {
  return `${shape}s`;
}

export interface SceneOptions {
  size?: number;
  minObjects?: number;
  maxObjects?: number;
}

/** A random scene: 1..maxObjects objects in distinct cells of a 3x3 grid; no two objects touch. */
export function makeScene(rng: Rng, opts: SceneOptions = {}): Scene {
  const size = opts.size ?? 64;
  const n = rng.between(opts.minObjects ?? 1, Math.min(opts.maxObjects ?? 5, 9));
  const cells = rng
    .shuffle([0, 1, 2, 3, 4, 5, 6, 7, 8])
    .slice(0, n)
    .sort((a, b) => a - b);
  const cell = size / 3;
  const objects = cells.map((c) => {
    const row = Math.floor(c / 3);
    const col = c % 3;
    const r = cell * (0.26 + 0.08 * rng.next()); // 0.26..0.34 of a cell
    const jx = cell * 0.06 * (2 * rng.next() - 1);
    const jy = cell * 0.06 * (2 * rng.next() - 1);
    return {
      shape: rng.pick(SHAPES),
      color: rng.pick(COLOR_NAMES),
      row,
      col,
      cx: (col + 0.5) * cell + jx,
      cy: (row + 0.5) * cell + jy,
      r,
    };
  });
  return { size, background: rng.pick(BACKGROUNDS), objects };
}

function starPolygon(cx: number, cy: number, r: number): Array<[number, number]> {
  const pts: Array<[number, number]> = [];
  for (let k = 0; k < 10; k++) {
    const rad = k % 2 === 0 ? r : r * 0.45;
    const a = -Math.PI / 2 + (k * Math.PI) / 5;
    pts.push([cx + rad * Math.cos(a), cy + rad * Math.sin(a)]);
  }
  return pts;
}

function inPolygon(x: number, y: number, pts: Array<[number, number]>): boolean {
  let inside = false;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
    const [xi, yi] = pts[i];
    const [xj, yj] = pts[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Is the point (x, y) (pixel coordinates, continuous) inside the object? */
export function insideObject(o: SceneObject, x: number, y: number): boolean {
  const dx = x - o.cx;
  const dy = y - o.cy;
  switch (o.shape) {
    case 'circle':
      return dx * dx + dy * dy <= o.r * o.r;
    case 'square': {
      const h = o.r * 0.86;
      return Math.abs(dx) <= h && Math.abs(dy) <= h;
    }
    case 'triangle':
      return inPolygon(x, y, [
        [o.cx, o.cy - o.r],
        [o.cx + o.r * 0.95, o.cy + o.r * 0.8],
        [o.cx - o.r * 0.95, o.cy + o.r * 0.8],
      ]);
    case 'star':
      return inPolygon(x, y, starPolygon(o.cx, o.cy, o.r));
  }
}

/** Rasterize to interleaved RGB uint8 (HWC), 4x4 supersampled. */
export function rasterize(scene: Scene): Uint8Array {
  const { size, background: bg } = scene;
  const out = new Uint8Array(size * size * 3);
  const S = 4;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let sy = 0; sy < S; sy++) {
        for (let sx = 0; sx < S; sx++) {
          const px = x + (sx + 0.5) / S;
          const py = y + (sy + 0.5) / S;
          let c: readonly [number, number, number] = bg;
          for (const o of scene.objects) {
            if (Math.abs(px - o.cx) <= o.r && Math.abs(py - o.cy) <= o.r && insideObject(o, px, py)) {
              c = COLORS[o.color];
              break;
            }
          }
          r += c[0];
          g += c[1];
          b += c[2];
        }
      }
      const i = (y * size + x) * 3;
      out[i] = Math.round(r / (S * S));
      out[i + 1] = Math.round(g / (S * S));
      out[i + 2] = Math.round(b / (S * S));
    }
  }
  return out;
}

function unique<T>(objs: SceneObject[], key: (o: SceneObject) => T): Map<T, SceneObject> {
  const counts = new Map<T, SceneObject[]>();
  for (const o of objs) counts.set(key(o), [...(counts.get(key(o)) ?? []), o]);
  const out = new Map<T, SceneObject>();
  for (const [k, v] of counts) if (v.length === 1) out.set(k, v[0]);
  return out;
}

/** Every question of a family that the scene answers unambiguously (stable order). */
export function allQuestions(scene: Scene, family: Family): QA[] {
  const objs = scene.objects;
  const qs: QA[] = [];
  switch (family) {
    case 'counting':
      for (const s of SHAPES)
        qs.push({
          family,
          question: `How many ${plural(s)} are there?`,
          answer: String(objs.filter((o) => o.shape === s).length),
        });
      for (const c of COLOR_NAMES)
        qs.push({
          family,
          question: `How many ${c} objects are there?`,
          answer: String(objs.filter((o) => o.color === c).length),
        });
      qs.push({ family, question: 'How many objects are there?', answer: String(objs.length) });
      break;
    case 'colors':
      for (const [s, o] of unique(objs, (o) => o.shape))
        qs.push({ family, question: `What color is the ${s}?`, answer: o.color });
      break;
    case 'shapes':
      for (const [c, o] of unique(objs, (o) => o.color))
        qs.push({ family, question: `What shape is the ${c} object?`, answer: o.shape });
      break;
    case 'positions':
      for (const [, o] of unique(objs, (o) => `${o.color} ${o.shape}`))
        qs.push({ family, question: `Where is the ${o.color} ${o.shape}?`, answer: positionWord(o.row, o.col) });
      break;
  }
  return qs;
}

/** "A red circle, two blue squares and a yellow star." — groups in reading order of their first object. */
export function caption(scene: Scene): string {
  const groups: Array<{ key: string; color: Color; shape: Shape; n: number }> = [];
  const sorted = [...scene.objects].sort((a, b) => a.row - b.row || a.col - b.col);
  for (const o of sorted) {
    const key = `${o.color} ${o.shape}`;
    const g = groups.find((x) => x.key === key);
    if (g) g.n++;
    else groups.push({ key, color: o.color, shape: o.shape, n: 1 });
  }
  const parts = groups.map((g) =>
    g.n === 1 ? `a ${g.color} ${g.shape}` : `${NUMBER_WORDS[g.n]} ${g.color} ${plural(g.shape)}`,
  );
  const text = parts.length === 1 ? parts[0] : `${parts.slice(0, -1).join(', ')} and ${parts[parts.length - 1]}`;
  return text.charAt(0).toUpperCase() + text.slice(1) + '.';
}

export interface Sample {
  index: number;
  scene: Scene;
  /** RGB HWC uint8, size x size */
  rgb: Uint8Array;
  /** one question per requested family (a family the scene cannot answer is skipped) */
  qa: QA[];
  caption: string;
}

export interface SampleOptions extends SceneOptions {
  families?: readonly Family[];
  /** rasterize the scene (default true; text-only callers skip it) */
  render?: boolean;
}

/** Sample `index` of the dataset with `seed`: the same (seed, index) always gives the same sample. */
export function makeSample(seed: number, index: number, opts: SampleOptions = {}): Sample {
  const rng = demoRng(subSeed(seed, index));
  const scene = makeScene(rng, opts);
  const qa: QA[] = [];
  for (const f of opts.families ?? FAMILIES) {
    const qs = allQuestions(scene, f);
    if (qs.length > 0) qa.push(rng.pick(qs));
  }
  return {
    index,
    scene,
    rgb: opts.render === false ? new Uint8Array(0) : rasterize(scene),
    qa,
    caption: caption(scene),
  };
}
