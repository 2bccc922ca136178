// The dataset linter: per-item findings, stored in lint_results (the latest lint of a dataset) and filterable.
// Rules:
//   image_missing         the item's image file is gone from the data folder                        (error)
//   image_corrupt         the stored file does not match its hash/size or does not decode          (error)
//   image_token_mismatch  a conversation's `<image>` count differs from the item's image count     (error)
//   empty_answer          blank caption / answer / assistant turn                                   (error)
//   no_assistant          a chat with no assistant turn (nothing to learn)                          (error)
//   empty_question        blank question / user turn                                                (warning)
//   duplicate_image       exact duplicate image (same hash) as other items                          (warning)
//   duplicate_sample      two labels of one item teach the same thing (the same question and answer
//                         from two files of a folder, e.g. llava.json and vqa.jsonl): trained twice  (error)
//   near_duplicate_caption captions equal after normalization, or very similar (word-shingle Jaccard) (warning)
//   near_duplicate_image  another item's (different) image embeds within the cosine threshold of this one's with
//                         the chosen CLIP / SigLIP model; names the closest item and the similarity   (warning)
//   too_long              a rendered conversation exceeds the model's context                       (error)
//   render_error          the chat template cannot render the conversation                          (error)
//   unlabeled             no annotations yet                                                        (info)
//   media_missing         the item's audio/video file is gone from the data folder, or its size changed (error)
//   clip_too_long         audio longer than the encoder's 30 s window (split into windows or truncated
//                         when trained), a video longer than 30 s (its sampled frames lie far apart) (warning)
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import type { Database } from 'better-sqlite3';
import sharp from 'sharp';
import { nowIso } from '../storage/database';
import { datasetExists } from '../storage/datasets-queries';
import { lintResultRows, replaceLintResults } from '../storage/lint-queries';
import { countImageTokens, type ConversationOptions } from './conversation';
import { imagePath } from './images';
import { longClipWarning, mediaPath } from './media-store';
import { CLIP_WINDOW_SECONDS } from '../media/audio';
import type { RenderSetup } from './render';
import { lengthItem, measureLengths, type ItemLengths, type LengthItem } from './lint-lengths';
import { loadItems, type FullItem } from './rows';
import { LINT_RULES } from '../contract/datasets-io';

export { LINT_RULES };
export { lengthItem, measureLengths, type ItemLengths, type LengthItem, type ConversationLength } from './lint-lengths';

/**
 * Measures token lengths elsewhere (the backend's worker thread): called once with every item, resolves to the
 * model's context length and one ItemLengths per item, in order (lint-lengths.ts measureLengths).
 */
export type LengthMeasurer = (
  items: LengthItem[],
  conversation: ConversationOptions,
) => Promise<{ contextLength: number; lengths: ItemLengths[] }>;
export type LintRule = (typeof LINT_RULES)[number];
export type LintSeverity = 'error' | 'warning' | 'info';

export interface LintFinding {
  itemId: number;
  rule: LintRule;
  severity: LintSeverity;
  message: string;
  data?: Record<string, unknown>;
}

export interface LintOptions {
  /** Decode every image with sharp and re-hash it (slower). Default false: check presence and size. */
  deep?: boolean;
  /** The chosen model: enables `too_long` (and `render_error`), measured in this thread. */
  model?: RenderSetup & { contextLength: number };
  /** Instead of `model`: measure the lengths with this (e.g. in a worker); same findings. */
  measure?: LengthMeasurer;
  /** With `measure`: the context length to check against instead of the measured model's. */
  contextLength?: number;
  /**
   * Near-duplicate images by embedding (e.g. a worker's CLIP pass over the image items, embedding-search.ts
   * nearDuplicateImages): resolves to the items with a near image. Runs while this thread checks the rest.
   */
  nearImages?: {
    find(
      items: Array<{ id: number; image: { hash: string; ext: string } }>,
    ): Promise<Array<{ itemId: number; otherItemId: number; similarity: number; count: number }>>;
    threshold: number;
    /** the model's name, for the message */
    model: string;
  };
  /** Jaccard similarity of word 3-shingles at or above which captions are near-duplicates (default 0.8). */
  nearDuplicateThreshold?: number;
  conversation?: ConversationOptions;
  /** Store the findings in lint_results, replacing the dataset's previous lint (default true). */
  store?: boolean;
}

