// render.ts: exactly the assistant content + end-of-turn tokens are in the loss; images expand; real tokenizer too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  renderConversation,
  renderItem,
  previewItem,
  RenderError,
  type RenderSetup,
} from '../../src-main/datasets/render';
import { LensTokenizer } from '../../src-main/models/tokenizer';
import { ChatTemplate, LLAVA_CHAT_TEMPLATE } from '../../src-main/models/chat-template';
import { demoTokenizerFiles } from '../../src-main/models/demo/tiny-llava';
import type { ChatMessage } from '../../src-main/datasets/types';
import { WhitespaceTokenizer, chatml } from './standin';

const conv: ChatMessage[] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: '<image>\nWhat is it?' },
  { role: 'assistant', content: 'A red square.' },
  { role: 'user', content: 'Sure?' },
  { role: 'assistant', content: 'Yes, quite sure.' },
];

/** The loss tokens as text, one string per contiguous span. */
function lossSpans(ids: number[], mask: number[], decode: (ids: number[]) => string): string[] {
  const out: string[] = [];
  let cur: number[] = [];
  ids.forEach((id, k) => {
    if (mask[k]) cur.push(id);
    else if (cur.length) {
      out.push(decode(cur));
      cur = [];
    }
  });
  if (cur.length) out.push(decode(cur));
  return out;
}

test('ChatML with a stand-in tokenizer: only assistant content + <|im_end|> are in the loss', () => {
  const tk = new WhitespaceTokenizer();
  const r = renderConversation(conv, { template: chatml, tokenizer: tk });
  assert.equal(r.text, chatml.render(conv));
  assert.deepEqual(r.ids, tk.encode(r.text), 'ids are the tokenization of the whole text');
  assert.equal(r.lossMask.length, r.ids.length);
  assert.deepEqual(
    lossSpans(r.ids, r.lossMask, (x) => tk.decode(x)),
    ['A red square.<|im_end|>', 'Yes, quite sure.<|im_end|>'],
  );
  assert.equal(r.imageCount, 1);
});

test('image placeholders expand to the model image token count, never in the loss', () => {
  const tk = new WhitespaceTokenizer();
  const imageId = tk.encode('<image>')[0];
  const setup: RenderSetup = { template: chatml, tokenizer: tk, image: { tokenId: imageId, count: 9 } };
  const r = renderConversation(conv, setup);
  const plain = renderConversation(conv, { template: chatml, tokenizer: tk });
  assert.equal(r.ids.length, plain.ids.length + 8);
  assert.equal(r.ids.filter((i) => i === imageId).length, 9);
  r.ids.forEach((id, k) => id === imageId && assert.equal(r.lossMask[k], 0));
  assert.equal(
    r.lossMask.reduce((a, b) => a + b, 0),
    plain.lossMask.reduce((a, b) => a + b, 0),
  );
});

test('a template that rewrites earlier turns is rejected clearly', () => {
  const tk = new WhitespaceTokenizer();
  const sneaky = {
    render: (m: ChatMessage[], o: { addGenerationPrompt?: boolean } = {}) => `${m.length} turns:` + chatml.render(m, o),
  };
  assert.throws(
    () => renderConversation(conv, { template: sneaky, tokenizer: tk }),
    (e: unknown) => e instanceof RenderError && /not prefix-stable at message 2/.test(e.message),
  );
  assert.throws(() => renderConversation([], { template: chatml, tokenizer: tk }), /empty/);
});

test('real demo BPE tokenizer + LLaVA template: <s> once, answers + </s> in the loss, ids as in inference', () => {
  const files = demoTokenizerFiles();
  const tok = new LensTokenizer({ tokenizerJson: files.tokenizer, tokenizerConfig: files.tokenizerConfig });
  const template = new ChatTemplate(LLAVA_CHAT_TEMPLATE, { bos_token: tok.bosToken, eos_token: tok.eosToken });
  const setup: RenderSetup = { template, tokenizer: tok, image: { tokenId: tok.imageTokenId(), count: 4 } };
  const msgs = conv.slice(1);
  const r = renderConversation(msgs, setup);
  assert.equal(r.ids[0], tok.bosTokenId);
  assert.equal(r.ids.filter((i) => i === tok.bosTokenId).length, 1);
  assert.deepEqual(
    lossSpans(r.compactIds, r.compactMask, (x) => tok.decode(x)),
    [' A red square.</s>', ' Yes, quite sure.</s>'],
  );
  // The prompt the model sees at inference (generation prompt after the first question) is a prefix of the ids.
  const prompt = tok.encode(template.render(msgs.slice(0, 1), { addGenerationPrompt: true }));
  assert.deepEqual(r.compactIds.slice(0, prompt.length), prompt);
  assert.equal(r.ids.filter((i) => i === tok.imageTokenId()).length, 4);
});

