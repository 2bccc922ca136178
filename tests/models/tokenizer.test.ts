import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LensTokenizer } from '../../src-main/models/tokenizer';
import { ChatTemplate, LLAVA_CHAT_TEMPLATE, type ChatMessage } from '../../src-main/models/chat-template';
import { demoTokenizerFiles, DEMO_SPECIAL_TOKENS } from '../../src-main/models/demo/tiny-llava';
import { trainByteLevelBpe } from '../../src-main/models/demo/bpe';

const files = demoTokenizerFiles();
const tok = new LensTokenizer({ tokenizerJson: files.tokenizer, tokenizerConfig: files.tokenizerConfig });

test('demo tokenizer: special tokens, <image> as one token, <s> added by the post-processor', () => {
  assert.deepEqual(
    DEMO_SPECIAL_TOKENS.map((t) => tok.tokenToId(t)),
    [0, 1, 2, 3, 4],
  );
  assert.equal(tok.bosTokenId, 1);
  assert.equal(tok.eosTokenId, 2);
  assert.equal(tok.unkTokenId, 0);
  assert.equal(tok.padTokenId, 3);
  assert.equal(tok.imageTokenId(), 4);
  assert.deepEqual([...tok.specialIds].sort(), [0, 1, 2, 3, 4]);
  const ids = tok.encode('<image>\nHow many stars are there?');
  assert.equal(ids[0], 1);
  assert.equal(ids[1], 4);
  assert.equal(ids.filter((i) => i === 4).length, 1);
  assert.deepEqual(tok.encode('<image>\nHow many stars are there?', { addSpecialTokens: false }), ids.slice(1));
  // words of the training text became single tokens
  assert.deepEqual(tok.tokens('How many triangles are there?', { addSpecialTokens: false }), [
    'How',
    'Ġmany',
    'Ġtriangles',
    'Ġare',
    'Ġthere',
    '?',
  ]);
  assert.ok(tok.vocabSize > 300 && tok.vocabSize <= 512, `vocab ${tok.vocabSize}`);
});

test('demo tokenizer round trip: decode(encode(x)) === x, including text it never saw', () => {
  for (const s of [
    'USER: <image>\nWhat color is the star?\nASSISTANT: yellow</s>',
    'A red circle, two blue squares and a yellow star.',
    '  leading spaces, tabs\tand\nnewlines\n\n',
    'Zürich 東京 😀 emoji and ünïcödé',
    "don't won't it's 1234567890 #$%&*()",
    '',
  ]) {
    const ids = tok.encode(s, { addSpecialTokens: false });
    assert.equal(tok.decode(ids), s);
    assert.ok(!ids.includes(0), `no <unk> for ${JSON.stringify(s)}`);
  }
  assert.equal(tok.decode(tok.encode('two squares')), '<s>two squares');
  assert.equal(tok.decode(tok.encode('two squares'), { skipSpecialTokens: true }), 'two squares');
  assert.throws(() => tok.decode([1, 99999]), /token id 99999 is outside the vocabulary/);
});

test('stream decoder emits each piece once, holding back incomplete UTF-8', () => {
  const text = ' yellow 😀 star ü';
  const ids = tok.encode(text, { addSpecialTokens: false });
  const sd = tok.streamDecoder();
  const pieces = [...ids, 2].map((id) => sd.push(id));
  assert.equal(pieces.join(''), text);
  assert.ok(pieces.every((p) => !p.includes('\uFFFD')));
  // the emoji is 4 bytes = 4 byte tokens here: three pushes give nothing, the fourth the character
  assert.ok(pieces.filter((p) => p === '').length >= 3);
});

test('BPE training is deterministic and merges the most frequent pairs first', () => {
  const texts = ['low lower lowest', 'low low newer newest', 'wider widest low'];
  const a = trainByteLevelBpe(texts, { vocabSize: 300, specialTokens: ['<unk>'], bosToken: null });
  const b = trainByteLevelBpe(texts, { vocabSize: 300, specialTokens: ['<unk>'], bosToken: null });
  assert.deepEqual(a, b);
  const merges = (a.model as { merges: [string, string][] }).merges;
  // "Ġl"+"o" ... : 'l','o' appear in 'low' x6 (4 with a leading space) -> the first merge pairs l and o or Ġ and l
  assert.ok(['l o', 'Ġ l', 'o w'].includes(merges[0].join(' ')), merges[0].join(' '));
  const t = new LensTokenizer({ tokenizerJson: a, tokenizerConfig: {} });
  assert.deepEqual(t.tokens('low', { addSpecialTokens: false }), ['low']);
  assert.equal(t.decode(t.encode('lowest newer')), 'lowest newer', 'no bos token without a template post-processor');
});

test('LLaVA-1.5 style template: list content with images, plain string content, system, generation prompt', () => {
  const ct = new ChatTemplate(LLAVA_CHAT_TEMPLATE, { bos_token: '<s>', eos_token: '</s>' });
  const msgs: ChatMessage[] = [
    { role: 'system', content: 'You answer briefly.' },
    { role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'How many stars are there?' }] },
    { role: 'assistant', content: [{ type: 'text', text: '2' }] },
    { role: 'user', content: 'And circles?' },
  ];
  assert.equal(
    ct.render(msgs, { addGenerationPrompt: true }),
    'You answer briefly.\nUSER: <image>\nHow many stars are there?\nASSISTANT: 2</s>\nUSER: And circles?\nASSISTANT:',
  );
  assert.equal(ct.render([{ role: 'user', content: 'Hi' }]), 'USER: Hi\n');
  // rendered prompt + answer tokenize to prompt tokens followed by answer tokens
  const prompt = ct.render([msgs[1]], { addGenerationPrompt: true });
  const full = ct.render([msgs[1], msgs[2]]);
  assert.ok(full.startsWith(prompt));
  const pIds = tok.encode(prompt);
  const fIds = tok.encode(full);
  assert.deepEqual(fIds.slice(0, pIds.length), pIds);
  assert.equal(tok.decode(fIds.slice(pIds.length)), ' 2</s>\n');
});

test("published templates render: llava-hf's (selectattr + generation tags) and a ChatML one", () => {
  const llavaHf =
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}";
  const ct = new ChatTemplate(llavaHf);
  assert.equal(
    ct.render([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'What is shown?' }] }], {
      addGenerationPrompt: true,
    }),
    'USER: <image>\nWhat is shown? ASSISTANT:',
  );
  const chatml =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
  assert.equal(
    new ChatTemplate(chatml).render([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true }),
    '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
  );
  const withBos = new ChatTemplate(
    "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{{ eos_token }}{% endfor %}",
    { bos_token: '<s>', eos_token: '</s>' },
  );
  assert.equal(withBos.render([{ role: 'user', content: 'x' }]), '<s>x</s>');
  assert.throws(
    () => new ChatTemplate('{% if %}', {}, 'some/tokenizer_config.json: field "chat_template"'),
    /some\/tokenizer_config\.json: field "chat_template": template does not parse/,
  );
  assert.throws(
    () => new ChatTemplate("{{ raise_exception('no system role') }}", {}, 'X').render([]),
    /X: rendering failed/,
  );
});
