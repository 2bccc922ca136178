// The standard Hugging Face Hub cache, read and written exactly as huggingface_hub lays it out, so a model that
// Python tools already downloaded is found without copying and what Lenslab downloads is found by them:
//   <cache>/models--ORG--NAME/blobs/<etag>                 file contents, named by the LFS sha256 or the git blob id
//   <cache>/models--ORG--NAME/blobs/<etag>.incomplete      a download in progress (resumed with a Range request)
//   <cache>/models--ORG--NAME/snapshots/<commit>/<file>    relative symlinks into blobs/ (a copy where links fail)
//   <cache>/models--ORG--NAME/refs/<revision>              the commit a branch or tag pointed to (no newline)
// Where: HF_HUB_CACHE, else HF_HOME/hub, else XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub.
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';

export type Env = Record<string, string | undefined>;

export function hfHome(env: Env = process.env): string {
  if (env.HF_HOME) return env.HF_HOME;
  const xdg = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(xdg, 'huggingface');
}

export function hubCacheDir(env: Env = process.env): string {
  return env.HF_HUB_CACHE || env.HUGGINGFACE_HUB_CACHE || join(hfHome(env), 'hub');
}

/** ORG/NAME as the Hub spells it: letters, digits, '-', '_', '.', one slash (a bare NAME is allowed too). */
const REPO_RE = /^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,95}\/)?[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;
/** A branch, tag, commit or refs/pr/N; no '..', no leading slash. */
const REV_RE = /^[A-Za-z0-9][A-Za-z0-9._\-/]{0,199}$/;

export function checkRepoId(repo: string): void {
  if (!REPO_RE.test(repo) || repo.includes('..') || repo.endsWith('.git'))
    throw new Error(`"${repo}" is not a Hub model id (expected ORG/NAME, e.g. HuggingFaceTB/SmolVLM-256M-Instruct)`);
}

export function checkRevision(rev: string): void {
  if (!REV_RE.test(rev) || rev.split('/').some((s) => s === '' || s === '.' || s === '..'))
    throw new Error(`"${rev}" is not a valid revision (a branch, tag or commit)`);
}

/** Parse ORG/NAME[@REVISION]. */
export function parseRepoRef(ref: string): { repo: string; revision: string } {
  const at = ref.indexOf('@');
  const repo = at < 0 ? ref : ref.slice(0, at);
  const revision = at < 0 ? 'main' : ref.slice(at + 1);
  checkRepoId(repo);
  checkRevision(revision);
  return { repo, revision };
}

export function isCommitHash(rev: string): boolean {
  return /^[0-9a-f]{40}$/.test(rev);
}

/** A file path inside a repo: relative, '/'-separated, no '..' or empty segments (it becomes a path on disk). */
export function checkRepoFile(file: string): void {
  if (
    !file ||
    file.length > 500 ||
    file.startsWith('/') ||
    file.includes('\\') ||
    file.includes('\0') ||
    file.split('/').some((s) => s === '' || s === '.' || s === '..')
  )
    throw new Error(`refusing the repository file name "${file}" (it would leave the snapshot folder)`);
}

export class RepoCache {
  readonly root: string;
  constructor(
    readonly cacheDir: string,
    readonly repo: string,
  ) {
    checkRepoId(repo);
    this.root = join(cacheDir, `models--${repo.replace('/', '--')}`);
  }

  get blobsDir(): string {
    return join(this.root, 'blobs');
  }
  blobPath(etag: string): string {
    if (!/^[A-Za-z0-9]{8,128}$/.test(etag)) throw new Error(`unexpected blob id "${etag}"`);
    return join(this.blobsDir, etag);
  }
  incompletePath(etag: string): string {
    return `${this.blobPath(etag)}.incomplete`;
  }
  snapshotDir(commit: string): string {
    if (!isCommitHash(commit)) throw new Error(`unexpected commit "${commit}"`);
    return join(this.root, 'snapshots', commit);
  }
  snapshotFile(commit: string, file: string): string {
    checkRepoFile(file);
    return join(this.snapshotDir(commit), ...file.split('/'));
  }

  /** The commit refs/<revision> points to, a commit hash as itself, or null. */
  resolveRef(revision: string): string | null {
    if (isCommitHash(revision) && existsSync(join(this.root, 'snapshots', revision))) return revision;
    checkRevision(revision);
    const f = join(this.root, 'refs', ...revision.split('/'));
    if (!existsSync(f)) return null;
    const c = readFileSync(f, 'utf8').trim();
    return isCommitHash(c) ? c : null;
  }

  writeRef(revision: string, commit: string): void {
    if (revision === commit) return;
    checkRevision(revision);
    const f = join(this.root, 'refs', ...revision.split('/'));
    mkdirSync(dirname(f), { recursive: true });
    const tmp = `${f}.tmp-${process.pid}`;
    writeFileSync(tmp, commit);
    renameSync(tmp, f);
  }

  /** Link snapshots/<commit>/<file> to blobs/<etag> (relative symlink as huggingface_hub makes; a copy where symlinks are refused). */
  linkSnapshot(commit: string, file: string, etag: string): void {
    const dst = this.snapshotFile(commit, file);
    const blob = this.blobPath(etag);
    mkdirSync(dirname(dst), { recursive: true });
    try {
      lstatSync(dst);
      rmSync(dst, { force: true });
    } catch {
      /* not there */
    }
    try {
      symlinkSync(relative(dirname(dst), blob).split(sep).join('/'), dst);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EPERM' && code !== 'EACCES' && code !== 'ENOTSUP') throw e;
      copyFileSync(blob, dst);
    }
  }

  /** Whether a snapshot file exists and reads through (a dangling link is not there). */
  hasSnapshotFile(commit: string, file: string): boolean {
    try {
      return statSync(this.snapshotFile(commit, file)).isFile();
    } catch {
      return false;
    }
  }
}

export interface CachedSnapshot {
  repo: string;
  commit: string;
  /** refs pointing to it (main, a tag, ...). */
  refs: string[];
  dir: string;
  files: string[];
  bytes: number;
}

function walkFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...walkFiles(join(dir, e.name), rel));
    else out.push(rel);
  }
  return out;
}

