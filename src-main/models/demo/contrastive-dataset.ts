// A generated image-caption dataset for contrastive fine-tuning: one coloured shape per image (5 colours x 4
// shapes = 20 classes), jittered in position, size and background, captioned from a few phrasings. Written in the
// `folder` import format: <out>/<split>/<colour shape>/<n>.png + <n>.txt, so the class is the item's tag (zero-shot
// class names) and train/ and val/ are the splits. Deterministic in the seed.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { demoRng, subSeed } from './rng';
import { encodePng } from './dataset';
import { BACKGROUNDS, COLOR_NAMES, SHAPES, rasterize, type Scene } from './shapes';

const PHRASES = ['a {}', 'a photo of a {}', 'a {} on a plain background', 'one {}', 'a picture of a {}'];

export interface ContrastiveDatasetOptions {
  /** images per class in train/ (default 8) and val/ (default 1) */
  train?: number;
  val?: number;
  size?: number;
  seed?: number;
}

export function contrastiveClasses(): string[] {
  return COLOR_NAMES.flatMap((c) => SHAPES.map((s) => `${c} ${s}`));
}

/** Write the dataset; returns the item counts per split. */
export async function writeContrastiveDataset(
  out: string,
  o: ContrastiveDatasetOptions = {},
): Promise<{ train: number; val: number; classes: string[] }> {
  const size = o.size ?? 48;
  const seed = o.seed ?? 7;
  const classes = contrastiveClasses();
  const counts = { train: o.train ?? 8, val: o.val ?? 1 };
  let k = 0;
  for (const split of ['train', 'val'] as const) {
    for (const cls of classes) {
      const [color, shape] = cls.split(' ') as [Scene['objects'][number]['color'], Scene['objects'][number]['shape']];
      const dir = join(out, split, cls);
      mkdirSync(dir, { recursive: true });
      for (let i = 0; i < counts[split]; i++) {
        const rng = demoRng(subSeed(seed, k++));
        const r = size * (0.22 + 0.12 * rng.float());
        const cx = r + (size - 2 * r) * rng.float();
        const cy = r + (size - 2 * r) * rng.float();
        const scene: Scene = {
          size,
          background: BACKGROUNDS[rng.int(BACKGROUNDS.length)],
          objects: [{ shape, color, row: 1, col: 1, cx, cy, r }],
        };
        const png = await encodePng(rasterize(scene), size);
        const name = String(i).padStart(3, '0');
        writeFileSync(join(dir, `${name}.png`), png);
        writeFileSync(join(dir, `${name}.txt`), rng.pick(PHRASES).replace('{}', cls));
      }
    }
  }
  return { train: counts.train * classes.length, val: counts.val * classes.length, classes };
}
