// The Hugging Face Hub's HTTP API, as much as downloading a model needs:
//   GET {endpoint}/api/models/{repo}/revision/{rev}?blobs=true   commit sha + siblings (rfilename, size, blobId, lfs.sha256)
//   GET {endpoint}/{repo}/resolve/{commit}/{file}                 the file; LFS files redirect (302) to a CDN URL,
//                                                                 the first response carries X-Repo-Commit, ETag,
//                                                                 X-Linked-Etag and X-Linked-Size; Range is honoured
// Errors keep the Hub's meaning (X-Error-Code: RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo) and say
// what to do. The token (HF_TOKEN) goes to the endpoint's host only, never to the CDN a redirect points at.
import { request as httpRequest, type IncomingMessage, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hfHome, type Env } from './cache';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

export interface HubConfig {
  endpoint: string;
  token: string | null;
  /** Idle socket timeout (no bytes for this long: the attempt fails and is retried). */
  timeoutMs?: number;
}

/** HF_ENDPOINT (mirrors), HF_TOKEN (or HUGGING_FACE_HUB_TOKEN, or the token file `huggingface-cli login` writes). */
export function hubConfigFromEnv(env: Env = process.env): HubConfig {
  const endpoint = (env.HF_ENDPOINT || DEFAULT_ENDPOINT).replace(/\/+$/, '');
  let token = env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN || null;
  if (!token) {
    const f = env.HF_TOKEN_PATH || join(hfHome(env), 'token');
    try {
      if (existsSync(f)) token = readFileSync(f, 'utf8').trim() || null;
    } catch {
      /* unreadable token file: anonymous */
    }
  }
  let u: URL;
  try {
    u = new URL(endpoint);
  } catch {
    throw new HubError('invalid', `HF_ENDPOINT "${endpoint}" is not a URL`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:')
    throw new HubError('invalid', `HF_ENDPOINT "${endpoint}" must be an http(s) URL`);
  return { endpoint, token };
}

export type HubErrorKind =
  | 'auth'
  | 'gated'
  | 'not_found'
  | 'rate_limited'
  | 'server'
  | 'network'
  | 'integrity'
  | 'disk'
  | 'cancelled'
  | 'invalid'
  | 'unsupported';

export class HubError extends Error {
  constructor(
    readonly kind: HubErrorKind,
    message: string,
    readonly status?: number,
    /** Milliseconds the server asked us to wait (Retry-After). */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
  get retryable(): boolean {
    return this.kind === 'network' || this.kind === 'server' || this.kind === 'rate_limited';
  }
}

export interface HubResponse {
  res: IncomingMessage;
  /** Headers of the first response (before redirects): X-Repo-Commit, X-Linked-Etag, X-Linked-Size live there. */
  first: IncomingHttpHeaders;
  url: string;
}

function header(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

export function parseRetryAfter(v: string | undefined): number | undefined {
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Math.min(Number(v) * 1000, 120_000);
  const t = Date.parse(v);
  return Number.isFinite(t) ? Math.max(0, Math.min(t - Date.now(), 120_000)) : undefined;
}

/** GET with manual redirects (at most 10); the Authorization header only goes to the endpoint's origin. */
export async function hubGet(
  cfg: HubConfig,
  url: string,
  opts: { headers?: Record<string, string>; signal?: AbortSignal } = {},
): Promise<HubResponse> {
  const origin = new URL(cfg.endpoint).origin;
  let current = url;
  let first: IncomingHttpHeaders | null = null;
  for (let hop = 0; hop <= 10; hop++) {
    const u = new URL(current);
    const headers: Record<string, string> = { 'User-Agent': 'lenslab (huggingface_hub-compatible)', ...opts.headers };
    if (cfg.token && u.origin === origin) headers.Authorization = `Bearer ${cfg.token}`;
    const res = await once(u, headers, cfg.timeoutMs ?? 30_000, opts.signal);
    first ??= res.headers;
    const status = res.statusCode ?? 0;
    if ([301, 302, 303, 307, 308].includes(status)) {
      const loc = header(res.headers, 'location');
      res.resume();
      if (!loc) throw new HubError('server', `${u.pathname}: redirect (${status}) without a Location`, status);
      current = new URL(loc, u).toString();
      continue;
    }
    return { res, first, url: current };
  }
  throw new HubError('server', `${url}: too many redirects`);
}

function once(
  u: URL,
  headers: Record<string, string>,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new HubError('cancelled', 'cancelled'));
    const fn = u.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = fn(u, { method: 'GET', headers });
    const onAbort = () => req.destroy(new HubError('cancelled', 'cancelled'));
    signal?.addEventListener('abort', onAbort, { once: true });
    req.setTimeout(timeoutMs, () =>
      req.destroy(new HubError('network', `no answer from ${u.host} for ${Math.round(timeoutMs / 1000)} s`)),
    );
    req.on('response', (res) => {
      res.on('close', () => signal?.removeEventListener('abort', onAbort));
      resolve(res);
    });
    req.on('error', (e) => {
      signal?.removeEventListener('abort', onAbort);
      reject(e instanceof HubError ? e : new HubError('network', `${u.host}: ${(e as Error).message}`));
    });
    req.end();
  });
}

async function readText(res: IncomingMessage, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > limit) {
      res.destroy();
      throw new HubError('server', `answer larger than ${limit} bytes`);
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The error a non-2xx answer means, in words that say what to do. */
export async function errorFor(
  cfg: HubConfig,
  r: HubResponse,
  what: { repo: string; revision?: string; file?: string },
): Promise<HubError> {
  const status = r.res.statusCode ?? 0;
  const code = header(r.first, 'x-error-code') ?? header(r.res.headers, 'x-error-code');
  let detail = header(r.res.headers, 'x-error-message') ?? '';
  if (!detail) {
    try {
      const t = await readText(r.res, 64 * 1024);
      try {
        detail = String((JSON.parse(t) as { error?: unknown }).error ?? '');
      } catch {
        detail = t.slice(0, 200);
      }
    } catch {
      /* no body */
    }
  } else r.res.resume();
  const suffix = detail ? ` (${detail.trim()})` : '';
  const { repo } = what;
  if (status === 401)
    return new HubError(
      'auth',
      cfg.token
        ? `the Hub refused the token in HF_TOKEN for ${repo} (401)${suffix}: check that it is valid and has read access`
        : `${repo} needs a login (401: it is private or gated, or does not exist)${suffix}: create a read token on the Hub and set HF_TOKEN`,
      status,
    );
  if (status === 403)
    return new HubError(
      code === 'GatedRepo' || /gated/i.test(detail) ? 'gated' : 'auth',
      `access to ${repo} is restricted (403)${suffix}: accept its conditions on its Hub page with the account whose token is in HF_TOKEN`,
      status,
    );
  if (status === 404) {
    if (code === 'RevisionNotFound')
      return new HubError('not_found', `${repo} has no revision "${what.revision}"${suffix}`, status);
    if (code === 'EntryNotFound' || what.file)
      return new HubError(
        'not_found',
        `${repo} has no file ${what.file ?? ''} at ${what.revision ?? 'this revision'}${suffix}`,
        status,
      );
    return new HubError('not_found', `no model ${repo} on ${cfg.endpoint}${suffix}: check the name (ORG/NAME)`, status);
  }
  if (status === 429)
    return new HubError(
      'rate_limited',
      `the Hub is rate limiting requests (429)${suffix}`,
      status,
      parseRetryAfter(header(r.res.headers, 'retry-after')),
    );
  if (status >= 500)
    return new HubError(
      'server',
      `the Hub answered ${status}${suffix}`,
      status,
      parseRetryAfter(header(r.res.headers, 'retry-after')),
    );
  return new HubError('server', `unexpected answer ${status} from ${new URL(r.url).host}${suffix}`, status);
}

export interface Sibling {
  file: string;
  size: number;
  /** The blob's name in the cache: the LFS sha256, else the git blob id. */
  etag: string;
  /** LFS files: the content's sha256. */
  sha256: string | null;
  /** Non-LFS files: the git blob id (sha1 of "blob <size>\0" + content). */
  gitSha1: string | null;
}

export interface ModelInfo {
  repo: string;
  commit: string;
  siblings: Sibling[];
  gated: boolean | string;
}

const HEX40 = /^[0-9a-f]{40}$/;
const HEX64 = /^[0-9a-f]{64}$/;

/** Parse the model-info answer, naming the field that is wrong. */
export function parseModelInfo(repo: string, json: unknown): ModelInfo {
  const bad = (field: string, why: string) =>
    new HubError('server', `the Hub's model info for ${repo}: ${field} ${why}`);
  if (!json || typeof json !== 'object') throw bad('body', 'is not an object');
  const j = json as { sha?: unknown; siblings?: unknown; gated?: unknown };
  if (typeof j.sha !== 'string' || !HEX40.test(j.sha)) throw bad('sha', 'is not a commit hash');
  if (!Array.isArray(j.siblings)) throw bad('siblings', 'is not a list (the request needs ?blobs=true)');
  const siblings: Sibling[] = [];
  j.siblings.forEach((s: unknown, i) => {
    const o = s as {
      rfilename?: unknown;
      size?: unknown;
      blobId?: unknown;
      lfs?: { sha256?: unknown; size?: unknown } | null;
    };
    if (!o || typeof o.rfilename !== 'string') throw bad(`siblings[${i}].rfilename`, 'is missing');
    const lfs = o.lfs && typeof o.lfs === 'object' ? o.lfs : null;
    if (lfs) {
      if (typeof lfs.sha256 !== 'string' || !HEX64.test(lfs.sha256))
        throw bad(`siblings[${i}].lfs.sha256`, 'is not a sha256');
      const size = Number(lfs.size ?? o.size);
      if (!Number.isSafeInteger(size) || size < 0) throw bad(`siblings[${i}].lfs.size`, 'is not a size');
      siblings.push({ file: o.rfilename, size, etag: lfs.sha256, sha256: lfs.sha256, gitSha1: null });
    } else {
      if (typeof o.blobId !== 'string' || !HEX40.test(o.blobId))
        throw bad(`siblings[${i}].blobId`, 'is not a git blob id');
      const size = Number(o.size);
      if (!Number.isSafeInteger(size) || size < 0) throw bad(`siblings[${i}].size`, 'is not a size');
      siblings.push({ file: o.rfilename, size, etag: o.blobId, sha256: null, gitSha1: o.blobId });
    }
  });
  return {
    repo,
    commit: j.sha,
    siblings,
    gated: typeof j.gated === 'string' || typeof j.gated === 'boolean' ? j.gated : false,
  };
}

export async function fetchModelInfo(
  cfg: HubConfig,
  repo: string,
  revision: string,
  signal?: AbortSignal,
): Promise<ModelInfo> {
  const url = `${cfg.endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}?blobs=true`;
  const r = await hubGet(cfg, url, { signal });
  if ((r.res.statusCode ?? 0) !== 200) throw await errorFor(cfg, r, { repo, revision });
  const text = await readText(r.res, 32 * 1024 * 1024);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new HubError('server', `the Hub's model info for ${repo} is not JSON`);
  }
  return parseModelInfo(repo, json);
}

export function resolveUrl(cfg: HubConfig, repo: string, commit: string, file: string): string {
  return `${cfg.endpoint}/${repo}/resolve/${encodeURIComponent(commit)}/${file.split('/').map(encodeURIComponent).join('/')}`;
}
