// The issue's label-masking proof: a two-turn chat rendered with the demo model's real tokenizer and LLaVA chat
// template, batched with a shorter sample (padding), printed token by token with its loss weight. Only assistant
// tokens (answer + end of turn) count; system prompt, user turns, image tokens and padding carry label -100.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderConversation, type RenderSetup } from '../../src-main/datasets/render';
import { LensTokenizer } from '../../src-main/models/tokenizer';
import { ChatTemplate, LLAVA_CHAT_TEMPLATE } from '../../src-main/models/chat-template';
import { demoTokenizerFiles } from '../../src-main/models/demo/tiny-llava';
import { collate, IGNORE_INDEX } from '../../src-main/training/batching';

test('label masking: only assistant tokens have a loss weight (printed)', () => {
  const files = demoTokenizerFiles();
  const tok = new LensTokenizer({ tokenizerJson: files.tokenizer, tokenizerConfig: files.tokenizerConfig });
  const template = new ChatTemplate(LLAVA_CHAT_TEMPLATE, { bos_token: tok.bosToken, eos_token: tok.eosToken });
  const imageId = tok.imageTokenId();
  const padId = tok.encode('<pad>', { addSpecialTokens: false })[0];
  const setup: RenderSetup = { template, tokenizer: tok, image: { tokenId: imageId, count: 4 } };
  const chat = renderConversation(
    [
      { role: 'user', content: '<image>\nHow many stars are there?' },
      { role: 'assistant', content: 'There are 2 stars.' },
      { role: 'user', content: 'What colour are they?' },
      { role: 'assistant', content: 'They are red.' },
    ],
    setup,
  );
  const short = renderConversation(
    [
      { role: 'user', content: '<image>\nWhat shape?' },
      { role: 'assistant', content: 'A circle.' },
    ],
    setup,
  );
  const batch = collate(
    [
      { ids: chat.ids, lossMask: chat.lossMask, imageCount: chat.imageCount, key: 'chat' },
      { ids: short.ids, lossMask: short.lossMask, imageCount: short.imageCount, key: 'short' },
    ],
    [0, 1],
    { padId },
  );
  const T = batch.seqLen;
  const rows: string[] = [];
  const weighted: number[][] = [[], []];
  for (let b = 0; b < 2; b++) {
    rows.push(`--- row ${b} (${b === 0 ? 'two-turn chat' : 'short sample, padded'})`);
    for (let t = 0; t < T; t++) {
      const id = batch.inputIds[b * T + t];
      const label = batch.labels[b * T + t];
      const w = label === IGNORE_INDEX ? 0 : 1;
      if (w) weighted[b].push(id);
      const kind = batch.attentionMask[b * T + t] === 0 ? 'pad' : id === imageId ? 'image' : '';
      rows.push(
        `${String(t).padStart(3)}  ${String(id).padStart(4)}  ${JSON.stringify(tok.decode([id])).padEnd(14)} weight ${w}${kind ? `  (${kind})` : ''}`,
      );
    }
  }
  console.log(rows.join('\n'));

  // exactly the two answers and their end-of-turn tokens count in row 0, the one answer in row 1
  const spans = (ids: number[], labels: Int32Array, off: number, len: number) => {
    const out: string[] = [];
    let cur: number[] = [];
    for (let t = 0; t < len; t++) {
      if (labels[off + t] !== IGNORE_INDEX) cur.push(ids[t]);
      else if (cur.length) {
        out.push(tok.decode(cur));
        cur = [];
      }
    }
    if (cur.length) out.push(tok.decode(cur));
    return out;
  };
  assert.deepEqual(spans(chat.ids, batch.labels, 0, chat.ids.length), [
    ' There are 2 stars.</s>',
    ' They are red.</s>',
  ]);
  assert.deepEqual(spans(short.ids, batch.labels, T, short.ids.length), [' A circle.</s>']);
  // labels equal the input ids where they count
  for (let i = 0; i < 2 * T; i++)
    if (batch.labels[i] !== IGNORE_INDEX) assert.equal(batch.labels[i], batch.inputIds[i]);
  // image tokens (4 per image), padding and everything before the first answer carry -100
  for (let i = 0; i < 2 * T; i++) {
    if (batch.inputIds[i] === imageId || batch.attentionMask[i] === 0) assert.equal(batch.labels[i], IGNORE_INDEX);
  }
  assert.equal(chat.ids.filter((i) => i === imageId).length, 4);
  assert.ok(short.ids.length < T, 'the short row is padded');
  const firstAnswer = chat.lossMask.indexOf(1);
  assert.match(tok.decode(chat.ids.slice(0, firstAnswer)), /USER: .*How many stars are there\?\nASSISTANT:$/s);
  assert.equal(batch.lossTokens, weighted[0].length + weighted[1].length);
});
