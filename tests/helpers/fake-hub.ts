// A local stand-in for the Hugging Face Hub on 127.0.0.1, speaking the same endpoints and headers the real one does:
//   GET /api/models/{repo}/revision/{rev}[?blobs=true]   {id, sha, siblings: [{rfilename, size, blobId, lfs?}], gated}
//   GET /{repo}/resolve/{rev}/{file}                     small files: 200 + ETag (git blob id) + X-Repo-Commit;
//                                                        LFS files: 302 to /cdn-lfs/<sha256> with X-Linked-Etag,
//                                                        X-Linked-Size, X-Repo-Commit, ETag
//   GET /cdn-lfs/<sha256>                                the bytes, Range honoured (206 + Content-Range)
// Gated repos answer 401 without a token and 403 (X-Error-Code: GatedRepo) with a wrong one; unknown repos 404
// (RepoNotFound), unknown revisions 404 (RevisionNotFound). Faults can be queued per file: an HTTP status (429 with
// Retry-After, 5xx), a transfer cut short after N bytes, or corrupted bytes. Every request is logged.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeFile {
  data: Buffer;
  /** Stored in LFS (served through the CDN redirect, listed with lfs.sha256). Default: .safetensors files. */
  lfs?: boolean;
}

export interface FakeRepo {
  files: Record<string, FakeFile | Buffer | string>;
  /** Branch/tag → commit; 'main' gets a commit made from the files when absent. */
  refs?: Record<string, string>;
  /** A token is required (Authorization: Bearer <token>). */
  token?: string;
}

export type Fault =
  | { file: string; kind: 'status'; status: number; retryAfter?: string; times?: number }
  | { file: string; kind: 'truncate'; afterBytes: number; times?: number }
  | { file: string; kind: 'corrupt'; times?: number }
  /** Hold the response after N bytes until release() is called (to stop a pull mid-file). */
  | { file: string; kind: 'stall'; afterBytes: number; times?: number };

export interface LoggedRequest {
  path: string;
  range: string | null;
  authorization: string | null;
  status: number;
}

interface Stored {
  data: Buffer;
  lfs: boolean;
  sha256: string;
  blobId: string;
}

export function gitBlobId(data: Buffer): string {
  return createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
}