test('renderItem: one sample per caption and per run of QA pairs; previewItem lists tokens with inLoss', () => {
  const tk = new WhitespaceTokenizer();
  const imageId = tk.encode('<image>')[0];
  const setup: RenderSetup = { template: chatml, tokenizer: tk, image: { tokenId: imageId, count: 3 } };
  const item = {
    id: 7,
    hasImage: true,
    annotations: [
      { kind: 'caption' as const, data: { text: 'A cat.' } },
      { kind: 'qa' as const, data: { question: 'Colour?', answer: 'Black.' } },
      { kind: 'qa' as const, data: { question: 'Size?', answer: 'Small.' } },
    ],
  };
  const samples = renderItem(item, setup);
  assert.deepEqual(
    samples.map((s) => s.key),
    ['7#0', '7#1'],
  );
  assert.deepEqual(
    samples.map((s) => s.imageCount),
    [1, 1],
  );
  const pv = previewItem(item, setup);
  assert.equal(pv[1].kind, 'qa');
  assert.equal(
    pv[1].text,
    '<|im_start|>user\n<image>\nColour?<|im_end|>\n<|im_start|>assistant\nBlack.<|im_end|>\n<|im_start|>user\nSize?<|im_end|>\n<|im_start|>assistant\nSmall.<|im_end|>\n',
  );
  assert.equal(
    pv[1].tokens
      .filter((t) => t.inLoss)
      .map((t) => t.text)
      .join(''),
    'Black.<|im_end|>Small.<|im_end|>',
  );
  assert.deepEqual(
    pv[1].tokens.find((t) => t.id === imageId),
    { id: imageId, text: '<image>', inLoss: false, repeat: 3 },
  );
  assert.equal(pv[1].totalTokens, samples[1].ids.length);
  assert.equal(
    pv[1].lossTokens,
    samples[1].lossMask.reduce((a, b) => a + b, 0),
  );
});

test('a template with {% generation %} puts exactly its generation spans in the loss (the published llava-1.5 template)', async () => {
  const { readFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const files = demoTokenizerFiles();
  const tok = new LensTokenizer({ tokenizerJson: files.tokenizer, tokenizerConfig: files.tokenizerConfig });
  const src = (
    JSON.parse(readFileSync(join(import.meta.dirname, '../fixtures/models/chat-templates/llava-1.5.json'), 'utf8')) as {
      chat_template: string;
    }
  ).chat_template;
  const template = new ChatTemplate(
    src,
    { bos_token: tok.bosToken, eos_token: tok.eosToken },
    'llava-1.5/chat_template.json: field "chat_template"',
  );
  assert.equal(template.hasGeneration, true);
  const setup: RenderSetup = { template, tokenizer: tok, image: { tokenId: tok.imageTokenId(), count: 4 } };
  const r = renderConversation(conv.slice(1), setup);
  // string content became parts: the image first, then the text; the answers are the generation blocks
  assert.equal(r.text, 'USER: <image>\nWhat is it? ASSISTANT: A red square. USER: Sure? ASSISTANT: Yes, quite sure. ');
  const spans = lossSpans(r.compactIds, r.compactMask, (x) => tok.decode(x));
  // each span runs from the answer's first token to the token holding its last character (the trailing space),
  // as transformers' char_to_token mask does; nothing of "USER:"/"ASSISTANT:" headers before the answers
  assert.equal(spans.length, 2);
  assert.ok(spans[0].startsWith(' A red square.') || spans[0].startsWith('A red square.'), spans[0]);
  assert.ok(spans[1].includes('Yes, quite sure.'), spans[1]);
  assert.ok(!spans.some((s) => s.includes('ASSISTANT')), JSON.stringify(spans));
  assert.equal(r.ids.filter((i) => i === tok.imageTokenId()).length, 4);
});

test('a template that writes no image placeholder is an error naming it, not a silently ignored image', () => {
  const files = demoTokenizerFiles();
  const tok = new LensTokenizer({ tokenizerJson: files.tokenizer, tokenizerConfig: files.tokenizerConfig });
  // a parts template that only prints text parts: the image part is dropped
  const template = new ChatTemplate(
    "{% for m in messages %}{{ m['role'] }}: {% for p in m['content'] %}{% if p['type'] == 'text' %}{{ p['text'] }}{% endif %}{% endfor %}\n{% endfor %}",
    { bos_token: tok.bosToken, eos_token: tok.eosToken },
    'folder/chat_template.jinja',
  );
  assert.equal(template.contentStyle, 'parts');
  assert.equal(template.writesImages, false);
  const setup: RenderSetup = { template, tokenizer: tok, image: { tokenId: tok.imageTokenId(), count: 4 } };
  assert.throws(
    () => renderConversation(conv.slice(1, 3), setup),
    /^Error: folder\/chat_template\.jinja: the conversation has 1 image\(s\) but the rendered text holds 0 image token\(s\).*the template writes no image placeholder|folder\/chat_template\.jinja: the conversation has 1 image\(s\) but the rendered text holds 0 image token/,
  );
});
