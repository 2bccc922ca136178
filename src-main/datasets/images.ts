// Content-addressed image store inside the data directory:
//   <dataDir>/images/<hash[0:2]>/<hash>.<ext>   (sha256 of the file's bytes)
//   <dataDir>/thumbs/<hash[0:2]>/<hash>.webp
// Files are written atomically (temp + rename) and never modified; an import that fails removes
// only the files it created and no row refers to.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { writeBytesAtomic } from '../util/atomic-write';
import { readRegularFile, removeTree } from './read';
import type { ImageSource } from './types';
import { hashReferenceCheck, historyChangesWithHashes, referencedHashes } from '../storage/media-refs-queries';

/** Largest image file accepted (bytes). */
export const MAX_IMAGE_BYTES = 200 * 1024 * 1024;
export const THUMB_SIZE = 256;

export interface StoredImage {
  hash: string;
  ext: string;
  width: number;
  height: number;
  bytes: number;
}

const EXT: Record<string, string> = {
  jpeg: 'jpg',
  jpg: 'jpg',
  png: 'png',
  webp: 'webp',
  gif: 'gif',
  tiff: 'tif',
  avif: 'avif',
  heif: 'heic',
};

export function imagePath(dataDir: string, hash: string, ext: string): string {
  return join(dataDir, 'images', hash.slice(0, 2), `${hash}.${ext}`);
}
export function thumbPath(dataDir: string, hash: string): string {
  return join(dataDir, 'thumbs', hash.slice(0, 2), `${hash}.webp`);
}

/** Most pixels an image may have (width × height), checked from its header before it is decoded. */
export const MAX_IMAGE_PIXELS = 64 * 1000 * 1000;