/** Every model snapshot in the cache that holds a config.json (what Python tools and Lenslab downloaded). */
export function listCachedSnapshots(cacheDir: string): CachedSnapshot[] {
  if (!existsSync(cacheDir)) return [];
  const out: CachedSnapshot[] = [];
  for (const e of readdirSync(cacheDir, { withFileTypes: true })) {
    if (!e.isDirectory() || !e.name.startsWith('models--')) continue;
    const repo = e.name.slice('models--'.length).replace('--', '/');
    let rc: RepoCache;
    try {
      rc = new RepoCache(cacheDir, repo);
    } catch {
      continue;
    }
    const snaps = join(rc.root, 'snapshots');
    if (!existsSync(snaps)) continue;
    const refs = new Map<string, string[]>();
    const refsDir = join(rc.root, 'refs');
    if (existsSync(refsDir))
      for (const r of walkFiles(refsDir)) {
        const c = readFileSync(join(refsDir, ...r.split('/')), 'utf8').trim();
        refs.set(c, [...(refs.get(c) ?? []), r]);
      }
    for (const commit of readdirSync(snaps)) {
      const dir = join(snaps, commit);
      if (!isCommitHash(commit) || !existsSync(join(dir, 'config.json'))) continue;
      const files = walkFiles(dir).sort();
      let bytes = 0;
      for (const f of files) {
        try {
          bytes += statSync(join(dir, ...f.split('/'))).size;
        } catch {
          /* dangling link */
        }
      }
      out.push({ repo, commit, refs: refs.get(commit) ?? [], dir, files, bytes });
    }
  }
  return out.sort((a, b) => a.repo.localeCompare(b.repo));
}
