// `lenslab eval`: evaluate a model (optionally with an adapter) on a dataset split; predictions are stored. One
// evaluations.start call that waits for the end (Ctrl-C cancels it through the request's signal), then
// evaluations.predictions / .compare; a CLIP / SigLIP folder goes to inference.evaluate (contrastive.ts).
import { contrastiveEval, isContrastiveFolder, modelArg } from './contrastive';
import { parseQuantScheme, type QuantScheme } from '../../models/quantize';
import { resolve } from 'node:path';
import type { CommandGroup } from './command';
import { UsageError, intArg, parse, printJson, withBackend } from './command';
import { resolveDataArg } from './train';

const usage = `lenslab eval --model DIR [--adapter DIR | --run ID [--step N]] --data PATH_OR_DATASET [options]

Generate an answer for every item of a split (greedy) and score it: exact match for questions (VQA),
BLEU-4 and CIDEr for captions. The evaluation and its predictions are stored; compare two with --compare.
A dataset without any split is split 90/10 train/val the same way training does it.
With a CLIP / SigLIP folder: zero-shot accuracy over the items' tags as class names (--template "a photo of a {}."
repeatable) and text->image / image->text recall@1/5/10 over the split's captioned images, the base model beside
the adapter's (not stored).

Options:
  --adapter DIR        a PEFT adapter folder (e.g. a run's final/)
  --run ID [--step N]  a run's final adapter, or its checkpoint at step N
  --split S            train, val (default) or test
  --max-items N        evaluate an evenly spaced subset of N items
  --max-new-tokens N   answer length limit (32)
  --quantize Q         none, int8 or int4: weight-only quantized generation (default none)
  --task T             vqa or caption (default: from the annotations)
  --compare EVAL_ID    also print the change against an earlier evaluation on the same items (e.g. the base)
  --show N             print N predictions (5; 0 for none)
  --json, --data-dir DIR`;

export const evalCommand: CommandGroup = {
  name: 'eval',
  summary: 'evaluate a model or adapter on a dataset split (exact match / BLEU-4 / CIDEr)',
  usage,
  async run(argv, ctx) {
    if (isContrastiveFolder(modelArg(argv))) return contrastiveEval(argv, ctx);
    const { values, positionals } = parse(
      argv,
      {
        model: { type: 'string' },
        adapter: { type: 'string' },
        run: { type: 'string' },
        step: { type: 'string' },
        data: { type: 'string' },
        split: { type: 'string' },
        'max-items': { type: 'string' },
        'max-new-tokens': { type: 'string' },
        quantize: { type: 'string' },
        task: { type: 'string' },
        compare: { type: 'string' },
        show: { type: 'string' },
      },
      false,
    );
    if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
    if (!values.model) throw new UsageError('--model DIR is required');
    if (!values.data) throw new UsageError('--data PATH_OR_DATASET is required');
    if (values.adapter && values.run) throw new UsageError('give --adapter or --run, not both');
    if (values.step && !values.run) throw new UsageError('--step needs --run');
    const split = values.split ?? 'val';
    let quantize: QuantScheme;
    try {
      quantize = parseQuantScheme(values.quantize, '--quantize');
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    if (split !== 'train' && split !== 'val' && split !== 'test')
      throw new UsageError('--split must be train, val or test');
    const task = values.task;
    if (task !== undefined && task !== 'vqa' && task !== 'caption')
      throw new UsageError('--task must be vqa or caption');
    const show = values.show === undefined ? 5 : /^\d+$/.test(values.show) ? Number(values.show) : NaN;
    if (!Number.isInteger(show)) throw new UsageError('--show must be a number ≥ 0');
    const note = (line: string) => ctx.io.err(line);

    return withBackend(
      ctx,
      async (call, backend) => {
        const data = await resolveDataArg(call, values.data!, note);
        const adapter = values.adapter
          ? { path: resolve(values.adapter) }
          : values.run
            ? {
                runId: intArg(values.run, '--run'),
                ...(values.step !== undefined
                  ? { step: /^\d+$/.test(values.step) ? Number(values.step) : intArg(values.step, '--step') }
                  : {}),
              }
            : undefined;
        let shown = -1;
        const off = backend.events.subscribe((event, payload) => {
          if (event !== 'evaluations.progress' || ctx.json) return;
          const p = payload as { done: number; total: number };
          const pct = p.total ? Math.floor((100 * p.done) / p.total) : 100;
          if (pct >= shown + 10 || p.done === p.total) {
            shown = pct;
            note(`generated ${p.done}/${p.total}`);
          }
        });
        const t0 = Date.now();
        let ev;
        try {
          ev = await call('evaluations.start', {
            model: { path: resolve(values.model!) },
            adapter,
            data: { datasetId: data.datasetId, split },
            maxItems: values['max-items'] === undefined ? undefined : intArg(values['max-items'], '--max-items'),
            maxNewTokens:
              values['max-new-tokens'] === undefined ? 32 : intArg(values['max-new-tokens'], '--max-new-tokens'),
            task: task as 'vqa' | 'caption' | undefined,
            quantize: quantize === 'none' ? undefined : quantize,
            wait: true,
          });
        } finally {
          off();
        }
        const id = ev.id;
        if (ev.status !== 'completed') {
          ctx.io.err(`evaluation ${id} ${ev.status}${ev.error ? `: ${ev.error}` : ''}`);
          return 1;
        }
        const preds = await call('evaluations.predictions', { id, limit: 1000 });
        const cmp = values.compare
          ? await call('evaluations.compare', { baseId: intArg(values.compare, '--compare'), tunedId: id })
          : null;
        if (ctx.json) {
          printJson(ctx, {
            evaluation: ev,
            comparison: cmp && { metrics: cmp.metrics },
            predictions: preds.predictions,
          });
          return 0;
        }
        const fmt = (v: number | null) => (v === null ? 'n/a' : v.toFixed(4));
        ctx.io.out(
          `evaluation ${id}: ${ev.task} on ${ev.predictionCount} item(s) of dataset "${data.name}" (${split}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
        );
        ctx.io.out(
          Object.entries(ev.metrics)
            .map(([k, v]) => `  ${k.padEnd(12)} ${fmt(v)}`)
            .join('\n'),
        );
        if (cmp) {
          ctx.io.out(`against evaluation ${values.compare}:`);
          ctx.io.out(
            Object.entries(cmp.metrics)
              .map(
                ([k, m]) =>
                  `  ${k.padEnd(12)} ${m.base.toFixed(4)} -> ${m.tuned.toFixed(4)} (${m.delta >= 0 ? '+' : ''}${m.delta.toFixed(4)})`,
              )
              .join('\n'),
          );
          const better = cmp.items.filter((i) => i.change === 'better').length;
          const worse = cmp.items.filter((i) => i.change === 'worse').length;
          ctx.io.out(`  items: ${better} better, ${worse} worse, ${cmp.items.length - better - worse} same`);
        }
        for (const p of preds.predictions.slice(0, show)) {
          const main = p.scores.exact_match ?? p.scores.cider ?? null;
          ctx.io.out(
            `  ${main === 1 ? '✓' : main === 0 ? '✗' : ' '} ${JSON.stringify(p.prompt)} -> ${JSON.stringify(p.output)} (reference ${JSON.stringify(p.references[0] ?? '')})`,
          );
        }
        return 0;
      },
      { interruptible: true },
    );
  },
};
