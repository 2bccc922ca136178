// Shared by the program / LoRA-graph tests: a tiny LLaVA and training batches from the demo scenes
// (prompt tokens ignored, answer + </s> as labels, right padding, one image per row).
import type { ort } from '../../src-main/engine';
import assert from 'node:assert/strict';
import { StepExecutor, type StepExecutorOptions } from '../../src-main/engine';
import { padBatch } from '../../src-main/models/demo/feeds';
import { makeSample, type Family } from '../../src-main/models/demo/shapes';
import type { LoadedVlm, LoraOptions, TrainableVlm } from '../../src-main/models/program';

/** LoRA r4 / alpha 8 without dropout on all seven decoder projections: the engine tests' adapter. */
export const LORA_ALL_TARGETS: LoraOptions = {
  rank: 4,
  alpha: 8,
  dropout: 0,
  targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
};

export interface QaRow {
  pixels: Float32Array;
  question: string;
  answer: string;
}

export async function demoRows(m: LoadedVlm, seed: number, count: number, family: Family, start = 0): Promise<QaRow[]> {
  const S = m.config.vision.imageSize;
  const rows: QaRow[] = [];
  for (let i = start; rows.length < count; i++) {
    const s = makeSample(seed, i, { size: S, families: [family] });
    if (s.qa.length === 0) continue;
    const pv = await m.imageProcessor!.process({ data: s.rgb, width: S, height: S });
    rows.push({ pixels: pv.data, question: s.qa[0].question, answer: s.qa[0].answer });
  }
  return rows;
}

/** Token ids (image expanded) and unshifted labels of one row. */
export function encodeRow(m: LoadedVlm, r: { question: string; answer: string }): { ids: number[]; labels: number[] } {
  const prompt = m.chatTemplate.render(
    [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: r.question }] }],
    { addGenerationPrompt: true },
  );
  const p = m.tokenizer
    .encode(prompt)
    .flatMap((id) => (id === m.imageTokenId ? new Array<number>(m.numImageTokens).fill(id) : [id]));
  const a = [...m.tokenizer.encode(' ' + r.answer, { addSpecialTokens: false }), m.tokenizer.eosTokenId!];
  return { ids: [...p, ...a], labels: [...p.map(() => -100), ...a] };
}

export function makeFeeds(m: LoadedVlm, rows: QaRow[]): Record<string, ort.Tensor> {
  return padBatch(
    m,
    rows.map((r) => ({ ...encodeRow(m, r), pixels: r.pixels })),
  );
}

/**
 * Float64 gradient check along one direction: Σ grad·dir (from the step's output gradients at `init`) against the
 * central difference of the step's loss at init ± eps·dir. Asserts a non-trivial gradient and agreement to 1e-5.
 */
export async function assertDirectionalGradient(o: {
  tv: Pick<TrainableVlm, 'params' | 'forward'>;
  init: Record<string, ArrayLike<number>>;
  grads: Record<string, ort.Tensor>;
  dirs: Record<string, Float64Array>;
  feeds: Record<string, ort.Tensor>;
  session: StepExecutorOptions['session'];
  label: string;
  eps?: number;
}): Promise<void> {
  const eps = o.eps ?? 1e-5;
  let analytic = 0;
  for (const p of o.tv.params) {
    const g = o.grads[p.name].data as Float64Array;
    const d = o.dirs[p.name];
    for (let i = 0; i < g.length; i++) analytic += g[i] * d[i];
  }
  const lossAt = async (s: number) => {
    const v: Record<string, Float64Array> = {};
    for (const p of o.tv.params)
      v[p.name] = Float64Array.from(o.init[p.name], (x, i) => x + s * eps * o.dirs[p.name][i]);
    const e = await StepExecutor.create({ params: o.tv.params, forward: o.tv.forward, session: o.session }, v);
    const l = (await e.step(o.feeds, 0)).loss;
    await e.dispose();
    return l;
  };
  const numeric = ((await lossAt(1)) - (await lossAt(-1))) / (2 * eps);
  assert.ok(Math.abs(analytic) > 1e-3, `${o.label}: has a gradient (${analytic})`);
  assert.ok(
    Math.abs(analytic - numeric) < 1e-5 * Math.max(1, Math.abs(numeric)),
    `${o.label}: analytic ${analytic} vs numeric ${numeric}`,
  );
}

/**
 * The largest difference between two steps' gradients and the largest gradient (of the params whose names pass
 * `only`, default all), for "same gradients" checks.
 */
export function gradientDifference(
  params: readonly { name: string }[],
  got: Record<string, ort.Tensor>,
  want: Record<string, ort.Tensor>,
  only: (name: string) => boolean = () => true,
): { maxErr: number; maxAbs: number } {
  let maxErr = 0;
  let maxAbs = 0;
  for (const p of params) {
    if (!only(p.name)) continue;
    const a = got[p.name].data as Float64Array;
    const b = want[p.name].data as Float64Array;
    for (let i = 0; i < b.length; i++) {
      maxErr = Math.max(maxErr, Math.abs(a[i] - b[i]));
      maxAbs = Math.max(maxAbs, Math.abs(b[i]));
    }
  }
  return { maxErr, maxAbs };
}
