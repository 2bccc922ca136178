// CLI for CLIP / SigLIP folders: `lenslab embed` (inference.embed), and the flags of the contrastive `lenslab eval`
// (inference.evaluate) and `lenslab train --method contrastive` (inference.train); train.ts and eval.ts hand over
// when --model is a CLIP / SigLIP folder or the method is contrastive; `lenslab score` needs no contrastive flags.
// Data: any file or folder `lenslab datasets import` reads; an item's first caption is its text, its first tag its
// class name for zero-shot, its split selects it for --split.

import type { CommandContext, CommandGroup } from './command';
import { UsageError, intArg, listArg, modelRefs, parse, printJson, requirePath, table, withBackend } from './command';
import type { Result } from '../../contract/index';
import { readPairs, type DataPair } from '../../datasets/pairs';
import { isContrastiveFolder } from '../../models/families/contrastive/folder';
import { adapterRunBase, trainAdapter, trainNumberFlags } from './adapter-train';

export { isContrastiveFolder, readPairs, type DataPair };

/** The --model value of an argv (before the full parse). */
export function modelArg(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--model') return argv[i + 1];
    if (argv[i].startsWith('--model=')) return argv[i].slice('--model='.length);
  }
  return undefined;
}

const embedUsage = `lenslab embed --model DIR [--adapter DIR] --data PATH [--limit N] [--json]

Normalized image and text embeddings of every image item of a data file or folder with a CLIP or SigLIP model
(an item's first caption is its text). Texts longer than the text tower's positions are truncated with a warning.`;

export const embedCommand: CommandGroup = {
  name: 'embed',
  summary: 'normalized image and text embeddings of a data file with a CLIP / SigLIP model',
  usage: embedUsage,
  async run(argv, ctx) {
    const { values } = parse(
      argv,
      { model: { type: 'string' }, adapter: { type: 'string' }, data: { type: 'string' }, limit: { type: 'string' } },
      false,
    );
    if (!values.data) throw new UsageError('--data PATH is required');
    const limit = values.limit === undefined ? undefined : intArg(values.limit, '--limit');
    const refs = modelRefs(values.model, values.adapter);
    requirePath(values.data, '--data', 'any');
    const r = await withBackend(
      ctx,
      (call) => call('inference.embed', { ...refs, data: { path: values.data! }, limit }),
      { readonly: true, interruptible: true },
    );
    for (const w of r.warnings) ctx.io.err(w);
    const items = r.items.map((x) => ({
      ref: x.ref,
      text: x.text,
      image_embeds: x.imageEmbeds,
      text_embeds: x.textEmbeds,
    }));
    if (ctx.json) printJson(ctx, { model: r.model, dim: r.dim, items });
    else
      ctx.io.out(
        table(
          ['ITEM', 'TEXT', 'DIM'],
          items.map((x) => [x.ref, x.text, x.image_embeds.length]),
        ),
      );
    return 0;
  },
};

type Metrics = Result<'inference.evaluate'>['base'];

function fmtEval(e: Metrics | undefined, k: string, which: 'imageToText' | 'textToImage'): string {
  const v = e?.recall?.[which][k];
  return v === undefined ? '-' : v.toFixed(3);
}

/** `lenslab eval` on a CLIP / SigLIP model: zero-shot accuracy and recall@1/5/10, the base model's beside (inference.evaluate). */
export async function contrastiveEval(argv: string[], ctx: CommandContext): Promise<number> {
  const { values } = parse(
    argv,
    {
      model: { type: 'string' },
      adapter: { type: 'string' },
      data: { type: 'string' },
      split: { type: 'string' },
      'max-items': { type: 'string' },
      template: { type: 'string', multiple: true },
    },
    false,
  );
  if (!values.data) throw new UsageError('--data PATH is required');
  const max = values['max-items'] === undefined ? undefined : intArg(values['max-items'], '--max-items');
  const split = values.split ?? 'val';
  if (split !== 'train' && split !== 'val' && split !== 'test')
    throw new UsageError('--split must be train, val or test');
  const refs = modelRefs(values.model, values.adapter);
  requirePath(values.data, '--data', 'any');
  const r = await withBackend(
    ctx,
    (call) =>
      call('inference.evaluate', {
        ...refs,
        data: { path: values.data!, split },
        maxItems: max,
        templates: values.template as string[] | undefined,
      }),
    { readonly: true, interruptible: true },
  );
  for (const w of r.warnings) ctx.io.err(w);
  const { base, adapter: tuned } = r;
  if (ctx.json) {
    printJson(ctx, { model: r.model, split, pairs: r.pairs, base, ...(tuned ? { adapter: tuned } : {}) });
    return 0;
  }
  const ad = !!tuned;
  const cols = ad ? ['METRIC', 'BASE', 'ADAPTER'] : ['METRIC', 'BASE'];
  const acc = (e: Metrics | undefined) => (e?.zeroShot.accuracy == null ? '-' : e.zeroShot.accuracy.toFixed(3));
  const rows: (string | number)[][] = [
    [
      `zero-shot accuracy (${base.zeroShot.items} items, ${base.zeroShot.classes.length} classes)`,
      acc(base),
      ...(ad ? [acc(tuned)] : []),
    ],
  ];
  for (const k of ['R@1', 'R@5', 'R@10']) {
    rows.push([`text->image ${k}`, fmtEval(base, k, 'textToImage'), ...(ad ? [fmtEval(tuned, k, 'textToImage')] : [])]);
    rows.push([`image->text ${k}`, fmtEval(base, k, 'imageToText'), ...(ad ? [fmtEval(tuned, k, 'imageToText')] : [])]);
  }
  ctx.io.out(`${r.model} on ${r.items} "${split}" items (${r.pairs} image-text pairs)`);
  ctx.io.out(table(cols, rows));
  return 0;
}

/** `lenslab train --method contrastive`: fine-tune in the foreground and write a PEFT adapter to --out. */
export async function contrastiveTrain(argv: string[], ctx: CommandContext): Promise<number> {
  const { values } = parse(
    argv,
    {
      method: { type: 'string' },
      model: { type: 'string' },
      data: { type: 'string' },
      out: { type: 'string' },
      'train-split': { type: 'string' },
      'contrastive-method': { type: 'string' },
      towers: { type: 'string' },
      'target-modules': { type: 'string' },
      rank: { type: 'string' },
      alpha: { type: 'string' },
      lr: { type: 'string' },
      epochs: { type: 'string' },
      'batch-size': { type: 'string' },
      'grad-accum': { type: 'string' },
      seed: { type: 'string' },
      'weight-decay': { type: 'string' },
    },
    false,
  );
  const towers = values.towers ?? 'both';
  if (towers !== 'text' && towers !== 'vision' && towers !== 'both')
    throw new UsageError('--towers must be text, vision or both');
  const method = values['contrastive-method'] ?? 'lora';
  if (method !== 'lora' && method !== 'projections')
    throw new UsageError('--contrastive-method must be lora or projections');
  return trainAdapter(ctx, {
    ...adapterRunBase(values),
    options: {
      method,
      towers,
      targetModules: listArg(values['target-modules']),
      ...trainNumberFlags(values),
    },
  });
}