export interface LintReport {
  datasetId: number;
  items: number;
  findings: LintFinding[];
  /** Findings per rule. */
  counts: Partial<Record<LintRule, number>>;
  /** Items with at least one error. */
  itemsWithErrors: number;
}

export async function lintDataset(
  db: Database,
  dataDir: string,
  datasetId: number,
  opts: LintOptions = {},
): Promise<LintReport> {
  if (!datasetExists(db, datasetId)) throw new Error(`dataset ${datasetId} does not exist`);
  const items = loadItems(db, datasetId);
  const findings: LintFinding[] = [];
  const add = (
    itemId: number,
    rule: LintRule,
    severity: LintSeverity,
    message: string,
    data?: Record<string, unknown>,
  ) => findings.push(data ? { itemId, rule, severity, message, data } : { itemId, rule, severity, message });

  if (opts.model && opts.measure) throw new Error('lint: give model or measure, not both');
  const copts = opts.conversation ?? {};
  // the measuring (a worker's tokenizing) runs while this thread checks the images
  const measured = opts.measure?.(items.map(lengthItem), copts);
  measured?.catch(() => {}); // awaited below; an early image-check failure must not leave it unhandled
  const near = opts.nearImages?.find(
    items.filter((it) => it.image).map((it) => ({ id: it.id, image: { hash: it.image!.hash, ext: it.image!.ext } })),
  );
  near?.catch(() => {});
  for (const it of items) {
    await checkImage(it, dataDir, !!opts.deep, add);
    checkMedia(it, dataDir, add);
    checkLabels(it, add);
    checkDuplicateSamples(it, add);
    if (opts.model) checkLength(measureLengths([lengthItem(it)], opts.model, copts)[0], opts.model.contextLength, add);
  }
  if (measured) {
    const m = await measured;
    if (m.lengths.length !== items.length)
      throw new Error(`lint: measured ${m.lengths.length} items of ${items.length}`);
    const limit = opts.contextLength ?? m.contextLength;
    m.lengths.forEach((l, k) => {
      if (l.itemId !== items[k].id)
        throw new Error(`lint: measured item ${l.itemId} where item ${items[k].id} was sent`);
      checkLength(l, limit, add);
    });
  }
  checkDuplicateImages(items, add);
  if (near) {
    const ni = opts.nearImages!;
    for (const n of await near) {
      const more = n.count > 1 ? ` (and ${n.count - 1} more)` : '';
      add(
        n.itemId,
        'near_duplicate_image',
        'warning',
        `image is a near-duplicate of the image of item ${n.otherItemId}${more}: cosine ${n.similarity.toFixed(4)} ≥ ${ni.threshold} with ${ni.model}`,
        {
          otherItemId: n.otherItemId,
          similarity: n.similarity,
          threshold: ni.threshold,
          count: n.count,
        },
      );
    }
  }
  checkNearDuplicates(items, opts.nearDuplicateThreshold ?? 0.8, add);

  findings.sort((a, b) => a.itemId - b.itemId || LINT_RULES.indexOf(a.rule) - LINT_RULES.indexOf(b.rule));
  const counts: Partial<Record<LintRule, number>> = {};
  for (const f of findings) counts[f.rule] = (counts[f.rule] ?? 0) + 1;
  const itemsWithErrors = new Set(findings.filter((f) => f.severity === 'error').map((f) => f.itemId)).size;
  if (opts.store !== false) {
    const rows = findings.map((f) => ({
      itemId: f.itemId,
      rule: f.rule,
      severity: f.severity,
      message: f.message,
      dataJson: JSON.stringify(f.data ?? {}),
    }));
    replaceLintResults(db, datasetId, rows, nowIso());
  }
  return { datasetId, items: items.length, findings, counts, itemsWithErrors };
}

