// Hub downloads behind the contract (contract/hub.ts): pulls run in this process (network and disk I/O, hashing
// streamed), one per repository at a time, reported as hub.progress events at most ~10 times a second; a finished
// pull registers its snapshot folder as a model in place (nothing copied; the cache stays usable by Python tools).
import { randomUUID } from 'node:crypto';
import { totalmem } from 'node:os';
import { resolve } from 'node:path';
import { ApiError } from '../contract/errors';
import type { Pull } from '../contract/hub';
import { handlers, type ServiceContext } from './context';
import { nowIso } from '../storage/database';
import { hubCacheDir, listCachedSnapshots, parseRepoRef, checkRevision } from '../hub/cache';
import { hubConfigFromEnv, HubError } from '../hub/client';
import { pullModel } from '../hub/pull';
import { CATALOG, estimateCatalogModel, unsupportedReason } from '../hub/catalog';
import { parseHfConfig } from '../models/config';
import { runnableKind } from '../models/registry';
import { availableMemory } from '../training/memory';
import { modelsHandlers } from './models';

interface Running {
  pull: Pull;
  abort: AbortController;
  done: Promise<void>;
}

/** A backend's pulls by id (running and finished, for hub.pulls); the backend stops them when it closes. */
export class HubRuntime {
  readonly pulls = new Map<string, Running>();

  /** Stop every running pull and wait for each to settle (partial files stay for the next pull). */
  async stop(): Promise<void> {
    const all = [...this.pulls.values()].filter((r) => r.pull.status === 'running');
    for (const r of all) r.abort.abort();
    await Promise.all(all.map((r) => r.done));
  }

  /** Stop running pulls at once, without waiting. */
  abort(): void {
    for (const r of this.pulls.values()) if (r.pull.status === 'running') r.abort.abort();
  }
}

function pulls(ctx: ServiceContext): Map<string, Running> {
  return ctx.hub.pulls;
}

/** Test hook: tests shorten the retry backoff. */
export const hubServiceOptions: { backoffMs?: number } = {};

function codeOf(e: unknown): string {
  if (e instanceof HubError)
    return (
      {
        auth: 'unauthorized',
        gated: 'unauthorized',
        not_found: 'not_found',
        cancelled: 'cancelled',
        invalid: 'invalid_request',
        unsupported: 'invalid_request',
        disk: 'unavailable',
        rate_limited: 'unavailable',
        server: 'unavailable',
        network: 'unavailable',
        integrity: 'internal',
      } as const
    )[e.kind];
  if (e instanceof ApiError) return e.code;
  return 'internal';
}

/** Refuse a config Lenslab cannot run, before any weights are fetched. */
function checkConfig(repo: string) {
  return (json: unknown) => {
    const mt = json && typeof json === 'object' ? String((json as { model_type?: unknown }).model_type ?? '') : '';
    const why = unsupportedReason(mt);
    if (why) throw new Error(`${repo} cannot be used yet: ${why}`);
    try {
      runnableKind(parseHfConfig(json, `${repo}/config.json`));
    } catch (e) {
      throw new Error(`${repo} cannot be used: ${(e as Error).message}`);
    }
  };
}

function registeredModelId(ctx: ServiceContext, dir: string): number | null {
  const abs = resolve(dir);
  const m = modelsHandlers['models.list']({}, ctx) as { models: Array<{ id: number; path: string }> };
  return m.models.find((x) => resolve(x.path) === abs)?.id ?? null;
}

function register(ctx: ServiceContext, dir: string, name: string, commit: string): number {
  const existing = registeredModelId(ctx, dir);
  if (existing) return existing;
  const names = new Set(
    (modelsHandlers['models.list']({}, ctx) as { models: Array<{ name: string }> }).models.map((m) => m.name),
  );
  const unique = names.has(name) ? `${name}@${commit.slice(0, 7)}` : name;
  const r = modelsHandlers['models.import']({ path: dir, name: unique }, ctx) as { model: { id: number } };
  return r.model.id;
}

