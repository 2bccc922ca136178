// Feeds and greedy answers for the tiny demo LLaVA, shared by the pretraining script (scripts/pretrain-demo.ts) and
// the program tests: a right-padded training batch (labels -100 off the answer), and greedy decoding by full
// recomputation through a logits graph (cheap on a model this small; the app's generation uses the KV-cache path).
import { tensor, type ort, type Session } from '../../engine';
import type { LoadedVlm } from '../program';

/** One sample: token ids, labels (-100 = not learned) and the processed image [3, S, S]. */
export interface DemoRow {
  ids: readonly number[];
  labels: readonly number[];
  pixels: Float32Array;
}

/** input_ids / attention_mask / labels [B, T] right-padded with the pad token, pixel_values [B, 3, S, S]. */
export function padBatch(m: LoadedVlm, rows: readonly DemoRow[]): Record<string, ort.Tensor> {
  const T = Math.max(...rows.map((r) => r.ids.length));
  const B = rows.length;
  const ids = new BigInt64Array(B * T).fill(BigInt(m.tokenizer.padTokenId ?? 0));
  const mask = new BigInt64Array(B * T);
  const labels = new BigInt64Array(B * T).fill(-100n);
  rows.forEach((r, b) =>
    r.ids.forEach((id, t) => {
      ids[b * T + t] = BigInt(id);
      mask[b * T + t] = 1n;
      labels[b * T + t] = BigInt(r.labels[t]);
    }),
  );
  const S = m.config.vision.imageSize;
  const pix = new Float32Array(B * 3 * S * S);
  rows.forEach((r, b) => pix.set(r.pixels, b * 3 * S * S));
  return {
    input_ids: tensor('int64', [B, T], ids),
    attention_mask: tensor('int64', [B, T], mask),
    labels: tensor('int64', [B, T], labels),
    pixel_values: tensor('float32', [B, 3, S, S], pix),
  };
}

/** Greedy answer to `prompt` (ids, image tokens expanded) with a logits graph session: up to maxNew tokens, EOS ends it. */
export async function greedyAnswer(
  m: LoadedVlm,
  sess: Session,
  prompt: readonly number[],
  pixels: Float32Array,
  maxNew: number,
): Promise<string> {
  const V = m.config.text.vocabSize;
  const S = m.config.vision.imageSize;
  const seq = [...prompt];
  const gen: number[] = [];
  for (let k = 0; k < maxNew; k++) {
    const T = seq.length;
    const r = await sess.run({
      input_ids: tensor('int64', [1, T], BigInt64Array.from(seq.map(BigInt))),
      attention_mask: tensor('int64', [1, T], new BigInt64Array(T).fill(1n)),
      pixel_values: tensor('float32', [1, 3, S, S], pixels),
    });
    const lg = r.logits.data as Float32Array;
    let best = 0;
    for (let j = 1; j < V; j++) if (lg[(T - 1) * V + j] > lg[(T - 1) * V + best]) best = j;
    if (best === m.tokenizer.eosTokenId) break;
    gen.push(best);
    seq.push(best);
  }
  return m.tokenizer.decode(gen, { skipSpecialTokens: true }).trim();
}
