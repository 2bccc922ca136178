// Pull a model from the Hub into the standard cache (cache.ts): model info → the files a model folder needs
// (files.ts) → each file downloaded into blobs/<etag>.incomplete with a Range request that resumes where an earlier
// attempt (or an earlier pull that was stopped) left off, verified (LFS: sha256; other files: the git blob id)
// and renamed into blobs/, then linked into snapshots/<commit>/. Transient failures (connection lost, a transfer
// cut short, 429 and 5xx) are retried with backoff, resuming from the bytes already on disk; a file that
// verifies wrong is deleted and the pull fails naming it. Nothing half-written ever appears in snapshots/.
import { createHash } from 'node:crypto';
import {
  createReadStream,
  existsSync,
  readFileSync,
  mkdirSync,
  renameSync,
  rmSync,
  statSync,
  statfsSync,
  truncateSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import {
  errorFor,
  fetchModelInfo,
  HubError,
  resolveUrl,
  hubGet,
  type HubConfig,
  type ModelInfo,
  type Sibling,
} from './client';
import { isCommitHash, RepoCache } from './cache';
import { selectFiles } from './files';

export interface Writer {
  write(chunk: Buffer): Promise<void>;
  close(): Promise<void>;
}

export interface PullProgress {
  phase: 'resolving' | 'downloading' | 'verifying' | 'done';
  /** The file being worked on. */
  file: string | null;
  bytes: number;
  totalBytes: number;
  filesDone: number;
  filesTotal: number;
  /** Over the last few seconds; null until measured. */
  bytesPerSecond: number | null;
  etaSeconds: number | null;
  /** Attempts that failed and were retried so far (connection lost, 5xx, 429). */
  retries: number;
  message: string | null;
}

export interface PullOptions {
  repo: string;
  revision: string;
  cacheDir: string;
  hub: HubConfig;
  signal?: AbortSignal;
  onProgress?: (p: PullProgress) => void;
  /** Called with config.json's JSON before any weights are downloaded; throw to refuse the model (unsupported family). */
  checkConfig?: (config: unknown) => void;
  /** Failed attempts in a row (no byte gained) before a file gives up. */
  maxAttempts?: number;
  /** First backoff; doubles each time, at most 30 s (429's Retry-After wins when longer). */
  backoffMs?: number;
  /** Free bytes on the cache's disk (statfs); tests pass their own. */
  freeBytes?: (dir: string) => number;
  /** How blobs are written (tests simulate a full disk). */
  openWriter?: (path: string) => Promise<Writer>;
  /** Use the cached snapshot without asking the Hub (HF_HUB_OFFLINE=1). */
  offline?: boolean;
}

export interface PullResult {
  repo: string;
  revision: string;
  commit: string;
  /** snapshots/<commit>: the model folder. */
  dir: string;
  files: string[];
  skipped: Array<{ file: string; reason: string }>;
  /** Bytes fetched over the network in this pull. */
  downloadedBytes: number;
  /** Bytes that were already in the cache (whole blobs and resumed partial ones). */
  reusedBytes: number;
  offline: boolean;
}

/** Keep this much free beyond what the download needs. */
export const DISK_MARGIN = 64 * 1024 * 1024;

export function defaultFreeBytes(dir: string): number {
  const s = statfsSync(dir);
  return Number(s.bavail) * Number(s.bsize);
}

async function defaultWriter(path: string): Promise<Writer> {
  const fh = await open(path, 'a');
  return {
    async write(chunk) {
      let off = 0;
      while (off < chunk.length) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
    },
    close: () => fh.close(),
  };
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** sha256 of a file, or the git blob id (sha1 of "blob <size>\0" + content). */
export function hashFile(path: string, kind: 'sha256' | 'git'): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash(kind === 'sha256' ? 'sha256' : 'sha1');
    if (kind === 'git') h.update(`blob ${statSync(path).size}\0`);
    createReadStream(path)
      .on('data', (c) => h.update(c))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new HubError('cancelled', 'cancelled'));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new HubError('cancelled', 'cancelled'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function diskError(e: unknown, file: string, dir: string): HubError | null {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT')
    return new HubError(
      'disk',
      `the disk holding ${dir} is full while writing ${file}: free some space and pull again (the part already downloaded is kept and resumed)`,
    );
  return null;
}

class Meter {
  private samples: Array<[number, number]> = [];
  add(total: number): void {
    const now = Date.now();
    this.samples.push([now, total]);
    while (this.samples.length > 2 && now - this.samples[0][0] > 5000) this.samples.shift();
  }
  rate(): number | null {
    if (this.samples.length < 2) return null;
    const [t0, b0] = this.samples[0];
    const [t1, b1] = this.samples[this.samples.length - 1];
    return t1 - t0 >= 200 ? ((b1 - b0) * 1000) / (t1 - t0) : null;
  }
}

export async function pullModel(o: PullOptions): Promise<PullResult> {
  const stopTimers: Array<() => void> = [];
  try {
    return await pullInner(o, stopTimers);
  } finally {
    for (const f of stopTimers) f();
  }
}

async function pullInner(o: PullOptions, stopTimers: Array<() => void>): Promise<PullResult> {
  const rc = new RepoCache(o.cacheDir, o.repo);
  const maxAttempts = o.maxAttempts ?? 5;
  const backoff = o.backoffMs ?? 1000;
  const freeBytes = o.freeBytes ?? defaultFreeBytes;
  const openWriter = o.openWriter ?? defaultWriter;
  const progress: PullProgress = {
    phase: 'resolving',
    file: null,
    bytes: 0,
    totalBytes: 0,
    filesDone: 0,
    filesTotal: 0,
    bytesPerSecond: null,
    etaSeconds: null,
    retries: 0,
    message: null,
  };
  const meter = new Meter();
  let lastEmit = 0;
  let trailing: NodeJS.Timeout | null = null;
  stopTimers.push(() => {
    if (trailing) clearTimeout(trailing);
    trailing = null;
  });
  const emit = (force = false) => {
    const now = Date.now();
    if (!force && now - lastEmit < 100) {
      // a throttled update still goes out soon, so a transfer that stalls shows where it stopped
      trailing ??= setTimeout(
        () => {
          trailing = null;
          emit(true);
        },
        100 - (now - lastEmit),
      );
      return;
    }
    if (trailing) clearTimeout(trailing);
    trailing = null;
    lastEmit = now;
    meter.add(progress.bytes);
    progress.bytesPerSecond = meter.rate();
    progress.etaSeconds =
      progress.bytesPerSecond && progress.bytesPerSecond > 0
        ? Math.round((progress.totalBytes - progress.bytes) / progress.bytesPerSecond)
        : null;
    o.onProgress?.({ ...progress });
  };
  emit(true);

  const cachedResult = (commit: string, offline: boolean): PullResult | null => {
    const dir = rc.snapshotDir(commit);
    if (!existsSync(dir) || !rc.hasSnapshotFile(commit, 'config.json')) return null;
    return {
      repo: o.repo,
      revision: o.revision,
      commit,
      dir,
      files: [],
      skipped: [],
      downloadedBytes: 0,
      reusedBytes: 0,
      offline,
    };
  };

  let info: ModelInfo;
  if (o.offline) {
    const c = rc.resolveRef(o.revision);
    const r = c ? cachedResult(c, true) : null;
    if (!r)
      throw new HubError(
        'not_found',
        `${o.repo}@${o.revision} is not in the Hub cache (${o.cacheDir}) and HF_HUB_OFFLINE is set`,
      );
    progress.phase = 'done';
    emit(true);
    return r;
  }
  try {
    info = await withRetries(() => fetchModelInfo(o.hub, o.repo, o.revision, o.signal), {
      maxAttempts,
      backoff,
      signal: o.signal,
      onRetry: (m) => retried(m),
    });
  } catch (e) {
    // no network: a snapshot already in the cache for this revision is good enough
    const c = e instanceof HubError && e.kind === 'network' ? rc.resolveRef(o.revision) : null;
    const r = c ? cachedResult(c, true) : null;
    if (r) {
      progress.phase = 'done';
      emit(true);
      return r;
    }
    throw e;
  }
  function retried(message: string) {
    progress.retries++;
    progress.message = message;
    emit(true);
  }

  const { files, skipped } = (() => {
    try {
      return selectFiles(
        info.siblings.map((s) => s.file),
        o.repo,
      );
    } catch (e) {
      throw new HubError('unsupported', (e as Error).message);
    }
  })();
  const byName = new Map(info.siblings.map((s) => [s.file, s]));
  // config first (checked before anything big), then small files, then the weights
  const todo: Sibling[] = files
    .map((f) => byName.get(f)!)
    .sort((a, b) => (a.file === 'config.json' ? -1 : b.file === 'config.json' ? 1 : a.size - b.size));
  progress.totalBytes = todo.reduce((a, s) => a + s.size, 0);
  progress.filesTotal = todo.length;
  mkdirSync(rc.blobsDir, { recursive: true });

  // what is there already: whole blobs and partial downloads
  let needed = 0;
  for (const s of todo) {
    const have = sizeOf(rc.blobPath(s.etag)) === s.size ? s.size : Math.min(sizeOf(rc.incompletePath(s.etag)), s.size);
    needed += s.size - have;
  }
  const free = freeBytes(rc.blobsDir);
  if (needed + DISK_MARGIN > free)
    throw new HubError(
      'disk',
      `not enough disk space for ${o.repo}: the download needs ${fmt(needed)} more and ${rc.blobsDir} has ${fmt(free)} free (keep ${fmt(DISK_MARGIN)} spare); free some space or set HF_HUB_CACHE to another disk`,
    );

  let downloaded = 0;
  let reused = 0;
  progress.phase = 'downloading';
  for (const s of todo) {
    progress.file = s.file;
    const blob = rc.blobPath(s.etag);
    if (sizeOf(blob) === s.size && existsSync(blob)) {
      reused += s.size;
      progress.bytes += s.size;
    } else {
      const base = progress.bytes;
      const partial = Math.min(sizeOf(rc.incompletePath(s.etag)), s.size);
      reused += partial;
      const got = await downloadBlob(o, rc, info.commit, s, {
        maxAttempts,
        backoff,
        openWriter,
        onBytes: (n) => {
          progress.bytes = base + n;
          emit();
        },
        onRetry: retried,
        onVerify: () => {
          progress.phase = 'verifying';
          emit(true);
        },
      });
      downloaded += got;
      progress.bytes = base + s.size;
      progress.phase = 'downloading';
    }
    rc.linkSnapshot(info.commit, s.file, s.etag);
    progress.filesDone++;
    emit(true);
    if (s.file === 'config.json' && o.checkConfig) {
      let json: unknown;
      try {
        json = JSON.parse(readFileSync(blob, 'utf8'));
      } catch (e) {
        throw new HubError('unsupported', `${o.repo}: config.json is not valid JSON (${(e as Error).message})`);
      }
      try {
        o.checkConfig(json);
      } catch (e) {
        throw new HubError('unsupported', (e as Error).message);
      }
    }
  }
  if (!isCommitHash(o.revision) || o.revision !== info.commit) rc.writeRef(o.revision, info.commit);
  progress.phase = 'done';
  progress.file = null;
  progress.message = null;
  emit(true);
  return {
    repo: o.repo,
    revision: o.revision,
    commit: info.commit,
    dir: rc.snapshotDir(info.commit),
    files,
    skipped,
    downloadedBytes: downloaded,
    reusedBytes: reused,
    offline: false,
  };
}

async function withRetries<T>(
  fn: () => Promise<T>,
  o: { maxAttempts: number; backoff: number; signal?: AbortSignal; onRetry: (m: string) => void },
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof HubError) || !e.retryable || attempt >= o.maxAttempts) throw e;
      const wait = Math.max(Math.min(o.backoff * 2 ** (attempt - 1), 30_000), e.retryAfterMs ?? 0);
      o.onRetry(`${e.message}; retrying in ${(wait / 1000).toFixed(1)} s`);
      await sleep(wait, o.signal);
    }
  }
}

