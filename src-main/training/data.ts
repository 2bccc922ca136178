// The data a run trains and evaluates on, frozen when the run starts: a snapshot of the dataset's items (image
// file, annotations, split) written into the run directory, so a resumed run sees exactly the same samples even
// if the dataset is edited meanwhile, and the job process needs no database.
//
// Splits: items keep the split assigned in the dataset. When NO item has one, a deterministic split is made
// (seeded shuffle of the item keys, 90 % train / 10 % val, at least one val item when there are two or more), the
// same every time for the same items, so the base model and a fine-tuned one are evaluated on the same items.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import type { Database } from '../storage/database';
import { datasetName } from '../storage/datasets-queries';
import { loadItems } from '../datasets/rows';
import { imagePath } from '../datasets/images';
import { mulberry32, shuffled } from '../datasets/split';
import { checkAnnotation } from '../datasets/annotations';
import { DEFAULT_CAPTION_PROMPT, itemConversations } from '../datasets/conversation';
import type { Annotation, Split } from '../datasets/types';
import type { EvalItem } from '../eval/evaluate';
import type { EvalTask } from '../eval/metrics';

export interface DataItem {
  /** Stable key (the dataset item id as text). */
  key: string;
  itemId: number | null;
  /** Absolute path of the image file, null for text-only items. */
  image: string | null;
  annotations: Annotation[];
  split: Split | null;
}

export interface DataSnapshot {
  format: 'lenslab-data';
  version: 1;
  source: { datasetId: number | null; name: string };
  /** True when the splits were made here because the dataset had none. */
  autoSplit: boolean;
  items: DataItem[];
}

const snapshotSchema = z.object({
  format: z.literal('lenslab-data'),
  version: z.literal(1),
  source: z.object({ datasetId: z.int().nullable(), name: z.string() }),
  autoSplit: z.boolean(),
  items: z.array(
    z.object({
      key: z.string(),
      itemId: z.int().nullable(),
      image: z.string().nullable(),
      annotations: z.array(z.unknown()),
      split: z.enum(['train', 'val', 'test']).nullable(),
    }),
  ),
});

/** The deterministic 90/10 train/val assignment used when a dataset has no split at all. */
export function autoSplit(keys: readonly string[]): Map<string, Split> {
  const order = shuffled([...keys].sort(), mulberry32(0x5eed));
  const n = order.length;
  const nVal = n >= 2 ? Math.max(1, Math.round(n * 0.1)) : 0;
  const out = new Map<string, Split>();
  order.forEach((k, i) => out.set(k, i < n - nVal ? 'train' : 'val'));
  return out;
}

/** Apply autoSplit when no item has a split. */
export function withSplits(items: DataItem[]): { items: DataItem[]; autoSplit: boolean } {
  if (items.length === 0 || items.some((it) => it.split !== null)) return { items, autoSplit: false };
  const a = autoSplit(items.map((it) => it.key));
  return { items: items.map((it) => ({ ...it, split: a.get(it.key)! })), autoSplit: true };
}

/** Snapshot of a dataset in the database (images resolved to their files in the data dir). */
export function snapshotDataset(db: Database, dataDir: string, datasetId: number): DataSnapshot {
  const ds = datasetName(db, datasetId);
  if (!ds) throw new Error(`dataset ${datasetId} does not exist`);
  const raw: DataItem[] = loadItems(db, datasetId).map((it) => ({
    key: String(it.id),
    itemId: it.id,
    image: it.image ? imagePath(dataDir, it.image.hash, it.image.ext) : null,
    annotations: it.annotations.map(({ kind, data }) => ({ kind, data }) as Annotation),
    split: it.split,
  }));
  const { items, autoSplit: auto } = withSplits(raw);
  return { format: 'lenslab-data', version: 1, source: { datasetId: ds.id, name: ds.name }, autoSplit: auto, items };
}

export function writeSnapshot(file: string, snap: DataSnapshot): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(snap));
  renameSync(tmp, file);
}

export function readSnapshot(file: string): DataSnapshot {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(
      `data snapshot ${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
  const r = snapshotSchema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new Error(`data snapshot ${file}: ${i.path.join('.') || '(root)'}: ${i.message}`);
  }
  const snap = r.data as DataSnapshot;
  snap.items.forEach((it, k) => {
    it.annotations = it.annotations.map((a, j) => checkAnnotation(a, `${file}: items[${k}].annotations[${j}]`));
  });
  return snap;
}

export function itemsOfSplit(snap: DataSnapshot, split: Split): DataItem[] {
  return snap.items.filter((it) => it.split === split);
}

/** How many items each split has. */
export function splitCounts(snap: DataSnapshot): Record<Split | 'none', number> {
  const c = { train: 0, val: 0, test: 0, none: 0 };
  for (const it of snap.items) c[it.split ?? 'none']++;
  return c;
}

/** An evaluation item plus what the generator needs: the conversation up to the answer. */
export interface GenItem extends EvalItem {
  image: string | null;
  /** Messages before the answer (user turn with "<image>" when the item has an image). */
  messages: { role: 'system' | 'user' | 'assistant'; content: string }[];
}

/**
 * Evaluation items of a set of data items: every QA pair (task vqa: prompt = question, reference = answer), or
 * one caption item per image with all its captions as references (task caption), or the first exchange of a chat.
 * When the items hold both QA and captions, the kind with more items decides the task (the others are left out).
 */
export function evalItems(
  items: readonly DataItem[],
  opts: { task?: EvalTask; captionPrompt?: string } = {},
): { task: EvalTask; items: GenItem[] } {
  const qa: GenItem[] = [];
  const cap: GenItem[] = [];
  for (const it of items) {
    const hasImage = it.image !== null;
    const captions: string[] = [];
    let qaIndex = 0;
    for (const conv of itemConversations(it.annotations, hasImage, { captionPrompt: opts.captionPrompt })) {
      if (conv.kind === 'caption') {
        captions.push(conv.messages[1].content);
        continue;
      }
      // every user → assistant exchange, with the conversation before it as context
      for (let m = 0; m < conv.messages.length; m++) {
        const msg = conv.messages[m];
        if (msg.role !== 'assistant' || m === 0 || conv.messages[m - 1].role !== 'user') continue;
        const target = conv.kind === 'qa' ? qa : cap;
        const question = conv.messages[m - 1].content.replace(/^<image>\n?/, '');
        target.push({
          key: `${it.key}#${conv.kind}${qaIndex++}`,
          itemId: it.itemId,
          prompt: question,
          references: [msg.content],
          image: it.image,
          messages: conv.messages.slice(0, m).map((x) => ({ role: x.role, content: x.content })),
        });
        if (conv.kind === 'chat') break;
      }
    }
    if (captions.length) {
      const prompt = opts.captionPrompt ?? DEFAULT_CAPTION_PROMPT;
      cap.push({
        key: `${it.key}#caption`,
        itemId: it.itemId,
        prompt,
        references: captions,
        image: it.image,
        messages: [{ role: 'user', content: hasImage ? `<image>\n${prompt}` : prompt }],
      });
    }
  }
  const task: EvalTask = opts.task ?? (qa.length >= cap.length && qa.length > 0 ? 'vqa' : 'caption');
  return { task, items: task === 'vqa' ? qa : cap };
}

/** Evenly spaced subset of at most n items (deterministic; keeps the order). */
export function subsample<T>(items: readonly T[], n: number | undefined): T[] {
  if (n === undefined || items.length <= n) return [...items];
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(items[Math.floor((i * items.length) / n)]);
  return out;
}
