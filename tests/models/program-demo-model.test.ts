// The shipped demo base model (resources/demo/model, written by scripts/pretrain-demo.ts): it loads as a LLaVA folder,
// and on fresh scenes (a seed the pretraining never used) its greedy answers show what it was trained on — captions and
// colour questions well above chance — while an unseen family (counting) gets no right answer, which is what a LoRA
// on that family is meant to change.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildLogitsGraph, loadVlm, type LoadedVlm } from '../../src-main/models/program';
import { serializeModel, Session } from '../../src-main/engine';
import { greedyAnswer } from '../../src-main/models/demo/feeds';
import { makeSample, type Family } from '../../src-main/models/demo/shapes';
import { CAPTION_PROMPT } from '../../src-main/models/demo/dataset';
import { encodeRow } from './program-fixture';

const DIR = join(import.meta.dirname, '../../resources/demo/model');
const SEED = 4242;

async function accuracy(m: LoadedVlm, sess: Session, kind: Family | 'caption', n: number): Promise<number> {
  let ok = 0;
  let seen = 0;
  for (let i = 0; seen < n; i++) {
    const s = makeSample(SEED, i, { size: 64, families: kind === 'caption' ? [] : [kind] });
    const qa = kind === 'caption' ? { question: CAPTION_PROMPT, answer: s.caption } : s.qa[0];
    if (!qa) continue;
    seen++;
    const pixels = (await m.imageProcessor!.process({ data: s.rgb, width: 64, height: 64 })).data;
    const row = encodeRow(m, { question: qa.question, answer: qa.answer });
    const seq = row.ids.slice(
      0,
      row.labels.findIndex((x) => x !== -100),
    );
    if ((await greedyAnswer(m, sess, seq, pixels, kind === 'caption' ? 40 : 4)) === qa.answer) ok++;
  }
  return ok / n;
}

test('the shipped demo base model answers what it was pretrained on and not the unseen counting family', async () => {
  const m = loadVlm(DIR);
  try {
    assert.equal(m.config.numImageTokens, (m.config.vision.imageSize / m.config.vision.patchSize) ** 2);
    const sess = await Session.create(serializeModel(buildLogitsGraph(m)).model, { threads: 1 });
    const colors = await accuracy(m, sess, 'colors', 30);
    const captions = await accuracy(m, sess, 'caption', 12);
    const counting = await accuracy(m, sess, 'counting', 20);
    await sess.dispose();
    assert.ok(colors >= 0.4, `colour questions: ${colors} (chance 0.2)`);
    assert.ok(captions >= 0.3, `exact captions: ${captions}`);
    assert.ok(counting <= 0.1, `counting was never trained: ${counting}`);
  } finally {
    m.close();
  }
});
