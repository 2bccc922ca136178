// The foreground adapter training of `lenslab train` for BLIP and CLIP / SigLIP folders (blip.ts, contrastive.ts
// parse their flags): one inference.train call, its steps printed from inference.step events; Ctrl-C cancels it
// before the adapter is written.
import type { CommandContext } from './command';
import { printJson, withBackend } from './command';
import type { Params } from '../../contract/index';

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