/** A write into the image store failed (disk full, read-only, …): the message names the file. */
export class StoreWriteError extends Error {
  readonly code?: string;
  constructor(file: string, err: unknown) {
    super(`cannot write ${file}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
    this.name = 'StoreWriteError';
    this.code = (err as NodeJS.ErrnoException)?.code;
  }
}

export function writeAtomic(file: string, data: Uint8Array): void {
  try {
    mkdirSync(dirname(file), { recursive: true });
    writeBytesAtomic(file, data, { fsync: false });
  } catch (err) {
    throw new StoreWriteError(file, err);
  }
}

export class ImageError extends Error {}

/** Read the bytes of an image source (with a size limit). Only regular files are opened (never a FIFO or device). */
export function readImageBytes(src: ImageSource): Uint8Array {
  if ('bytes' in src) {
    if (src.bytes.length > MAX_IMAGE_BYTES)
      throw new ImageError(`image is too large (${src.bytes.length} bytes; limit ${MAX_IMAGE_BYTES})`);
    return src.bytes;
  }
  if (!existsSync(src.path)) throw new ImageError(`image file not found: ${src.original}`);
  let bytes: Buffer;
  try {
    bytes = readRegularFile(src.path, src.original, MAX_IMAGE_BYTES, 'image');
  } catch (err) {
    throw new ImageError((err as Error).message.replace(/^.*?: (image is too large|not a regular file)/, '$1'));
  }
  if (bytes.length === 0) throw new ImageError(`image file is empty: ${src.original}`);
  return bytes;
}

/**
 * Hash, validate (fully decode) and store one image with its thumbnail. `created` lists files this call
 * wrote (for cleanup if the surrounding import fails). Throws ImageError for corrupt or unsupported images.
 */
export async function storeImage(
  dataDir: string,
  src: ImageSource,
): Promise<{ image: StoredImage; created: string[]; isNew: boolean }> {
  const bytes = readImageBytes(src);
  if (bytes.length === 0) throw new ImageError('image is empty (0 bytes)');
  const hash = createHash('sha256').update(bytes).digest('hex');
  let meta: Awaited<ReturnType<ReturnType<typeof sharp>['metadata']>>;
  try {
    meta = await sharp(bytes, { failOn: 'error' }).metadata();
  } catch (err) {
    throw new ImageError(`corrupt or unsupported image: ${shortSharpMessage(err)}`);
  }
  const ext = meta.format ? EXT[meta.format] : undefined;
  if (!ext)
    throw new ImageError(
      `unsupported image format '${meta.format ?? 'unknown'}' (supported: JPEG, PNG, WebP, GIF, TIFF, AVIF)`,
    );
  if (!meta.width || !meta.height) throw new ImageError('image has no dimensions');
  // only the first frame of an animation is decoded, so the limit is on one frame
  if (meta.width * meta.height > MAX_IMAGE_PIXELS) {
    throw new ImageError(
      `image is too large: ${meta.width}×${meta.height} = ${((meta.width * meta.height) / 1e6).toFixed(1)} megapixels (limit MAX_IMAGE_PIXELS = ${MAX_IMAGE_PIXELS / 1e6} megapixels)`,
    );
  }
  const oriented = (meta.orientation ?? 1) >= 5;
  const width = oriented ? meta.height : meta.width;
  const height = oriented ? meta.width : meta.height;
  const created: string[] = [];
  const thumb = thumbPath(dataDir, hash);
  if (!existsSync(thumb)) {
    let data: Buffer;
    try {
      // Decoding the whole image for the thumbnail also proves it is not truncated.
      data = await sharp(bytes, { failOn: 'error', limitInputPixels: MAX_IMAGE_PIXELS })
        .rotate()
        .resize(THUMB_SIZE, THUMB_SIZE, { fit: 'inside', withoutEnlargement: true })
        .webp({ quality: 75 })
        .toBuffer();
    } catch (err) {
      throw new ImageError(`corrupt image: ${shortSharpMessage(err)}`);
    }
    writeAtomic(thumb, data);
    created.push(thumb);
  }
  const file = imagePath(dataDir, hash, ext);
  const isNew = !existsSync(file);
  if (isNew) {
    try {
      writeAtomic(file, bytes);
    } catch (err) {
      // the caller never sees this call's list: remove the thumbnail it wrote before failing
      for (const f of created) rmSync(f, { force: true });
      throw err;
    }
    created.push(file);
  }
  return { image: { hash, ext, width, height, bytes: bytes.length }, created, isNew };
}

function shortSharpMessage(err: unknown): string {
  const m = (err as Error)?.message ?? String(err);
  return m
    .split('\n')[0]
    .replace(/^Input (buffer|file) /, '')
    .slice(0, 200);
}

/** Remove the given files unless an item or a chat message still refers to their hash. */
export function removeUnreferenced(db: import('better-sqlite3').Database, files: string[]): void {
  const used = hashReferenceCheck(db);
  for (const f of files) {
    const hash = /([0-9a-f]{64})\.[a-z0-9]+$/.exec(f)?.[1];
    if (hash && used(hash)) continue;
    rmSync(f, { force: true });
  }
}

/**
 * Remove stored images and thumbnails that nothing refers to: no item, no chat message, and no undo/redo
 * history entry (so undoing a delete still finds its image). Files younger than `minAgeMs` are kept, so an
 * import in progress (files written, rows not yet committed) is never disturbed.
 */
export function collectImageGarbage(
  db: import('better-sqlite3').Database,
  dataDir: string,
  opts: { minAgeMs?: number } = {},
): { removed: number; kept: number; bytesFreed: number } {
  const minAge = opts.minAgeMs ?? 60 * 60 * 1000;
  const used = new Set<string>();
  for (const h of referencedHashes(db)) used.add(h);
  for (const changes of historyChangesWithHashes(db)) {
    for (const m of changes.matchAll(/"(?:image|media)_hash":"([0-9a-f]{64})"/g)) used.add(m[1]);
  }
  let removed = 0;
  let kept = 0;
  let bytesFreed = 0;
  const now = Date.now();
  // Date.now() is whole milliseconds and a file's mtime is not, so a file written this millisecond looks younger
  // than zero: with no minimum age every file is old enough
  const oldEnough = (mtimeMs: number) => minAge <= 0 || now - mtimeMs >= minAge;
  // zip extraction and record staging folders left by a crashed import
  if (existsSync(dataDir)) {
    for (const f of readdirSync(dataDir)) {
      const p = join(dataDir, f);
      if ((f.startsWith('.lenslab-unzip-') || f.startsWith('.lenslab-import-')) && oldEnough(statSync(p).mtimeMs)) {
        removeTree(p);
        removed++;
      }
    }
  }
  for (const top of ['images', 'thumbs', 'media']) {
    const base = join(dataDir, top);
    if (!existsSync(base)) continue;
    for (const sub of readdirSync(base)) {
      const dir = join(base, sub);
      if (!statSync(dir).isDirectory()) continue;
      for (const f of readdirSync(dir)) {
        const hash = /^([0-9a-f]{64})\.[a-z0-9]+$/.exec(f)?.[1];
        const p = join(dir, f);
        const st = statSync(p);
        if (!hash) {
          // leftovers of interrupted atomic writes
          if (f.endsWith('.tmp') && oldEnough(st.mtimeMs)) {
            rmSync(p, { force: true });
            removed++;
            bytesFreed += st.size;
          }
          continue;
        }
        if (used.has(hash) || !oldEnough(st.mtimeMs)) {
          kept++;
          continue;
        }
        rmSync(p, { force: true });
        removed++;
        bytesFreed += st.size;
      }
    }
  }
  return { removed, kept, bytesFreed };
}
