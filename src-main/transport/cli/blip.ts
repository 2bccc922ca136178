// CLI for BLIP folders: the flags of `lenslab generate` for BLIP (VQA: one question about one image, answered
// greedily; captioning: a caption, optionally continuing --prompt; the work is inference.generate's) and `lenslab
// train` (LoRA, foreground, writes a PEFT adapter to --out). generate.ts and train.ts hand over when --model is a
// BLIP folder; `lenslab score` needs no BLIP flags (inference.score). Data: any file or folder `lenslab datasets
// import` reads; every question-answer annotation of an image item is one triple.

import { existsSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { CommandContext } from './command';
import { UsageError, intArg, modelRefs, parse, printJson, requirePath } from './command';
import { ApiError } from '../../contract/errors';
import type { Params } from '../../contract/index';
import { isBlipFolder, loadBlip, type BlipModel } from '../../models/families/blip/model';
import { BLIP_VQA_RECIPE, BlipTrainError, trainBlipToFolder } from '../../training/blip';
import { readVqaItems, type VqaItem } from '../../datasets/pairs';

export { isBlipFolder, readVqaItems, type VqaItem };

function openModel(model: string | undefined): BlipModel {
  if (!model) throw new UsageError('--model DIR is required');
  try {
    return loadBlip(resolve(model));
  } catch (e) {
    throw new ApiError('invalid_request', (e as Error).message, 'model');
  }
}

/** `lenslab generate`'s flags for a BLIP folder (VQA: the answer to --prompt about --image; captioning: a caption). */
export function blipGenerateParams(argv: string[]): Params<'inference.generate'> {
  const { values } = parse(
    argv,
    {
      model: { type: 'string' }, adapter: { type: 'string' }, image: { type: 'string' }, prompt: { type: 'string' }, system: { type: 'string' },
      'max-new-tokens': { type: 'string' }, temperature: { type: 'string' }, quantize: { type: 'string' },
    },
    false,
  );
  if (values.image === undefined) throw new UsageError('--image FILE is required: BLIP answers a question about an image or captions it');
  if (values.temperature !== undefined && Number(values.temperature) !== 0) throw new UsageError('BLIP VQA answers greedily (as transformers\' generate for BlipForQuestionAnswering): --temperature must be 0');
  if (values.quantize !== undefined && values.quantize !== 'none') throw new UsageError('--quantize is not supported for BLIP models');
  const image = requirePath(values.image, '--image', 'any');
  const maxNewTokens = values['max-new-tokens'] === undefined ? undefined : intArg(values['max-new-tokens'], '--max-new-tokens');
  const messages: Params<'inference.generate'>['messages'] = [];
  if (values.system !== undefined) messages.push({ role: 'system', content: values.system });
  if (values.prompt !== undefined) messages.push({ role: 'user', content: values.prompt });
  return { ...modelRefs(values.model, values.adapter), image: { path: image }, messages, options: { maxNewTokens } };
}

/** `lenslab train` with a BLIP VQA folder: LoRA in the foreground, a PEFT adapter in --out. */
export async function blipTrain(argv: string[], ctx: CommandContext): Promise<number> {
  const { values } = parse(
    argv,
    {
      method: { type: 'string' }, model: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' }, 'train-split': { type: 'string' }, preset: { type: 'string' },
      'target-modules': { type: 'string' }, rank: { type: 'string' }, alpha: { type: 'string' }, dropout: { type: 'string' },
      lr: { type: 'string' }, epochs: { type: 'string' }, 'batch-size': { type: 'string' }, 'grad-accum': { type: 'string' }, seed: { type: 'string' }, 'weight-decay': { type: 'string' },
      limit: { type: 'string' }, schedule: { type: 'string' }, 'clip-norm': { type: 'string' },
    },
    false,
  );
  if (values.schedule !== undefined && values.schedule !== 'constant') throw new UsageError(`--schedule ${values.schedule}: BLIP training runs the recipe's constant learning rate`);
  if (values.method !== undefined && values.method !== 'lora') throw new UsageError(`--method ${values.method}: BLIP models train with lora`);
  if (values.preset !== undefined && values.preset !== 'blip-vqa-lora') throw new UsageError(`--preset ${values.preset}: a BLIP VQA folder takes the blip-vqa-lora preset (its defaults apply without --preset too)`);
  if (!values.data) throw new UsageError('--data PATH is required');
  if (!values.out) throw new UsageError('--out DIR is required (the adapter folder)');
  const out = resolve(values.out);
  if (existsSync(out) && readdirSync(out).length) throw new UsageError(`--out ${out} is not empty; choose an empty or new folder`);
  const num = (v: string | undefined, name: string) => {
    if (v === undefined) return undefined;
    const x = Number(v);
    if (v.trim() === '' || !Number.isFinite(x)) throw new UsageError(`${name} must be a number (got "${v}")`);
    return x;
  };
  const split = values['train-split'] ?? 'train';
  const limit = values.limit === undefined ? undefined : intArg(values.limit, '--limit');
  const m = openModel(values.model);
  try {
    const captioning = m.config.architecture === 'BlipForConditionalGeneration';
    const items = await readVqaItems(values.data, { split, limit, captions: captioning, warn: (l) => ctx.io.err(l) });
    const note = (l: string) => (ctx.json ? ctx.io.err(l) : ctx.io.out(l));
    const R = BLIP_VQA_RECIPE;
    const targets = values['target-modules']?.split(',').map((s) => s.trim()).filter(Boolean);
    note(`BLIP ${captioning ? 'captioning' : 'VQA'}: ${items.length} ${captioning ? 'caption' : 'question'}(s) from split "${split}"; LoRA r=${values.rank ?? R.rank} alpha=${values.alpha ?? R.alpha} dropout=${values.dropout ?? R.dropout} on ${(targets ?? R.targets).join(', ')}`);
    const t0 = Date.now();
    let res;
    try {
      res = await trainBlipToFolder(
        m,
        items,
        {
          targets, rank: num(values.rank, '--rank'), alpha: num(values.alpha, '--alpha'), dropout: num(values.dropout, '--dropout'), lr: num(values.lr, '--lr'),
          epochs: num(values.epochs, '--epochs'), batchSize: num(values['batch-size'], '--batch-size'), gradAccum: num(values['grad-accum'], '--grad-accum'),
          seed: num(values.seed, '--seed'), weightDecay: num(values['weight-decay'], '--weight-decay'), clipNorm: num(values['clip-norm'], '--clip-norm'),
          onStep: (s) => {
            if (s.step === 1 || s.step === s.total || s.step % 10 === 0) ctx.io.err(`step ${s.step}/${s.total} loss ${s.loss.toFixed(4)}`);
          },
        },
        out,
      );
    } catch (e) {
      if (e instanceof BlipTrainError) throw new ApiError('invalid_request', e.message, 'hparams');
      throw e;
    }
    const summary = { out, steps: res.steps, firstLoss: res.losses[0] ?? null, lastLoss: res.losses.at(-1) ?? null, seconds: (Date.now() - t0) / 1000 };
    if (ctx.json) printJson(ctx, summary);
    else note(`wrote a PEFT adapter to ${out} after ${res.steps} steps (loss ${summary.firstLoss?.toFixed(4)} -> ${summary.lastLoss?.toFixed(4)}, ${summary.seconds.toFixed(1)} s)`);
    return 0;
  } finally {
    m.close();
  }
}