export const hubHandlers = handlers({
  'hub.catalog': (_p, ctx) => {
    const cacheDir = hubCacheDir();
    const cached = new Set(listCachedSnapshots(cacheDir).map((s) => s.repo));
    const availableBytes = availableMemory();
    const totalBytes = totalmem();
    let endpoint = 'https://huggingface.co';
    let tokenSet = false;
    try {
      const cfg = hubConfigFromEnv();
      endpoint = cfg.endpoint;
      tokenSet = !!cfg.token;
    } catch {
      /* a bad HF_ENDPOINT is reported by hub.pull */
    }
    void ctx;
    return {
      endpoint,
      cacheDir,
      tokenSet,
      availableBytes,
      totalBytes,
      entries: CATALOG.map((m) => ({
        id: m.id,
        title: m.title,
        description: m.description,
        sources: m.sources.map((s) => ({ ...s, cached: cached.has(s.repo) })),
        compose: m.compose,
        supported: m.supported,
        note: m.note,
        modelType: m.modelType,
        params: m.params,
        downloadBytes: m.sources.reduce((a, s) => a + s.downloadBytes, 0),
        ...estimateCatalogModel(m, availableBytes, totalBytes),
      })),
    };
  },
  'hub.pull': (p, ctx) => {
    let repo: string;
    let revision: string;
    try {
      ({ repo, revision } = parseRepoRef(p.repo));
      if (p.revision) {
        checkRevision(p.revision);
        revision = p.revision;
      }
    } catch (e) {
      throw new ApiError('invalid_request', (e as Error).message, 'repo');
    }
    let hub;
    try {
      hub = hubConfigFromEnv();
    } catch (e) {
      throw new ApiError('invalid_request', (e as Error).message, 'repo');
    }
    const all = pulls(ctx);
    for (const r of all.values()) if (r.pull.repo === repo && r.pull.status === 'running') return { pull: r.pull };
    const pull: Pull = {
      id: randomUUID(),
      repo,
      revision,
      status: 'running',
      progress: {
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
      },
      error: null,
      dir: null,
      commit: null,
      downloadedBytes: 0,
      reusedBytes: 0,
      modelId: null,
      startedAt: nowIso(),
      finishedAt: null,
    };
    const abort = new AbortController();
    const emit = () => ctx.emit('hub.progress', { ...pull, progress: { ...pull.progress } });
    const done = (async () => {
      try {
        const r = await pullModel({
          repo,
          revision,
          cacheDir: hubCacheDir(),
          hub,
          signal: abort.signal,
          backoffMs: hubServiceOptions.backoffMs,
          offline: process.env.HF_HUB_OFFLINE === '1',
          checkConfig: checkConfig(repo),
          onProgress: (pr) => {
            pull.progress = pr;
            emit();
          },
        });
        Object.assign(pull, {
          dir: r.dir,
          commit: r.commit,
          downloadedBytes: r.downloadedBytes,
          reusedBytes: r.reusedBytes,
        });
        if (p.register ?? true) pull.modelId = register(ctx, r.dir, p.name ?? repo, r.commit);
        pull.status = 'done';
      } catch (e) {
        pull.status = e instanceof HubError && e.kind === 'cancelled' ? 'cancelled' : 'failed';
        pull.error = {
          code: codeOf(e),
          message:
            pull.status === 'cancelled'
              ? 'stopped: pull again to resume from the bytes already downloaded'
              : (e as Error).message,
        };
      } finally {
        pull.finishedAt = nowIso();
        emit();
      }
    })();
    all.set(pull.id, { pull, abort, done });
    emit();
    return { pull };
  },
  'hub.pulls': (_p, ctx) => ({ pulls: [...pulls(ctx).values()].map((r) => r.pull).reverse() }),
  'hub.cancel': (p, ctx) => {
    const r = pulls(ctx).get(p.id);
    if (!r) throw new ApiError('not_found', `no pull ${p.id}`, 'id');
    if (r.pull.status !== 'running') return { cancelled: false };
    r.abort.abort();
    return { cancelled: true };
  },
  'hub.cached': (_p, ctx) => {
    const cacheDir = hubCacheDir();
    return {
      cacheDir,
      snapshots: listCachedSnapshots(cacheDir).map((s) => ({ ...s, modelId: registeredModelId(ctx, s.dir) })),
    };
  },
});