interface BlobOptions {
  maxAttempts: number;
  backoff: number;
  openWriter: (path: string) => Promise<Writer>;
  onBytes: (fileBytes: number) => void;
  onRetry: (message: string) => void;
  onVerify: () => void;
}

/** Download one blob with resume and verification; returns the bytes fetched over the network. */
async function downloadBlob(
  o: PullOptions,
  rc: RepoCache,
  commit: string,
  s: Sibling,
  b: BlobOptions,
): Promise<number> {
  const part = rc.incompletePath(s.etag);
  if (sizeOf(part) > s.size) truncateSync(part, 0);
  let fetched = 0;
  let failures = 0;
  for (;;) {
    const before = sizeOf(part);
    try {
      fetched += await attempt(o, rc, commit, s, part, b);
      break;
    } catch (e) {
      const disk = diskError(e, s.file, rc.blobsDir);
      if (disk) throw disk;
      if (!(e instanceof HubError) || !e.retryable) throw e;
      const gained = sizeOf(part) - before;
      fetched += Math.max(0, gained);
      failures = gained > 0 ? 1 : failures + 1;
      if (failures >= b.maxAttempts)
        throw new HubError(
          e.kind,
          `${s.file}: ${e.message} (gave up after ${failures} attempts; pull again to resume from ${fmt(sizeOf(part))})`,
          e.status,
        );
      const wait = Math.max(Math.min(b.backoff * 2 ** (failures - 1), 30_000), e.retryAfterMs ?? 0);
      b.onRetry(`${s.file}: ${e.message}; resuming from ${fmt(sizeOf(part))} in ${(wait / 1000).toFixed(1)} s`);
      await sleep(wait, o.signal);
    }
  }
  b.onVerify();
  const got = sizeOf(part);
  if (got !== s.size) {
    rmSync(part, { force: true });
    throw new HubError(
      'integrity',
      `${o.repo}/${s.file}: downloaded ${got} bytes, the Hub lists ${s.size}; the file was deleted, pull again`,
    );
  }
  const actual = await hashFile(part, s.sha256 ? 'sha256' : 'git');
  const expected = s.sha256 ?? s.gitSha1;
  if (actual !== expected) {
    rmSync(part, { force: true });
    throw new HubError(
      'integrity',
      `${o.repo}/${s.file}: ${s.sha256 ? 'sha256' : 'git blob id'} is ${actual}, the Hub lists ${expected}: the download is corrupt and was deleted; pull again`,
    );
  }
  renameSync(part, rc.blobPath(s.etag));
  return fetched;
}