export class FakeHub {
  readonly log: LoggedRequest[] = [];
  private repos = new Map<string, { refs: Record<string, string>; files: Map<string, Stored>; token?: string }>();
  private faults: Fault[] = [];
  private stalled: Array<() => void> = [];
  private server = createServer((req, res) => this.handle(req, res));
  endpoint = '';

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.endpoint = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  close(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  addRepo(id: string, repo: FakeRepo): string {
    const files = new Map<string, Stored>();
    const h = createHash('sha1');
    for (const [name, f] of Object.entries(repo.files)) {
      const ff: FakeFile = Buffer.isBuffer(f) ? { data: f } : typeof f === 'string' ? { data: Buffer.from(f) } : f;
      const lfs = ff.lfs ?? name.endsWith('.safetensors');
      files.set(name, {
        data: ff.data,
        lfs,
        sha256: createHash('sha256').update(ff.data).digest('hex'),
        blobId: gitBlobId(ff.data),
      });
      h.update(name).update(ff.data);
    }
    const commit = h.digest('hex');
    this.repos.set(id, { refs: { main: commit, ...repo.refs }, files, token: repo.token });
    return commit;
  }

  fault(f: Fault): void {
    this.faults.push({ times: 1, ...f } as Fault);
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  /** Let stalled transfers go on. */
  release(): void {
    for (const r of this.stalled.splice(0)) r();
  }

  private takeFault(file: string): Fault | null {
    const i = this.faults.findIndex((f) => f.file === file);
    if (i < 0) return null;
    const f = this.faults[i];
    if (f.times !== undefined && --f.times <= 0) this.faults.splice(i, 1);
    return f;
  }

  private send(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    headers: Record<string, string>,
    body?: Buffer | string,
  ): void {
    this.log.push({
      path: req.url ?? '',
      range: (req.headers.range as string) ?? null,
      authorization: (req.headers.authorization as string) ?? null,
      status,
    });
    res.writeHead(status, headers);
    res.end(body);
  }

  private error(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    code: string,
    message: string,
    extra: Record<string, string> = {},
  ): void {
    this.send(
      req,
      res,
      status,
      { 'Content-Type': 'application/json', 'X-Error-Code': code, 'X-Error-Message': message, ...extra },
      JSON.stringify({ error: message }),
    );
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = decodeURIComponent(url.pathname);
    const cdn = /^\/cdn-lfs\/([0-9a-f]{64})$/.exec(path);
    if (cdn) return this.serveCdn(req, res, cdn[1]);
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(path);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    const repoId = api?.[1] ?? resolve?.[1];
    if (!repoId) return this.error(req, res, 404, 'EntryNotFound', 'no such route');
    const repo = this.repos.get(repoId);
    const auth = (req.headers.authorization as string | undefined) ?? null;
    if (!repo)
      return this.error(req, res, auth ? 404 : 401, 'RepoNotFound', `Repository Not Found for url: ${req.url}`);
    if (repo.token) {
      if (!auth)
        return this.error(
          req,
          res,
          401,
          'GatedRepo',
          `Access to model ${repoId} is restricted. You must be authenticated to access it.`,
        );
      if (auth !== `Bearer ${repo.token}`)
        return this.error(
          req,
          res,
          403,
          'GatedRepo',
          `Access to model ${repoId} is restricted and you are not in the authorized list.`,
        );
    }
    const rev = api ? api[2] : resolve![2];
    const commit = /^[0-9a-f]{40}$/.test(rev) && Object.values(repo.refs).includes(rev) ? rev : repo.refs[rev];
    if (!commit) return this.error(req, res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
    if (api) {
      const siblings = [...repo.files].map(([name, f]) =>
        url.searchParams.get('blobs') === 'true'
          ? {
              rfilename: name,
              size: f.data.length,
              blobId: f.lfs
                ? gitBlobId(
                    Buffer.from(
                      `version https://git-lfs.github.com/spec/v1\noid sha256:${f.sha256}\nsize ${f.data.length}\n`,
                    ),
                  )
                : f.blobId,
              ...(f.lfs ? { lfs: { sha256: f.sha256, size: f.data.length, pointerSize: 134 } } : {}),
            }
          : { rfilename: name },
      );
      return this.send(
        req,
        res,
        200,
        { 'Content-Type': 'application/json' },
        JSON.stringify({
          _id: 'x',
          id: repoId,
          sha: commit,
          private: false,
          gated: repo.token ? 'manual' : false,
          siblings,
        }),
      );
    }
    const file = resolve![3];
    const f = repo.files.get(file);
    if (!f) return this.error(req, res, 404, 'EntryNotFound', `${file} does not exist on "${rev}"`);
    const fault = this.faults.find((x) => x.file === file && x.kind === 'status') ? this.takeFault(file) : null;
    if (fault && fault.kind === 'status')
      return this.error(
        req,
        res,
        fault.status,
        'Fault',
        `injected ${fault.status}`,
        fault.retryAfter !== undefined ? { 'Retry-After': fault.retryAfter } : {},
      );
    const common = { 'X-Repo-Commit': commit, ETag: `"${f.lfs ? f.sha256 : f.blobId}"` };
    if (f.lfs)
      return this.send(req, res, 302, {
        ...common,
        Location: `/cdn-lfs/${f.sha256}`,
        'X-Linked-Etag': `"${f.sha256}"`,
        'X-Linked-Size': String(f.data.length),
      });
    this.serveBytes(req, res, file, f.data, common);
  }

  private serveCdn(req: IncomingMessage, res: ServerResponse, sha: string): void {
    for (const repo of this.repos.values())
      for (const [name, f] of repo.files)
        if (f.sha256 === sha) return this.serveBytes(req, res, name, f.data, { ETag: `"${sha}"` });
    this.error(req, res, 404, 'EntryNotFound', 'no such object');
  }

  private serveBytes(
    req: IncomingMessage,
    res: ServerResponse,
    file: string,
    data: Buffer,
    headers: Record<string, string>,
  ): void {
    const range = /^bytes=(\d+)-$/.exec((req.headers.range as string) ?? '');
    const start = range ? Number(range[1]) : 0;
    if (start > data.length || (range && start === data.length && data.length > 0))
      return this.send(req, res, 416, { 'Content-Range': `bytes */${data.length}` });
    const fault = this.faults.find((x) => x.file === file && x.kind !== 'status') ? this.takeFault(file) : null;
    let body = data.subarray(start);
    if (fault?.kind === 'corrupt') {
      body = Buffer.from(body);
      body[body.length >> 1] ^= 0xff;
    }
    const status = range ? 206 : 200;
    const h: Record<string, string> = {
      ...headers,
      'Content-Type': 'application/octet-stream',
      'Content-Length': String(body.length),
      'Accept-Ranges': 'bytes',
    };
    if (range) h['Content-Range'] = `bytes ${start}-${data.length - 1}/${data.length}`;
    this.log.push({
      path: req.url ?? '',
      range: (req.headers.range as string) ?? null,
      authorization: (req.headers.authorization as string) ?? null,
      status,
    });
    res.writeHead(status, h);
    if (fault?.kind === 'truncate') {
      res.write(body.subarray(0, fault.afterBytes), () => setTimeout(() => res.destroy(), 20));
      return;
    }
    if (fault?.kind === 'stall') {
      res.write(body.subarray(0, fault.afterBytes));
      this.stalled.push(() => res.end(body.subarray(fault.afterBytes)));
      return;
    }
    res.end(body);
  }
}

/** The top-level files of a folder as a fake repo's files (e.g. resources/demo/model). */
export function filesOf(dir: string): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const f of readdirSync(dir)) if (statSync(join(dir, f)).isFile()) out[f] = readFileSync(join(dir, f));
  return out;
}
