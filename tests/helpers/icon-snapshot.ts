// The demo icon set (models/demo/dataset.ts writeDemoDataset) as a trainer's data snapshot: each VQA record of
// vqa.jsonl becomes a train item with one QA pair, written as data.json for the trainer.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSnapshot } from '../../src-main/training/data';

/** Write `out` (a data.json) from the records in `icons`/vqa.jsonl; `answer` may rewrite each answer. Returns `out`. */
export function writeIconSnapshot(
  icons: string,
  out: string,
  opts: { name?: string; answer?: (answer: string, index: number) => string } = {},
): string {
  const items = readFileSync(join(icons, 'vqa.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l, i) => {
      const r = JSON.parse(l) as { image: string; question: string; answer: string };
      const answer = opts.answer ? opts.answer(r.answer, i) : r.answer;
      return {
        key: String(i),
        itemId: null,
        image: join(icons, r.image),
        annotations: [{ kind: 'qa' as const, data: { question: r.question, answer } }],
        split: 'train' as const,
      };
    });
  writeSnapshot(out, {
    format: 'lenslab-data',
    version: 1,
    source: { datasetId: null, name: opts.name ?? 'icons' },
    autoSplit: false,
    items,
  });
  return out;
}