async function attempt(
  o: PullOptions,
  rc: RepoCache,
  commit: string,
  s: Sibling,
  part: string,
  b: BlobOptions,
): Promise<number> {
  let offset = sizeOf(part);
  if (offset === s.size) return 0;
  const url = resolveUrl(o.hub, o.repo, commit, s.file);
  const r = await hubGet(o.hub, url, { headers: offset > 0 ? { Range: `bytes=${offset}-` } : {}, signal: o.signal });
  const status = r.res.statusCode ?? 0;
  if (status === 416) {
    r.res.resume();
    truncateSync(part, 0);
    throw new HubError('network', 'the server refused to resume (416); starting the file again');
  }
  if (status !== 200 && status !== 206)
    throw await errorFor(o.hub, r, { repo: o.repo, revision: commit, file: s.file });
  const repoCommit = r.first['x-repo-commit'];
  if (typeof repoCommit === 'string' && repoCommit && repoCommit !== commit) {
    r.res.resume();
    throw new HubError('integrity', `${s.file}: the Hub served commit ${repoCommit}, expected ${commit}`);
  }
  const linked = Number(r.first['x-linked-size'] ?? NaN);
  if (Number.isFinite(linked) && linked !== s.size) {
    r.res.resume();
    throw new HubError('integrity', `${s.file}: X-Linked-Size says ${linked} bytes, the model info ${s.size}`);
  }
  if (status === 206) {
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(r.res.headers['content-range'] ?? ''));
    if (!m || Number(m[1]) !== offset) {
      r.res.resume();
      truncateSync(part, 0);
      throw new HubError(
        'network',
        `the server resumed at the wrong place (${r.res.headers['content-range'] ?? 'no Content-Range'}); starting the file again`,
      );
    }
  } else if (offset > 0) {
    // a server that ignores Range sends the whole file: start over
    truncateSync(part, 0);
    offset = 0;
  }
  const length = Number(r.res.headers['content-length'] ?? NaN);
  const expectedEnd = Number.isFinite(length) ? offset + length : s.size;
  const w = await b.openWriter(part);
  let n = offset;
  let got = 0;
  try {
    for await (const chunk of r.res as AsyncIterable<Buffer>) {
      if (n + chunk.length > s.size)
        throw new HubError('integrity', `${s.file}: the server sent more than the ${s.size} bytes the Hub lists`);
      await w.write(chunk);
      n += chunk.length;
      got += chunk.length;
      b.onBytes(n);
    }
  } catch (e) {
    if (e instanceof HubError) throw e;
    if (diskError(e, s.file, rc.blobsDir)) throw e;
    if (o.signal?.aborted) throw new HubError('cancelled', 'cancelled');
    throw new HubError(
      'network',
      `the transfer of ${s.file} broke off at ${fmt(n)} of ${fmt(s.size)} (${(e as Error).message})`,
    );
  } finally {
    await w.close();
  }
  if (o.signal?.aborted) throw new HubError('cancelled', 'cancelled');
  if (n < expectedEnd || n < s.size)
    throw new HubError('network', `the transfer of ${s.file} was cut short at ${fmt(n)} of ${fmt(s.size)}`);
  return got;
}

export function fmt(n: number): string {
  if (n < 1024) return `${n} B`;
  const u = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${u[i]}`;
}
