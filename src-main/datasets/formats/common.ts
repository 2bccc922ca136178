// Helpers shared by the importers: the parse context, image path resolution with per-item
// problems, and assembling records into items (grouping records of one exported item).
import { dirname, join, relative, resolve } from 'node:path';
import { resolveInside } from '../paths';
import { lenslabMetaSchema, type LenslabMeta } from '../schemas';
import type { Annotation, ImageSource, ImportProblem, NormalizedItem, Split } from '../types';

export interface ParseOptions {
  /** Extra folder in which relative image paths are looked up (LLaVA's --image_folder). Must be given by the user. */
  imageRoot?: string;
  /** imagefolder / parquet: the column holding captions, when it cannot be guessed. */
  textColumn?: string;
  /** imagefolder / parquet: the column holding images. */
  imageColumn?: string;
  /** Records naming the same image file become one item (default true). */
  groupByImage?: boolean;
}

export class ParseContext {
  readonly root: string;
  readonly roots: string[];
  readonly problems: ImportProblem[] = [];
  constructor(
    root: string,
    readonly options: ParseOptions = {},
  ) {
    this.root = resolve(root);
    this.roots = options.imageRoot ? [this.root, resolve(options.imageRoot)] : [this.root];
  }
  /** A file's label for messages: its path relative to the import root. */
  label(abs: string): string {
    return relative(this.root, abs).split('\\').join('/') || '.';
  }
  private readonly strings = new Map<string, string>();
  /** One copy of a string many records repeat (image paths: a million records may name a thousand files). */
  intern(s: string): string {
    const have = this.strings.get(s);
    if (have !== undefined) return have;
    if (this.strings.size < 1_000_000) this.strings.set(s, s);
    return s;
  }
  error(ref: string, message: string, field?: string): void {
    this.problems.push({ ref, field, message, severity: 'error' });
  }
  warn(ref: string, message: string, field?: string): void {
    this.problems.push({ ref, field, message, severity: 'warning' });
  }
  /**
   * Resolve an image path written in `file` (relative to the file's folder, then the import root,
   * then the image root). Reports an error for `ref` and returns undefined when it cannot be used.
   */
  image(ref: string, field: string, written: unknown, file: string): ImageSource | undefined {
    // LLaVA-style files name images relative to a separate image folder: also look in `images/` beside the file.
    const bases = [
      dirname(file),
      this.root,
      ...(this.options.imageRoot ? [resolve(this.options.imageRoot)] : []),
      join(dirname(file), 'images'),
      join(this.root, 'images'),
    ];
    let first: string | undefined;
    for (const base of [...new Set(bases)]) {
      const r = resolveInside(this.roots, base, written);
      if (r.ok) return { path: this.intern(r.path), original: this.intern(String(written)) };
      first ??= r.reason;
      if (!r.reason.startsWith('file not found')) break; // escapes / bad types fail the same from every base
    }
    this.error(ref, first ?? 'image not found', field);
    return undefined;
  }
}

/** One parsed record before grouping. */
export interface RecordOut {
  ref: string;
  image?: ImageSource;
  annotations: Annotation[];
  meta?: LenslabMeta;
  tags?: string[];
  split?: Split;
}

/** Read the optional `lenslab` field of an exported record; a malformed one is a warning and ignored. */
export function readMeta(ctx: ParseContext, ref: string, value: unknown): LenslabMeta | undefined {
  if (value === undefined || value === null) return undefined;
  let v = value;
  if (typeof v === 'string') {
    try {
      v = JSON.parse(v);
    } catch {
      ctx.warn(ref, 'ignored: not valid JSON', 'lenslab');
      return undefined;
    }
  }
  const r = lenslabMetaSchema.safeParse(v);
  if (!r.success) {
    ctx.warn(ref, `ignored: ${r.error.issues[0]?.message ?? 'invalid'}`, 'lenslab');
    return undefined;
  }
  return r.data;
}

/**
 * Records → items. Records carrying the same `lenslab.item` key become one item (their annotations in order).
 * Unless `groupByImage` is false, records without that key that name the same image file (and split) also
 * become one item: several questions about one picture are one item with several QA pairs, which keeps the
 * picture in a single split.
 */
export function assemble(records: RecordOut[], opts: { groupByImage?: boolean } = {}): NormalizedItem[] {
  const items: NormalizedItem[] = [];
  const byKey = new Map<string, { item: NormalizedItem; refs: number }>();
  for (const r of records) {
    const key = groupKey(r, opts);
    const existing = key ? byKey.get(key) : undefined;
    if (existing) {
      for (const a of r.annotations) existing.item.annotations.push(a);
      existing.item.image ??= r.image;
      if (!r.meta) {
        existing.refs++;
        existing.item.sourcePath = `${existing.item.sourcePath.replace(/ \(\+\d+ more\)$/, '')} (+${existing.refs - 1} more)`;
        for (const t of r.tags ?? []) if (!existing.item.tags?.includes(t)) (existing.item.tags ??= []).push(t);
      }
      continue;
    }
    const item: NormalizedItem = { sourcePath: r.ref, annotations: [...r.annotations] };
    if (r.image) item.image = r.image;
    const tags = r.meta?.tags ?? r.tags;
    if (tags && tags.length) item.tags = [...new Set(tags)];
    const split = r.meta?.split ?? r.split;
    if (split) item.split = split;
    items.push(item);
    if (key) byKey.set(key, { item, refs: 1 });
  }
  return items;
}

/** The key of the item a record joins (records with the same key are one item); undefined: an item of its own. */
export function groupKey(r: RecordOut, opts: { groupByImage?: boolean } = {}): string | undefined {
  return r.meta
    ? `meta:${typeof r.meta.item}:${r.meta.item}`
    : opts.groupByImage !== false && r.image && 'path' in r.image
      ? `image:${r.split ?? ''}:${r.image.path}`
      : undefined;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
