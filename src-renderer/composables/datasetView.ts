// Small pure helpers for the dataset and labeling views: an item's one-line caption, lint rule labels,
// and item filters to and from the URL query (so a reload or the labeling view sees the same list).

export interface AnnotationLike {
  kind: 'caption' | 'qa' | 'chat';
  data: { text?: string; question?: string; answer?: string; messages?: { role: string; content: string }[] };
}

/** The text shown under a thumbnail: the first caption, QA pair or conversation turn. */
export function itemCaption(item: { annotations: readonly AnnotationLike[] }): string {
  const a = item.annotations[0];
  if (!a) return 'unlabeled';
  const more = item.annotations.length > 1 ? ` (+${item.annotations.length - 1})` : '';
  if (a.kind === 'caption') return (a.data.text ?? '').trim() + more;
  if (a.kind === 'qa')
    return `${(a.data.question ?? '').replace(/<image>\s*/g, '').trim()} → ${(a.data.answer ?? '').trim()}${more}`;
  const turns = a.data.messages ?? [];
  const answer = turns.find((m) => m.role === 'assistant')?.content ?? '';
  const question = turns.find((m) => m.role === 'user')?.content.replace(/<image>\s*/g, '') ?? '';
  return `${question.trim()} → ${answer.trim()}${more}`;
}

/** Lint rules (contract LINT_RULES) in words. */
export const LINT_LABELS: Record<string, string> = {
  image_missing: 'Image missing',
  image_corrupt: 'Image cannot be read',
  image_token_mismatch: '<image> count mismatch',
  empty_answer: 'Empty answer',
  no_assistant: 'No answer turn',
  empty_question: 'Empty question',
  duplicate_image: 'Duplicate images',
  duplicate_sample: 'Same question twice',
  near_duplicate_caption: 'Near-duplicate captions',
  near_duplicate_image: 'Near-duplicate images',
  too_long: 'Longer than the context',
  render_error: 'Cannot be rendered',
  unlabeled: 'Unlabeled',
  media_missing: 'Audio/video file missing',
  clip_too_long: 'Clip longer than 30 s',
};

export type SplitFilter = 'train' | 'val' | 'test' | 'none';
export interface QueryFilters {
  split?: SplitFilter;
  tag?: string;
  lintRule?: string;
  unlabeled?: boolean;
  search?: string;
}

const SPLITS = new Set(['train', 'val', 'test', 'none']);
type QueryValue = string | null | undefined | (string | null)[];
const one = (v: QueryValue): string | undefined =>
  (Array.isArray(v) ? (v[0] ?? undefined) : (v ?? undefined)) || undefined;

/** Filters from a route query (unknown values are dropped). */
export function filtersFromQuery<F extends QueryFilters = QueryFilters>(q: Record<string, QueryValue>): F {
  const f: QueryFilters = {};
  const split = one(q.split);
  if (split && SPLITS.has(split)) f.split = split as SplitFilter;
  const tag = one(q.tag);
  if (tag) f.tag = tag;
  const rule = one(q.problem);
  if (rule && rule in LINT_LABELS) f.lintRule = rule;
  const labels = one(q.labels);
  if (labels === 'unlabeled') f.unlabeled = true;
  else if (labels === 'labeled') f.unlabeled = false;
  const search = one(q.q);
  if (search) f.search = search;
  return f as F;
}

/** The route query for filters (empty ones left out). */
export function filtersToQuery(f: QueryFilters): Record<string, string> {
  const q: Record<string, string> = {};
  if (f.split) q.split = f.split;
  if (f.tag) q.tag = f.tag;
  if (f.lintRule) q.problem = f.lintRule;
  if (f.unlabeled === true) q.labels = 'unlabeled';
  else if (f.unlabeled === false) q.labels = 'labeled';
  if (f.search?.trim()) q.q = f.search.trim();
  return q;
}
