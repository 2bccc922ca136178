// Browser uploads for serve mode. A browser's drop yields File objects, not paths, so the renderer first
// streams each file into a staging folder under the data dir, then calls `datasets.import` (or another
// method taking a path) with the staging path, then deletes the batch.
//   PUT    /upload/<batch>/<relative/path>   raw bytes → {path, root}   (one file)
//   DELETE /upload/<batch>                                → {deleted: true}
// <batch> is a client-chosen id of 8..64 [a-z0-9-]. Relative paths are checked segment by segment (no '..',
// no hidden or empty segments, no backslashes or control characters), so nothing is written outside
// <dataDir>/uploads/<batch>. Each file is limited in size; a batch in number of files and total bytes.
import { createWriteStream, mkdirSync, renameSync, rmSync, statSync, readdirSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import type { IncomingMessage } from 'node:http';
import { ApiError } from '../../contract/errors';

export const UPLOAD_PREFIX = '/upload/';
export const MAX_UPLOAD_FILE = 2 * 1024 * 1024 * 1024;
export const MAX_BATCH_BYTES = 16 * 1024 * 1024 * 1024;
export const MAX_BATCH_FILES = 200_000;
const BATCH = /^[a-z0-9-]{8,64}$/;

export function uploadsRoot(dataDir: string): string {
  return join(dataDir, 'uploads');
}

/** Split and check a relative upload path; throws invalid_request naming what is wrong. */
export function safeRelativePath(rel: string): string[] {
  if (rel.length === 0 || rel.length > 4096)
    throw new ApiError('invalid_request', 'upload path must be 1..4096 characters', 'path');
  if (/[\u0000-\u001f\u007f\\:*?"<>|]/.test(rel))
    throw new ApiError(
      'invalid_request',
      `upload path ${JSON.stringify(rel)} has a character that is not allowed`,
      'path',
    );
  const segments = rel.split('/');
  if (segments.length > 32)
    throw new ApiError('invalid_request', 'upload path is nested more than 32 folders deep', 'path');
  for (const s of segments) {
    if (
      s.length === 0 ||
      s === '.' ||
      s === '..' ||
      s.startsWith('.') ||
      s.length > 255 ||
      s.endsWith(' ') ||
      s.endsWith('.')
    ) {
      throw new ApiError(
        'invalid_request',
        `upload path ${JSON.stringify(rel)}: segment ${JSON.stringify(s)} is not allowed`,
        'path',
      );
    }
  }
  return segments;
}

interface BatchState {
  files: number;
  bytes: number;
}

/** Upload handling for one server (per-batch counters live here). */
export class Uploads {
  private batches = new Map<string, BatchState>();
  constructor(private readonly dataDir: string) {}

  /** Remove what earlier server runs left behind (nothing can be in flight at start). */
  clearAll(): void {
    rmSync(uploadsRoot(this.dataDir), { recursive: true, force: true });
  }

  private batchDir(batch: string): string {
    if (!BATCH.test(batch))
      throw new ApiError('invalid_request', 'upload batch id must be 8..64 characters of a-z, 0-9 and -', 'batch');
    return join(uploadsRoot(this.dataDir), batch);
  }

  /** Parse `/upload/<batch>[/<path>]` (already known to start with the prefix). */
  parse(pathname: string): { batch: string; rel: string | null } {
    const rest = pathname.slice(UPLOAD_PREFIX.length);
    const slash = rest.indexOf('/');
    const batch = slash < 0 ? rest : rest.slice(0, slash);
    let rel: string | null = null;
    if (slash >= 0) {
      try {
        rel = decodeURIComponent(rest.slice(slash + 1));
      } catch {
        throw new ApiError('invalid_request', 'upload path is not valid URL encoding', 'path');
      }
    }
    return { batch, rel };
  }

  /** Stream one request body into <batch>/<rel>; resolves with the file's absolute path and the batch folder. */
  async put(batch: string, rel: string, req: IncomingMessage): Promise<{ path: string; root: string }> {
    const root = this.batchDir(batch);
    const segments = safeRelativePath(rel);
    const target = resolve(root, ...segments);
    if (!target.startsWith(resolve(root) + sep))
      throw new ApiError('invalid_request', 'upload path escapes its folder', 'path');
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > MAX_UPLOAD_FILE)
      throw new ApiError('invalid_request', `${rel}: larger than ${MAX_UPLOAD_FILE} bytes`, 'path');
    const state = this.batches.get(batch) ?? { files: 0, bytes: 0 };
    if (state.files >= MAX_BATCH_FILES)
      throw new ApiError('invalid_request', `an upload holds at most ${MAX_BATCH_FILES} files`, 'batch');
    state.files++;
    this.batches.set(batch, state);
    try {
      mkdirSync(dirname(target), { recursive: true });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOTDIR' || code === 'EEXIST')
        throw new ApiError(
          'invalid_request',
          `${rel}: a file of the same name as one of its folders was uploaded`,
          'path',
        );
      throw e;
    }
    // a file and a folder of the same name (a/b and a/b/c) cannot both exist
    try {
      if (statSync(target).isDirectory())
        throw new ApiError('invalid_request', `${rel}: a folder of that name was uploaded`, 'path');
    } catch (e) {
      if (e instanceof ApiError) throw e;
    }
    const temp = `${target}.${process.pid}.${Date.now()}.uploading`;
    await new Promise<void>((done, fail) => {
      const out = createWriteStream(temp, { flags: 'wx' });
      let size = 0;
      let failed = false;
      const abort = (err: ApiError) => {
        if (failed) return;
        failed = true;
        req.unpipe(out);
        out.destroy();
        rmSync(temp, { force: true });
        fail(err);
      };
      req.on('data', (c: Buffer) => {
        size += c.length;
        state.bytes += c.length;
        if (size > MAX_UPLOAD_FILE)
          abort(new ApiError('invalid_request', `${rel}: larger than ${MAX_UPLOAD_FILE} bytes`, 'path'));
        else if (state.bytes > MAX_BATCH_BYTES)
          abort(new ApiError('invalid_request', `the upload is larger than ${MAX_BATCH_BYTES} bytes in all`, 'batch'));
      });
      req.on('error', () => abort(new ApiError('invalid_request', `${rel}: the upload was interrupted`, 'path')));
      req.on('aborted', () => abort(new ApiError('invalid_request', `${rel}: the upload was interrupted`, 'path')));
      out.on('error', (e) => abort(new ApiError('internal', `${rel}: could not be written: ${e.message}`, 'path')));
      out.on('finish', () => {
        if (failed) return;
        try {
          renameSync(temp, target);
          done();
        } catch (e) {
          rmSync(temp, { force: true });
          fail(new ApiError('internal', `${rel}: could not be stored: ${(e as Error).message}`, 'path'));
        }
      });
      req.pipe(out);
    });
    return { path: target, root };
  }

  /** Delete a batch folder (after its import). */
  remove(batch: string): void {
    const root = this.batchDir(batch);
    this.batches.delete(batch);
    rmSync(root, { recursive: true, force: true });
  }

  /** Files in a batch (for tests). */
  list(batch: string): string[] {
    const root = this.batchDir(batch);
    const out: string[] = [];
    const walk = (dir: string, prefix: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(dir, e.name), `${prefix}${e.name}/`);
        else out.push(`${prefix}${e.name}`);
      }
    };
    walk(root, '');
    return out.sort();
  }
}