type Add = (
  itemId: number,
  rule: LintRule,
  severity: LintSeverity,
  message: string,
  data?: Record<string, unknown>,
) => void;

async function checkImage(it: FullItem, dataDir: string, deep: boolean, add: Add): Promise<void> {
  if (!it.image) return;
  const file = imagePath(dataDir, it.image.hash, it.image.ext);
  if (!existsSync(file)) {
    add(
      it.id,
      'image_missing',
      'error',
      `image file is missing from the data folder (${it.image.hash.slice(0, 12)}….${it.image.ext})`,
    );
    return;
  }
  const size = statSync(file).size;
  if (it.image.bytes != null && size !== it.image.bytes) {
    add(it.id, 'image_corrupt', 'error', `image file has ${size} bytes, expected ${it.image.bytes}`);
    return;
  }
  if (!deep) return;
  const bytes = readFileSync(file);
  const hash = createHash('sha256').update(bytes).digest('hex');
  if (hash !== it.image.hash) {
    add(it.id, 'image_corrupt', 'error', 'image file content does not match its hash');
    return;
  }
  try {
    await sharp(bytes, { failOn: 'error' }).resize(8, 8).raw().toBuffer();
  } catch (err) {
    add(it.id, 'image_corrupt', 'error', `image does not decode: ${(err as Error).message.split('\n')[0]}`);
  }
}

function checkMedia(it: FullItem, dataDir: string, add: Add): void {
  const m = it.media;
  if (!m) return;
  const file = mediaPath(dataDir, m.hash, m.ext);
  if (!existsSync(file)) {
    add(
      it.id,
      'media_missing',
      'error',
      `${m.kind} file is missing from the data folder (${m.hash.slice(0, 12)}….${m.ext})`,
    );
    return;
  }
  if (m.bytes != null && statSync(file).size !== m.bytes) {
    add(it.id, 'media_missing', 'error', `${m.kind} file has ${statSync(file).size} bytes, expected ${m.bytes}`);
    return;
  }
  const seconds = Number(m.meta.seconds);
  if (seconds > CLIP_WINDOW_SECONDS)
    add(it.id, 'clip_too_long', 'warning', longClipWarning(m.kind, seconds), { seconds });
}

const blank = (s: string) => s.trim() === '';

function checkLabels(it: FullItem, add: Add): void {
  if (it.annotations.length === 0) {
    add(it.id, 'unlabeled', 'info', 'no labels yet');
    return;
  }
  const expected = it.image ? 1 : 0;
  it.annotations.forEach((a, k) => {
    const where = `${a.kind} ${k + 1}`;
    if (a.kind === 'caption') {
      if (blank(a.data.text)) add(it.id, 'empty_answer', 'error', `${where}: caption is empty`, { annotationId: a.id });
      const n = countImageTokens([{ role: 'user', content: a.data.text }]);
      if (n > 0)
        add(it.id, 'image_token_mismatch', 'error', `${where}: caption contains ${n} <image> tag(s)`, {
          annotationId: a.id,
          found: n,
          expected: 0,
        });
    } else if (a.kind === 'qa') {
      if (blank(a.data.answer))
        add(it.id, 'empty_answer', 'error', `${where}: answer is empty`, { annotationId: a.id });
      if (blank(a.data.question))
        add(it.id, 'empty_question', 'warning', `${where}: question is empty`, { annotationId: a.id });
      const n = countImageTokens([{ role: 'user', content: a.data.question }]);
      if (n > 1 || (n === 1 && !it.image))
        add(
          it.id,
          'image_token_mismatch',
          'error',
          `${where}: ${n} <image> tag(s) in the question but ${expected} image`,
          { annotationId: a.id, found: n, expected },
        );
    } else {
      const msgs = a.data.messages;
      if (!msgs.some((m) => m.role === 'assistant'))
        add(it.id, 'no_assistant', 'error', `${where}: no assistant turn`, { annotationId: a.id });
      msgs.forEach((m, i) => {
        if (m.role === 'assistant' && blank(m.content))
          add(it.id, 'empty_answer', 'error', `${where}: assistant turn ${i + 1} is empty`, {
            annotationId: a.id,
            message: i,
          });
        if (m.role === 'user' && blank(m.content))
          add(it.id, 'empty_question', 'warning', `${where}: user turn ${i + 1} is empty`, {
            annotationId: a.id,
            message: i,
          });
      });
      const n = countImageTokens(msgs);
      if (n !== expected)
        add(it.id, 'image_token_mismatch', 'error', `${where}: ${n} <image> tag(s) but ${expected} image`, {
          annotationId: a.id,
          found: n,
          expected,
        });
    }
  });
}

