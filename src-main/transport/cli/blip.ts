// CLI for BLIP folders: the flags of `lenslab generate` for BLIP (VQA: one question about one image, answered
// greedily; captioning: a caption, optionally continuing --prompt; the work is inference.generate's) and `lenslab
// train` (LoRA, foreground, writes a PEFT adapter to --out). generate.ts and train.ts hand over when --model is a
// BLIP folder; `lenslab score` needs no BLIP flags (inference.score). Data: any file or folder `lenslab datasets
// import` reads; every question-answer annotation of an image item is one triple.

import type { CommandContext } from './command';
import { UsageError, intArg, listArg, modelRefs, numArg, parse, requirePath } from './command';
import type { Params } from '../../contract/index';
import { isBlipFolder } from '../../models/families/blip/model';
import { adapterRunBase, trainAdapter, trainNumberFlags } from './adapter-train';
import { readVqaItems, type VqaItem } from '../../datasets/pairs';

export { isBlipFolder, readVqaItems, type VqaItem };

/** `lenslab generate`'s flags for a BLIP folder (VQA: the answer to --prompt about --image; captioning: a caption). */
export function blipGenerateParams(argv: string[]): Params<'inference.generate'> {
  const { values } = parse(
    argv,
    {
      model: { type: 'string' },
      adapter: { type: 'string' },
      image: { type: 'string' },
      prompt: { type: 'string' },
      system: { type: 'string' },
      'max-new-tokens': { type: 'string' },
      temperature: { type: 'string' },
      quantize: { type: 'string' },
    },
    false,
  );
  if (values.image === undefined)
    throw new UsageError('--image FILE is required: BLIP answers a question about an image or captions it');
  if (values.temperature !== undefined && Number(values.temperature) !== 0)
    throw new UsageError(
      "BLIP VQA answers greedily (as transformers' generate for BlipForQuestionAnswering): --temperature must be 0",
    );
  if (values.quantize !== undefined && values.quantize !== 'none')
    throw new UsageError('--quantize is not supported for BLIP models');
  const image = requirePath(values.image, '--image', 'any');
  const maxNewTokens =
    values['max-new-tokens'] === undefined ? undefined : intArg(values['max-new-tokens'], '--max-new-tokens');
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
      method: { type: 'string' },
      model: { type: 'string' },
      data: { type: 'string' },
      out: { type: 'string' },
      'train-split': { type: 'string' },
      preset: { type: 'string' },
      'target-modules': { type: 'string' },
      rank: { type: 'string' },
      alpha: { type: 'string' },
      dropout: { type: 'string' },
      lr: { type: 'string' },
      epochs: { type: 'string' },
      'batch-size': { type: 'string' },
      'grad-accum': { type: 'string' },
      seed: { type: 'string' },
      'weight-decay': { type: 'string' },
      limit: { type: 'string' },
      schedule: { type: 'string' },
      'clip-norm': { type: 'string' },
    },
    false,
  );
  if (values.schedule !== undefined && values.schedule !== 'constant')
    throw new UsageError(`--schedule ${values.schedule}: BLIP training runs the recipe's constant learning rate`);
  if (values.method !== undefined && values.method !== 'lora')
    throw new UsageError(`--method ${values.method}: BLIP models train with lora`);
  if (values.preset !== undefined && values.preset !== 'blip-vqa-lora')
    throw new UsageError(
      `--preset ${values.preset}: a BLIP VQA folder takes the blip-vqa-lora preset (its defaults apply without --preset too)`,
    );
  const limit = values.limit === undefined ? undefined : intArg(values.limit, '--limit');
  return trainAdapter(ctx, {
    ...adapterRunBase(values),
    limit,
    options: {
      targetModules: listArg(values['target-modules']),
      ...trainNumberFlags(values),
      dropout: numArg(values.dropout, '--dropout'),
      clipNorm: numArg(values['clip-norm'], '--clip-norm'),
    },
  });
}
