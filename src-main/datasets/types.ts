// Shared types of the datasets area: normalized items produced by every importer,
// the annotation shapes stored in `annotations.data_json`, and problems reported per item.

export type Role = 'system' | 'user' | 'assistant';
export interface ChatMessage {
  role: Role;
  content: string;
}

/** The image placeholder in user turns (LLaVA convention). */
export const IMAGE_TOKEN = '<image>';

export type Annotation =
  | { kind: 'caption'; data: { text: string } }
  | { kind: 'qa'; data: { question: string; answer: string } }
  | { kind: 'chat'; data: { messages: ChatMessage[] } };
export type AnnotationKind = Annotation['kind'];
export type Split = 'train' | 'val' | 'test';

/** Where an item's image comes from before it is stored content-addressed. */
export type ImageSource =
  | {
      path: string /* absolute, already checked to be inside the import root */;
      original: string; /* as written in the source */
    }
  | { bytes: Uint8Array; original: string /* e.g. "data.parquet row 3 column image" or the embedded file name */ };

/** One item as every importer yields it (the pure parse/normalize layer). */
export interface NormalizedItem {
  /** Where the record came from, e.g. `data.json[3]`, `metadata.jsonl:12`, `cats/1.jpg`. */
  sourcePath: string;
  image?: ImageSource;
  annotations: Annotation[];
  tags?: string[];
  split?: Split;
}

export type Severity = 'error' | 'warning';
/** A problem with one record (or the whole source when `ref` is the file). */
export interface ImportProblem {
  /** The record, e.g. `data.json[3]` or `metadata.jsonl:12`. */
  ref: string;
  /** The field within the record, e.g. `conversations[1].value`. */
  field?: string;
  message: string;
  severity: Severity;
}

/** What a parser returns: good items plus a problem list. Items with an `error` problem are not in `items`. */
export interface ParseResult {
  format: ImportFormat;
  items: NormalizedItem[];
  problems: ImportProblem[];
  /** The items, when they are kept on disk instead (`items` is then empty). */
  staged?: RecordStage;
}

import type { RecordStage } from './stage';

// The format lists are part of the API contract (pure TS), defined there once.
import { EXPORT_FORMATS, IMPORT_FORMATS } from '../contract/datasets-io';
export { EXPORT_FORMATS, IMPORT_FORMATS };
export type ImportFormat = (typeof IMPORT_FORMATS)[number];
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** A whole-import failure (nothing was stored). `file` and `field` name the culprit when known. */
export class ImportError extends Error {
  readonly file?: string;
  readonly problems: ImportProblem[];
  constructor(message: string, opts: { file?: string; problems?: ImportProblem[]; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ImportError';
    this.file = opts.file;
    this.problems = opts.problems ?? [];
  }
}

/** Formats a problem as one line: `data.json[3].conversations[1].value: expected string`. */
export function formatProblem(p: ImportProblem): string {
  const where = p.field ? `${p.ref}${p.field.startsWith('[') ? '' : '.'}${p.field}` : p.ref;
  return `${where}: ${p.message}`;
}

export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.gif', '.bmp', '.tif', '.tiff', '.avif'] as const;
export function isImageName(name: string): boolean {
  const lower = name.toLowerCase();
  return IMAGE_EXTENSIONS.some((e) => lower.endsWith(e));
}
/** Audio and video an item can hold instead of an image (media/audio.ts, media/video.ts decode them). */
export const MEDIA_EXTENSIONS = [
  '.wav',
  '.wave',
  '.flac',
  '.mp3',
  '.ogg',
  '.oga',
  '.opus',
  '.m4a',
  '.aac',
  '.mp4',
  '.m4v',
  '.mov',
  '.webm',
  '.mkv',
  '.avi',
] as const;
export function isMediaName(name: string): boolean {
  const lower = name.toLowerCase();
  return MEDIA_EXTENSIONS.some((e) => lower.endsWith(e));
}
/** A file an item can be made of: an image, an audio clip or a video. */
export function isItemFileName(name: string): boolean {
  return isImageName(name) || isMediaName(name);
}