/** What a label teaches, as user/assistant text with <image> tags, case of whitespace and Unicode form ignored. */
function sampleKey(a: FullItem['annotations'][number]): string {
  const norm = (t: string) =>
    t
      .replace(/<image>/g, '')
      .normalize('NFC')
      .replace(/\s+/g, ' ')
      .trim();
  if (a.kind === 'caption') return JSON.stringify(['caption', norm(a.data.text)]);
  if (a.kind === 'qa')
    return JSON.stringify([
      ['user', norm(a.data.question)],
      ['assistant', norm(a.data.answer)],
    ]);
  return JSON.stringify(a.data.messages.map((m) => [m.role, norm(m.content)]));
}

/** Labels of one item that are the same training sample (a question imported from two files counts twice). */
function checkDuplicateSamples(it: FullItem, add: Add): void {
  const seen = new Map<string, number>();
  it.annotations.forEach((a, k) => {
    const key = sampleKey(a);
    const first = seen.get(key);
    if (first === undefined) seen.set(key, k);
    else
      add(
        it.id,
        'duplicate_sample',
        'error',
        `${a.kind} ${k + 1} teaches the same as ${it.annotations[first].kind} ${first + 1} (the same question and answer, e.g. from two files of one folder): it would be trained twice; delete one`,
        { annotationId: a.id, duplicateOf: it.annotations[first].id },
      );
  });
}

function checkLength(l: ItemLengths, limit: number, add: Add): void {
  l.conversations.forEach((c, k) => {
    if ('error' in c)
      add(l.itemId, 'render_error', 'error', `conversation ${k + 1} (${c.kind}): ${c.error}`, { conversation: k });
    else if (c.tokens > limit) {
      add(
        l.itemId,
        'too_long',
        'error',
        `conversation ${k + 1} (${c.kind}) is ${c.tokens} tokens; the model's context is ${limit}`,
        { tokens: c.tokens, limit, conversation: k },
      );
    }
  });
}

function checkDuplicateImages(items: FullItem[], add: Add): void {
  const byHash = new Map<string, number[]>();
  for (const it of items) {
    if (!it.image) continue;
    let l = byHash.get(it.image.hash);
    if (!l) byHash.set(it.image.hash, (l = []));
    l.push(it.id);
  }
  for (const ids of byHash.values()) {
    if (ids.length < 2) continue;
    for (const id of ids) {
      const others = ids.filter((o) => o !== id);
      add(
        id,
        'duplicate_image',
        'warning',
        `same image as item${others.length > 1 ? 's' : ''} ${others.slice(0, 5).join(', ')}${others.length > 5 ? '…' : ''}`,
        { others },
      );
    }
  }
}

