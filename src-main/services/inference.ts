// inference.*: a model folder (or a registered model) with an optional adapter, on one prompt or a data file;
// nothing stored. Generation for the chat models runs on the chat runtime's generator host (a worker thread, tokens
// streamed as inference.token events); scoring, BLIP's generation, the CLIP / SigLIP evaluation and the BLIP / CLIP /
// SigLIP adapter training in a backend worker of their own (freed when the call ends). The request's AbortSignal
// stops either.
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { ApiError } from '../contract/errors';
import type { AdapterRef } from '../contract/inference';
import { handlers, type ServiceContext } from './context';
import { resolveAdapter, resolveModel } from './model-refs';
import { modelErrorToApi } from './model-errors';
import { graphCacheDirOf } from '../storage/data-dir';
import { isBlipFolder } from '../models/families/blip/model';
import type { WorkHost } from './work-worker';

/** A path the caller gave that must be an existing file or folder; the error names the field. */
function existing(path: string, field: string, kind: 'file' | 'dir' | 'any'): string {
  const p = resolve(path);
  if (!existsSync(p)) throw new ApiError('not_found', `${path}: not found`, field);
  const st = statSync(p);
  if (kind === 'dir' && !st.isDirectory()) throw new ApiError('invalid_request', `${path}: is not a folder`, field);
  if (kind === 'file' && !st.isFile()) throw new ApiError('invalid_request', `${path}: is not a file`, field);
  return p;
}

/** An adapter folder: a folder given by path is checked to exist (its loader says what is wrong inside), a run's is resolved. */
function adapterDirOf(ctx: ServiceContext, ref: AdapterRef | undefined): string | null {
  if (!ref) return null;
  return 'path' in ref ? existing(ref.path, 'adapter.path', 'dir') : resolveAdapter(ctx, ref);
}

/** Run fn on a backend worker of its own, released afterwards; the loaders' errors name `field`, others say `what` failed. */
async function onWorker<T>(
  ctx: ServiceContext,
  signal: AbortSignal | undefined,
  fn: (host: WorkHost) => Promise<T>,
  field?: string,
  what = 'generation',
): Promise<T> {
  const host = ctx.work.newHost();
  try {
    return await fn(host);
  } catch (e) {
    if (signal?.aborted) throw cancelled(signal);
    const api = modelErrorToApi(e, field);
    throw api.code === 'internal'
      ? new ApiError('internal', `${what} failed: ${e instanceof Error ? e.message : String(e)}`)
      : api;
  } finally {
    await ctx.work.release(host);
  }
}

/** The error of a call whose caller went away (or pressed Ctrl-C): the signal's reason when it is one. */
function cancelled(signal: AbortSignal): ApiError {
  return signal.reason instanceof ApiError ? signal.reason : new ApiError('cancelled', 'cancelled');
}

const finite = (v: number) => (Number.isFinite(v) ? v : null);

export const inferenceHandlers = handlers({
  'inference.generate': async (p, ctx, req) => {
    const signal = req?.signal;
    const { dir: modelDir } = resolveModel(ctx, p.model);
    const adapterDir = adapterDirOf(ctx, p.adapter);
    const image = p.image ? existing(p.image.path, 'image.path', 'file') : null;
    const o = p.options ?? {};
    if (isBlipFolder(modelDir)) {
      const prompt = p.messages.findLast((m) => m.role === 'user')?.content ?? null;
      const input = {
        modelDir,
        adapterDir,
        image,
        prompt,
        hasSystem: p.messages.some((m) => m.role === 'system'),
        maxNewTokens: o.maxNewTokens,
        temperature: o.temperature,
        quantize: o.quantize,
        cacheDir: graphCacheDirOf(ctx.dataDir),
      };
      const r = await onWorker(ctx, signal, (h) => h.generateBlip(input, { signal }), 'image');
      if (p.requestId) ctx.emit('inference.token', { requestId: p.requestId, index: 0, text: r.text });
      return r;
    }
    if (!p.messages.some((m) => m.role === 'user'))
      throw new ApiError('invalid_request', 'a user message is required', 'messages');
    const { quantize, ...sampling } = o;
    let index = 0;
    let r;
    try {
      r = await ctx.chat.host.generate(
        { modelDir, adapterDir, image, messages: p.messages },
        { ...sampling, ...(quantize ? { quantize } : {}) },
        {
          signal,
          onToken: (t) => {
            if (p.requestId) ctx.emit('inference.token', { requestId: p.requestId, index: index++, text: t.text });
          },
        },
      );
    } catch (e) {
      if (signal?.aborted) throw cancelled(signal);
      throw modelErrorToApi(e, image ? 'image' : undefined);
    }
    // the caller went away mid-answer: what was generated is nobody's (a CLI Ctrl-C reports the cancel)
    if (signal?.aborted) throw cancelled(signal);
    const timings = Object.fromEntries(Object.entries(r.timings).map(([k, v]) => [k, finite(v)]));
    return {
      ids: r.ids,
      text: r.text,
      finishReason: r.finishReason,
      promptTokens: r.promptTokens,
      timings,
      ...(r.warnings?.length ? { warnings: r.warnings } : {}),
    };
  },
  'inference.evaluate': async (p, ctx, req) => {
    const { dir: modelDir } = resolveModel(ctx, p.model);
    const adapterDir = adapterDirOf(ctx, p.adapter);
    existing(p.data.path, 'data.path', 'any');
    const input = {
      modelDir,
      adapterDir,
      data: p.data.path,
      split: p.data.split,
      maxItems: p.maxItems,
      templates: p.templates,
    };
    return onWorker(
      ctx,
      req?.signal,
      (h) => h.evaluateContrastive(input, { signal: req?.signal }),
      'data',
      'evaluation',
    );
  },
  'inference.train': async (p, ctx, req) => {
    const signal = req?.signal;
    const { dir: modelDir } = resolveModel(ctx, p.model);
    existing(p.data.path, 'data.path', 'any');
    const input = {
      modelDir,
      data: p.data.path,
      split: p.data.split,
      outDir: resolve(p.outDir),
      limit: p.limit,
      options: p.options ?? {},
    };
    const onStep = (s: { step: number; total: number; loss: number }) => {
      if (p.requestId)
        ctx.emit('inference.step', { requestId: p.requestId, step: s.step, total: s.total, loss: finite(s.loss) });
    };
    return onWorker(ctx, signal, (h) => h.trainFolder(input, { signal, onStep }), undefined, 'training');
  },
  'inference.embed': async (p, ctx, req) => {
    const { dir: modelDir } = resolveModel(ctx, p.model);
    const adapterDir = adapterDirOf(ctx, p.adapter);
    existing(p.data.path, 'data.path', 'any');
    return onWorker(
      ctx,
      req?.signal,
      (h) => h.embed({ modelDir, adapterDir, data: p.data.path, limit: p.limit }),
      'data',
      'embedding',
    );
  },
  'inference.score': async (p, ctx, req) => {
    const { dir: modelDir } = resolveModel(ctx, p.model);
    const adapterDir = adapterDirOf(ctx, p.adapter);
    existing(p.data.path, 'data.path', 'any');
    const input = { modelDir, adapterDir, data: p.data.path, limit: p.limit, cacheDir: graphCacheDirOf(ctx.dataDir) };
    return onWorker(ctx, req?.signal, (h) => h.score(input, { signal: req?.signal }), 'data', 'scoring');
  },
});
