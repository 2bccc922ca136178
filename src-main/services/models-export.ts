// models.exportGguf: a model folder (registered or by path), optionally with an adapter merged in, written as GGUF
// files in a worker thread of its own (export/gguf/export.ts; its memory is freed when it ends), with
// models.exportProgress events per tensor (at most ~10 a second).
import { isAbsolute, join, resolve } from 'node:path';
import { ApiError } from '../contract/errors';
import { handlers } from './context';
import { getModelPath } from '../storage/models-queries';
import { requireNotAudioLlm, resolveAdapter } from './model-refs';
import { GgufExportError } from '../export/gguf/export';

export const modelsExportHandlers = handlers({
  'models.exportGguf': async (p, ctx) => {
    let modelDir: string;
    if ('id' in p.model) {
      const row = getModelPath(ctx.db, p.model.id);
      if (!row) throw new ApiError('not_found', `model ${p.model.id} does not exist`, 'model.id');
      modelDir = isAbsolute(row.path) ? row.path : join(ctx.dataDir, row.path);
    } else modelDir = resolve(p.model.path);
    requireNotAudioLlm(modelDir, 'GGUF export', 'id' in p.model ? 'model.id' : 'model.path');
    const adapterDir = p.adapter ? resolveAdapter(ctx, p.adapter) : undefined;
    const dir = resolve(p.dir);
    const host = ctx.work.newHost();
    let last = 0;
    try {
      const r = await host.exportGguf(
        { modelDir, adapterDir, outDir: dir, quant: p.quant ?? 'q8_0', name: p.name, overwrite: p.overwrite },
        {
          onProgress: (done, total) => {
            const now = Date.now();
            if (done === total || now - last > 100) {
              last = now;
              ctx.emit('models.exportProgress', { dir, done, total });
            }
          },
        },
      );
      const file = (f: { file: string; bytes: number; tensors: number }) => ({
        file: f.file,
        bytes: f.bytes,
        tensors: f.tensors,
      });
      return {
        dir: r.dir,
        quant: r.quant,
        model: file(r.model),
        mmproj: r.mmproj && file(r.mmproj),
        modelfile: r.modelfile,
        notes: r.notes,
      };
    } catch (e) {
      if (e instanceof GgufExportError || (e as Error).name === 'GgufExportError') {
        const field = (e as GgufExportError).field;
        throw new ApiError(
          /not empty/.test((e as Error).message) ? 'conflict' : 'invalid_request',
          (e as Error).message,
          field === 'dir' ? 'dir' : field === 'adapter' ? 'adapter' : 'model',
        );
      }
      throw e;
    } finally {
      await ctx.work.release(host);
    }
  },
});
