// The foreground adapter training of `lenslab train` for BLIP and CLIP / SigLIP folders (blip.ts, contrastive.ts
// parse their flags): one inference.train call, its steps printed from inference.step events; Ctrl-C cancels it
// before the adapter is written.
import { existsSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { CommandContext } from './command';
import { numArg, printJson, requirePath, UsageError, withBackend } from './command';
import type { Params } from '../../contract/index';

/** The flags every foreground adapter run shares: --model, --data, --out (which must be empty), --train-split. */
export interface AdapterRunFlags {
  model?: string;
  data?: string;
  out?: string;
  'train-split'?: string;
}

/** The run's model, data and output folder from the shared flags (usage errors name the flag). */
export function adapterRunBase(v: AdapterRunFlags): Pick<Params<'inference.train'>, 'model' | 'data' | 'outDir'> {
  if (!v.data) throw new UsageError('--data PATH is required');
  if (!v.out) throw new UsageError('--out DIR is required (the adapter folder)');
  const out = resolve(v.out);
  if (existsSync(out) && readdirSync(out).length)
    throw new UsageError(`--out ${out} is not empty; choose an empty or new folder`);
  if (!v.model) throw new UsageError('--model DIR is required');
  requirePath(v.data, '--data', 'any');
  const split = v['train-split'] ?? 'train';
  return {
    model: { path: resolve(v.model) },
    data: { path: v.data, split: split as 'train' | 'val' | 'test' },
    outDir: out,
  };
}

/** The training numbers both recipes take (--rank ... --weight-decay), each undefined when absent. */
export function trainNumberFlags(v: Record<string, string | undefined>) {
  return {
    rank: numArg(v.rank, '--rank'),
    alpha: numArg(v.alpha, '--alpha'),
    lr: numArg(v.lr, '--lr'),
    epochs: numArg(v.epochs, '--epochs'),
    batchSize: numArg(v['batch-size'], '--batch-size'),
    gradAccum: numArg(v['grad-accum'], '--grad-accum'),
    seed: numArg(v.seed, '--seed'),
    weightDecay: numArg(v['weight-decay'], '--weight-decay'),
  };
}

export async function trainAdapter(ctx: CommandContext, params: Params<'inference.train'>): Promise<number> {
  const requestId = `cli-${process.pid}-${Date.now()}`;
  const note = (l: string) => (ctx.json ? ctx.io.err(l) : ctx.io.out(l));
  const r = await withBackend(
    ctx,
    async (call, backend) => {
      const off = backend.events.subscribe((event, payload) => {
        if (event !== 'inference.step') return;
        const s = payload as { requestId: string; step: number; total: number; loss: number | null };
        if (s.requestId !== requestId) return;
        if (s.step === 1 || s.step === s.total || s.step % 10 === 0)
          ctx.io.err(`step ${s.step}/${s.total} loss ${(s.loss ?? NaN).toFixed(4)}`);
      });
      try {
        return await call('inference.train', { ...params, requestId });
      } finally {
        off();
      }
    },
    { interruptible: true },
  );
  for (const w of r.warnings) ctx.io.err(w);
  for (const n of r.notes) note(n);
  const summary = { out: r.outDir, steps: r.steps, firstLoss: r.firstLoss, lastLoss: r.lastLoss, seconds: r.seconds };
  if (ctx.json) printJson(ctx, summary);
  else
    note(
      `wrote a PEFT adapter to ${summary.out} after ${summary.steps} steps (loss ${summary.firstLoss?.toFixed(4)} -> ${summary.lastLoss?.toFixed(4)}, ${summary.seconds.toFixed(1)} s)`,
    );
  return 0;
}
