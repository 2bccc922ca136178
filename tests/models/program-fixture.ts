// Shared by the program / LoRA-graph tests: a tiny LLaVA and training batches from the demo scenes
// (prompt tokens ignored, answer + </s> as labels, right padding, one image per row).
import type { ort } from '../../src-main/engine';
import { tensor } from '../../src-main/engine';
import { makeSample, type Family } from '../../src-main/models/demo/shapes';
import type { LoadedVlm } from '../../src-main/models/program';

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
    const pv = await m.imageProcessor.process({ data: s.rgb, width: S, height: S });
    rows.push({ pixels: pv.data, question: s.qa[0].question, answer: s.qa[0].answer });
  }
  return rows;
}

/** Token ids (image expanded) and unshifted labels of one row. */
export function encodeRow(m: LoadedVlm, r: { question: string; answer: string }): { ids: number[]; labels: number[] } {
  const prompt = m.chatTemplate.render([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: r.question }] }], { addGenerationPrompt: true });
  const p = m.tokenizer.encode(prompt).flatMap((id) => (id === m.imageTokenId ? new Array<number>(m.numImageTokens).fill(id) : [id]));
  const a = [...m.tokenizer.encode(' ' + r.answer, { addSpecialTokens: false }), m.tokenizer.eosTokenId!];
  return { ids: [...p, ...a], labels: [...p.map(() => -100), ...a] };
}

export function makeFeeds(m: LoadedVlm, rows: QaRow[]): Record<string, ort.Tensor> {
  const enc = rows.map((r) => encodeRow(m, r));
  const T = Math.max(...enc.map((e) => e.ids.length));
  const B = rows.length;
  const ids = new BigInt64Array(B * T).fill(BigInt(m.tokenizer.padTokenId ?? 0));
  const mask = new BigInt64Array(B * T);
  const labels = new BigInt64Array(B * T).fill(-100n);
  enc.forEach((e, b) =>
    e.ids.forEach((id, t) => {
      ids[b * T + t] = BigInt(id);
      mask[b * T + t] = 1n;
      labels[b * T + t] = BigInt(e.labels[t]);
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