/** Lowercase, strip punctuation, collapse whitespace. */
export function normalizeText(s: string): string {
  return s
    .toLowerCase()
    .normalize('NFKC')
    .replace(/[^\p{L}\p{N}\s]+/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

function shingles(norm: string): Set<string> {
  const w = norm.split(' ').filter(Boolean);
  const out = new Set<string>();
  if (w.length < 3) {
    if (w.length) out.add(w.join(' '));
    return out;
  }
  for (let i = 0; i + 3 <= w.length; i++) out.add(`${w[i]} ${w[i + 1]} ${w[i + 2]}`);
  return out;
}

function jaccard(a: Set<string>, b: Set<string>): number {
  let inter = 0;
  for (const x of a) if (b.has(x)) inter++;
  return inter / (a.size + b.size - inter || 1);
}

function hash32(s: string, seed: number): number {
  let h = 0x811c9dc5 ^ seed;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * Near-duplicate captions: MinHash (32 hashes, 16 bands of 2) finds candidate pairs without comparing
 * every pair; candidates are confirmed with the exact Jaccard similarity of word 3-shingles.
 */
function checkNearDuplicates(items: FullItem[], threshold: number, add: Add): void {
  interface Cap {
    itemId: number;
    text: string;
    norm: string;
    sh: Set<string>;
  }
  const caps: Cap[] = [];
  for (const it of items)
    for (const a of it.annotations)
      if (a.kind === 'caption' && !blank(a.data.text)) {
        const norm = normalizeText(a.data.text);
        if (norm) caps.push({ itemId: it.id, text: a.data.text, norm, sh: shingles(norm) });
      }
  const H = 32;
  const R = 2;
  const buckets = new Map<string, number[]>();
  caps.forEach((c, idx) => {
    const sig: number[] = [];
    for (let h = 0; h < H; h++) {
      let min = 0xffffffff;
      for (const s of c.sh) {
        const v = hash32(s, h * 0x9e3779b1);
        if (v < min) min = v;
      }
      sig.push(min);
    }
    for (let b = 0; b < H / R; b++) {
      const key = `${b}:${sig.slice(b * R, b * R + R).join(',')}`;
      let l = buckets.get(key);
      if (!l) buckets.set(key, (l = []));
      l.push(idx);
    }
  });
  const seen = new Set<string>();
  const found = new Map<number, Map<number, number>>();
  for (const l of buckets.values()) {
    if (l.length < 2 || l.length > 2000) continue;
    for (let i = 0; i < l.length; i++) {
      for (let j = i + 1; j < l.length; j++) {
        const a = caps[l[i]];
        const b = caps[l[j]];
        if (a.itemId === b.itemId) continue;
        const key = `${l[i]}:${l[j]}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const sim = a.norm === b.norm ? 1 : jaccard(a.sh, b.sh);
        if (sim < threshold) continue;
        for (const [x, y] of [
          [a, b],
          [b, a],
        ] as const) {
          let m = found.get(x.itemId);
          if (!m) found.set(x.itemId, (m = new Map()));
          m.set(y.itemId, Math.max(m.get(y.itemId) ?? 0, sim));
        }
      }
    }
  }
  for (const [itemId, m] of found) {
    const others = [...m.entries()].sort((p, q) => q[1] - p[1] || p[0] - q[0]);
    const best = others[0];
    add(
      itemId,
      'near_duplicate_caption',
      'warning',
      `caption ${best[1] === 1 ? 'is the same as' : `is ${Math.round(best[1] * 100)}% similar to`} the caption of item ${best[0]}${others.length > 1 ? ` (and ${others.length - 1} more)` : ''}`,
      {
        others: others.map(([id, sim]) => ({ itemId: id, similarity: Math.round(sim * 1000) / 1000 })),
      },
    );
  }
}

/** Stored findings of the latest lint, filtered. */
export function listLintResults(
  db: Database,
  datasetId: number,
  filter: { rule?: LintRule; severity?: LintSeverity; itemId?: number } = {},
): LintFinding[] {
  const rows = lintResultRows(db, datasetId, filter);
  return rows.map((r) => {
    const data = JSON.parse(r.data_json) as Record<string, unknown>;
    const f: LintFinding = {
      itemId: r.item_id,
      rule: r.rule as LintRule,
      severity: r.severity as LintSeverity,
      message: r.message,
    };
    if (Object.keys(data).length) f.data = data;
    return f;
  });
}
