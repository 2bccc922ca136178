// A very small LLaVA and icon dataset for trainer tests: 1-layer tower and decoder (32 wide, 32 px images with
// 16 image tokens), 24 images of the `colors` question family imported into a fresh database.
import { join } from 'node:path';
import { writeTinyLlava } from '../../src-main/models/demo/tiny-llava';
import { writeDemoDataset } from '../../src-main/models/demo/dataset';
import type { Family } from '../../src-main/models/demo/shapes';
import { importDataset } from '../../src-main/datasets/import';
import type { Database } from '../../src-main/storage/database';

export const TINY = {
  imageSize: 32,
  patchSize: 8,
  visionHidden: 32,
  visionLayers: 1,
  visionHeads: 2,
  textHidden: 32,
  textLayers: 1,
  textHeads: 2,
  textKvHeads: 1,
  textIntermediate: 64,
  initStd: 0.1,
};

export function writeTinyModel(dir: string): string {
  writeTinyLlava(dir, 0, TINY);
  return dir;
}

/** Write icon images + vqa.jsonl (questions of `families`) under `dir`, import them into `db`; returns the dataset id. */
export async function importIcons(
  db: Database,
  dataDir: string,
  dir: string,
  count = 24,
  families: Family[] = ['colors'],
): Promise<number> {
  await writeDemoDataset(dir, { seed: 5, count, size: 32, families });
  const rep = await importDataset(db, dataDir, join(dir, 'vqa.jsonl'), { dataset: 'icons' });
  return rep.datasetId;
}
