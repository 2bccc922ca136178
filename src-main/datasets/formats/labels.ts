// Labels from a flat record (imagefolder metadata rows, VQA records, parquet rows, data.json):
// caption columns, question/answer columns, QA lists or a nested conversation.
import { MAX_TEXT_CHARS } from '../schemas';
import { conversationToAnnotations, normalizeRole } from '../conversation';
import { IMAGE_TOKEN, type Annotation, type ChatMessage } from '../types';
import type { LenslabMeta } from '../schemas';
import { isRecord, type ParseContext } from './common';
import { joinParts } from './conversation';

export const CAPTION_KEYS = ['text', 'caption', 'captions', 'description', 'sentence', 'sentences', 'label_text'];
export const QUESTION_KEYS = ['question', 'q', 'query', 'instruction', 'prompt'];
export const ANSWER_KEYS = ['answer', 'a', 'answers', 'response', 'output', 'multiple_choice_answer'];
// audio / video: an item holds a clip instead of an image (HF audiofolder, JSONL with an `audio` or `video` field)
export const IMAGE_KEYS = [
  'file_name',
  'image',
  'image_path',
  'img',
  'image_file',
  'filename',
  'path',
  'images',
  'audio',
  'video',
  'audio_path',
  'video_path',
];
const IGNORED = new Set(['lenslab', 'id', 'split', 'tags', ...IMAGE_KEYS]);

export interface LabelOptions {
  textColumn?: string;
  meta?: LenslabMeta;
}

function pick(row: Record<string, unknown>, keys: string[]): [string, unknown] | undefined {
  for (const k of keys) if (row[k] !== undefined && row[k] !== null) return [k, row[k]];
  return undefined;
}

class FieldError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

function str(field: string, v: unknown): string {
  if (typeof v !== 'string')
    throw new FieldError(
      field,
      `expected string, received ${v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v}`,
    );
  if (v.length > MAX_TEXT_CHARS)
    throw new FieldError(field, `text is too long (${v.length} characters; limit ${MAX_TEXT_CHARS})`);
  return v;
}

/** `answers` as in VQAv2: a list of strings or of `{answer}`; the most frequent one wins (first on ties). */
function answerOf(field: string, v: unknown): string {
  if (!Array.isArray(v)) return str(field, v);
  if (v.length === 0) throw new FieldError(field, 'answer list is empty');
  const texts = v.map((a, i) => (isRecord(a) ? str(`${field}[${i}].answer`, a.answer) : str(`${field}[${i}]`, a)));
  const counts = new Map<string, number>();
  for (const t of texts) counts.set(t, (counts.get(t) ?? 0) + 1);
  let best = texts[0];
  for (const t of texts) if ((counts.get(t) ?? 0) > (counts.get(best) ?? 0)) best = t;
  return best;
}

function captionsOf(field: string, v: unknown): Annotation[] {
  if (Array.isArray(v))
    return v.map((c, i) => ({ kind: 'caption' as const, data: { text: str(`${field}[${i}]`, c) } }));
  return [{ kind: 'caption', data: { text: str(field, v) } }];
}

function chatOf(field: string, v: unknown): ChatMessage[] {
  let list = v;
  if (typeof list === 'string') {
    try {
      list = JSON.parse(list);
    } catch {
      throw new FieldError(field, 'expected a list of turns (or its JSON text)');
    }
  }
  if (!Array.isArray(list) || list.length === 0) throw new FieldError(field, 'expected a non-empty list of turns');
  return list.map((t, i) => {
    if (!isRecord(t)) throw new FieldError(`${field}[${i}]`, 'expected an object');
    const speaker = t.role ?? t.from;
    if (typeof speaker !== 'string') throw new FieldError(`${field}[${i}].role`, 'expected string');
    const role = normalizeRole(speaker);
    if (!role) throw new FieldError(`${field}[${i}].role`, `unsupported role '${speaker}'`);
    const raw = t.content ?? t.value;
    const content = Array.isArray(raw)
      ? joinParts(
          raw.map((p, k) =>
            isRecord(p) && p.type === 'image'
              ? { type: 'image' }
              : { type: 'text', text: str(`${field}[${i}].content[${k}].text`, isRecord(p) ? p.text : p) },
          ),
        )
      : str(`${field}[${i}].content`, raw);
    return { role, content };
  });
}

/**
 * Annotations from a flat record. Returns undefined (after reporting) when a label field is malformed;
 * an empty list when the record has no labels (an item to be labeled).
 */
export function labelsFromRow(
  ctx: ParseContext,
  ref: string,
  row: Record<string, unknown>,
  opts: LabelOptions = {},
): Annotation[] | undefined {
  try {
    return labels(ctx, ref, row, opts);
  } catch (err) {
    if (err instanceof FieldError) {
      ctx.error(ref, err.message, err.field);
      return undefined;
    }
    throw err;
  }
}

function labels(ctx: ParseContext, ref: string, row: Record<string, unknown>, opts: LabelOptions): Annotation[] {
  if (opts.textColumn) {
    if (!(opts.textColumn in row)) throw new FieldError(opts.textColumn, 'column not found');
    return row[opts.textColumn] == null ? [] : captionsOf(opts.textColumn, row[opts.textColumn]);
  }
  const conv = pick(row, ['messages', 'conversations']);
  if (conv) {
    const messages = chatOf(conv[0], conv[1]);
    const kind = opts.meta?.kind ?? 'chat';
    return conversationToAnnotations(kind, messages) ?? [{ kind: 'chat', data: { messages } }];
  }
  const qaList = pick(row, ['qa', 'qas', 'qa_pairs', 'texts']);
  if (qaList) {
    if (!Array.isArray(qaList[1])) throw new FieldError(qaList[0], 'expected a list of {question, answer}');
    return qaList[1].map((p, i) => {
      if (!isRecord(p)) throw new FieldError(`${qaList[0]}[${i}]`, 'expected an object');
      const q = pick(p, [...QUESTION_KEYS, 'user']);
      const a = pick(p, [...ANSWER_KEYS, 'assistant']);
      if (!q) throw new FieldError(`${qaList[0]}[${i}].question`, 'missing');
      if (!a) throw new FieldError(`${qaList[0]}[${i}].answer`, 'missing');
      return {
        kind: 'qa' as const,
        data: {
          question: str(`${qaList[0]}[${i}].${q[0]}`, q[1]),
          answer: answerOf(`${qaList[0]}[${i}].${a[0]}`, a[1]),
        },
      };
    });
  }
  const q = pick(row, QUESTION_KEYS);
  const a = pick(row, ANSWER_KEYS);
  if (q && a) return [{ kind: 'qa', data: { question: str(q[0], q[1]), answer: answerOf(a[0], a[1]) } }];
  if (q && !a && opts.meta?.kind === 'qa') throw new FieldError('answer', 'missing');
  const c = pick(row, CAPTION_KEYS);
  if (c) return captionsOf(c[0], c[1]);
  if (q || a) {
    throw new FieldError(
      q ? 'answer' : 'question',
      `missing (the record has '${(q ?? a)![0]}' but no ${q ? 'answer' : 'question'})`,
    );
  }
  const others = Object.entries(row).filter(([k, v]) => !IGNORED.has(k) && typeof v === 'string');
  if (others.length === 1) return captionsOf(others[0][0], others[0][1]);
  if (others.length > 1) {
    ctx.warn(
      ref,
      `several text columns (${others.map(([k]) => k).join(', ')}); none used: choose one with the text column option`,
    );
  }
  return [];
}
