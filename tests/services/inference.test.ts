// inference.generate and inference.score through the dispatcher, on the tiny LLaVA, the tiny BLIP VQA and a tiny
// CLIP: the same tokens and losses as the library, tokens streamed as inference.token events, errors naming the
// field, and a request whose signal is aborted stops as cancelled.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { createBackend, type Backend } from '../../src-main/services/backend';
import { writeTinyLlava } from '../../src-main/models/demo/tiny-llava';
import { writeTinyBlip } from '../../src-main/models/demo/tiny-blip';
import { writeTinyContrastive } from '../../src-main/models/demo/tiny-contrastive';
import { makeSample } from '../../src-main/models/demo/shapes';
import { loadGenerator } from '../../src-main/models/generate';
import { tempDir } from '../helpers/tmp';
import { failOn as fail, okOn as ok } from '../helpers/dispatch';
import { BLIP_ANSWERS, BLIP_QUESTIONS, BLIP_SEED, blipImages } from '../fixtures/models/blip-cases';

const tmp = tempDir('inference-');
const quiet = { error() {}, warn() {} };
const llava = join(tmp.dir, 'llava');
const blip = join(tmp.dir, 'blip');
const clip = join(tmp.dir, 'clip');
const image = join(tmp.dir, 'img.png');
const llavaData = join(tmp.dir, 'llava.json');
const blipData = join(tmp.dir, 'vqa.jsonl');
const question = 'How many squares are there?';
let backend: Backend;
const events: { event: string; payload: any }[] = [];

before(async () => {
  writeTinyLlava(llava, 0, { initStd: 0.2 });
  writeTinyBlip(blip, BLIP_SEED);
  writeTinyContrastive(clip, 'clip', 1, {
    imageSize: 32,
    patchSize: 8,
    hidden: 32,
    layers: 1,
    heads: 2,
    std: 0.1,
    textPositions: 32,
  });
  const s = makeSample(5, 3, { size: 64 });
  await sharp(Buffer.from(s.rgb), { raw: { width: 64, height: 64, channels: 3 } })
    .png()
    .toFile(image);
  writeFileSync(
    llavaData,
    JSON.stringify([
      {
        id: 'a',
        image: 'img.png',
        conversations: [
          { from: 'human', value: `<image>\n${question}` },
          { from: 'gpt', value: 'Two.' },
        ],
      },
      {
        id: 'b',
        image: 'img.png',
        conversations: [
          { from: 'human', value: '<image>\nWhat is red?' },
          { from: 'gpt', value: 'A square.' },
        ],
      },
    ]),
  );
  const lines: string[] = [];
  for (const [i, img] of blipImages().entries()) {
    await sharp(Buffer.from(img.data), { raw: { width: img.width, height: img.height, channels: 3 } })
      .png()
      .toFile(join(tmp.dir, `b${i}.png`));
    lines.push(JSON.stringify({ image: `b${i}.png`, question: BLIP_QUESTIONS[i], answer: BLIP_ANSWERS[i] }));
  }
  writeFileSync(blipData, lines.join('\n') + '\n');
  // scoring in a real backend worker (the default), generation in this thread (the chat runtime's pool)
  backend = createBackend({
    dataDir: join(tmp.dir, 'data'),
    dbFile: ':memory:',
    host: 'test',
    log: quiet,
    chat: { inProcess: true },
  });
  backend.events.subscribe((event, payload) => events.push({ event, payload }));
});

after(async () => {
  await backend.shutdown();
  backend.close();
  tmp.cleanup();
});

test('inference.generate: the library tokens, streamed as inference.token events', async () => {
  const g = await loadGenerator(llava, null, { cacheDir: join(tmp.dir, 'direct-cache') });
  const want = await g.generate({ image, messages: [{ role: 'user', content: question }] }, { maxNewTokens: 6 });
  await g.dispose();
  events.length = 0;
  const r = await ok(backend, 'inference.generate', {
    requestId: 'g1',
    model: { path: llava },
    image: { path: image },
    messages: [{ role: 'user', content: question }],
    options: { maxNewTokens: 6 },
  });
  assert.deepEqual(r.ids, want.ids);
  assert.equal(r.text, want.text);
  assert.equal(r.finishReason, 'length');
  assert.equal(typeof r.timings.prefillMs, 'number');
  const tokens = events.filter((e) => e.event === 'inference.token' && e.payload.requestId === 'g1');
  assert.equal(tokens.length, want.ids.length);
  assert.equal(tokens.map((e) => e.payload.text).join(''), want.text);
});

test('inference.generate: bad input names the field', async () => {
  assert.equal(
    (
      await fail(backend, 'inference.generate', {
        model: { path: join(tmp.dir, 'nowhere') },
        messages: [{ role: 'user', content: 'hi' }],
      })
    ).field,
    'model.path',
  );
  assert.equal(
    (
      await fail(backend, 'inference.generate', {
        model: { path: llava },
        messages: [{ role: 'system', content: 'be brief' }],
      })
    ).field,
    'messages',
  );
  assert.equal(
    (
      await fail(backend, 'inference.generate', {
        model: { path: llava },
        image: { path: join(tmp.dir, 'nope.png') },
        messages: [{ role: 'user', content: 'hi' }],
      })
    ).field,
    'image.path',
  );
  assert.equal(
    (
      await fail(backend, 'inference.generate', {
        model: { path: llava },
        messages: [{ role: 'user', content: 'hi' }],
        options: { beams: 2 },
      })
    ).field,
    'options.beams',
  );
  const e = await fail(backend, 'inference.generate', {
    model: { path: llava },
    messages: [{ role: 'user', content: 'hi' }],
    options: { temperature: 1, topP: 2 },
  });
  assert.equal(e.field, 'options');
  assert.equal(
    (
      await fail(backend, 'inference.generate', {
        model: { path: llava },
        adapter: { runId: 99 },
        messages: [{ role: 'user', content: 'hi' }],
      })
    ).field,
    'adapter.runId',
  );
});

test('inference.generate: an aborted request is cancelled', async () => {
  const ac = new AbortController();
  ac.abort();
  const env = await backend.dispatcher.dispatch(
    'inference.generate',
    { model: { path: llava }, messages: [{ role: 'user', content: 'hi' }] },
    { signal: ac.signal },
  );
  assert.equal(env.ok, false);
  assert.equal(!env.ok && env.error.code, 'cancelled');
});

test('inference.generate on a BLIP VQA folder: a greedy answer; BLIP refusals name the field', async () => {
  const r = await ok(backend, 'inference.generate', {
    requestId: 'b1',
    model: { path: blip },
    image: { path: join(tmp.dir, 'b0.png') },
    messages: [{ role: 'user', content: BLIP_QUESTIONS[0] }],
  });
  assert.ok(r.ids.length > 0);
  assert.equal(
    events
      .filter((e) => e.event === 'inference.token' && e.payload.requestId === 'b1')
      .map((e) => e.payload.text)
      .join(''),
    r.text,
  );
  assert.equal(
    (await fail(backend, 'inference.generate', { model: { path: blip }, messages: [{ role: 'user', content: 'hi' }] }))
      .field,
    'image',
  );
  assert.equal(
    (
      await fail(backend, 'inference.generate', {
        model: { path: blip },
        image: { path: join(tmp.dir, 'b0.png') },
        messages: [{ role: 'user', content: 'hi' }],
        options: { temperature: 0.7 },
      })
    ).field,
    'options.temperature',
  );
});

test('inference.score: the library losses per sample, in a backend worker', async () => {
  const r = await ok(backend, 'inference.score', { model: { path: llava }, data: { path: llavaData } });
  assert.equal(r.kind, 'tokens');
  assert.equal(r.samples.length, 2);
  const g = await loadGenerator(llava, null, { cacheDir: join(tmp.dir, 'direct-cache') });
  const [want] = await g.score([
    {
      image,
      messages: [
        { role: 'user', content: `<image>\n${question}` },
        { role: 'assistant', content: 'Two.' },
      ],
    },
  ]);
  await g.dispose();
  assert.equal(r.samples[0].tokens, want.tokens);
  assert.ok(Math.abs(r.samples[0].loss - want.loss) < 1e-9);
  const limited = await ok(backend, 'inference.score', { model: { path: llava }, data: { path: llavaData }, limit: 1 });
  assert.equal(limited.samples.length, 1);
});

test('inference.score on BLIP and CLIP folders', async () => {
  const b = await ok(backend, 'inference.score', { model: { path: blip }, data: { path: blipData } });
  assert.equal(b.kind, 'tokens');
  assert.equal(b.samples.length, BLIP_QUESTIONS.length);
  assert.equal(b.labelSmoothing, 0.1);
  const capData = join(tmp.dir, 'captions.jsonl');
  writeFileSync(
    capData,
    blipImages()
      .map((_, i) => JSON.stringify({ image: `b${i}.png`, caption: `picture ${i}` }))
      .join('\n') + '\n',
  );
  const c = await ok(backend, 'inference.score', { model: { path: clip }, data: { path: capData } });
  assert.equal(c.kind, 'contrastive');
  assert.equal(c.logitsPerText.length, blipImages().length);
  assert.ok(Number.isFinite(c.loss));
  const one = join(tmp.dir, 'one.jsonl');
  writeFileSync(one, JSON.stringify({ image: 'b0.png', caption: 'alone' }) + '\n');
  const e = await fail(backend, 'inference.score', { model: { path: clip }, data: { path: one } });
  assert.equal(e.field, 'data');
  assert.match(e.message, /at least 2 pairs/);
});

test('inference.evaluate: zero-shot and recall of a CLIP folder on a data split; bad input names the field', async () => {
  const capData = join(tmp.dir, 'labelled.jsonl');
  writeFileSync(
    capData,
    blipImages()
      .map((_, i) => JSON.stringify({ image: `b${i}.png`, caption: `picture ${i}`, tags: [`class ${i % 2}`] }))
      .join('\n') + '\n',
  );
  const r = await ok(backend, 'inference.evaluate', {
    model: { path: clip },
    adapter: undefined,
    data: { path: capData, split: 'train' },
  });
  assert.equal(r.items, blipImages().length);
  assert.equal(r.pairs, blipImages().length);
  assert.ok(r.base.recall && r.base.recall.textToImage['R@1'] >= 0 && r.base.recall.textToImage['R@1'] <= 1);
  assert.equal(r.adapter, undefined);
  assert.equal(
    (await fail(backend, 'inference.evaluate', { model: { path: clip }, data: { path: capData, split: 'dev' } })).field,
    'data.split',
  );
  assert.equal(
    (await fail(backend, 'inference.evaluate', { model: { path: clip }, data: { path: capData } })).field,
    'data',
  );
  assert.equal(
    (await fail(backend, 'inference.evaluate', { model: { path: llava }, data: { path: capData, split: 'train' } }))
      .field,
    'model',
  );
});

test('inference.embed: normalized image and caption embeddings; bad input names the field', async () => {
  const capData = join(tmp.dir, 'embed.jsonl');
  writeFileSync(
    capData,
    [JSON.stringify({ image: 'b0.png', caption: 'a picture' }), JSON.stringify({ image: 'b1.png' })].join('\n') + '\n',
  );
  const r = await ok(backend, 'inference.embed', { model: { path: clip }, data: { path: capData } });
  assert.equal(r.items.length, 2);
  const norm = (v: number[]) => Math.sqrt(v.reduce((a, x) => a + x * x, 0));
  assert.ok(Math.abs(norm(r.items[0].imageEmbeds) - 1) < 1e-4 && Math.abs(norm(r.items[0].textEmbeds) - 1) < 1e-4);
  assert.equal(r.items[0].imageEmbeds.length, r.dim);
  assert.equal(r.items[1].textEmbeds, null);
  assert.equal(
    (await ok(backend, 'inference.embed', { model: { path: clip }, data: { path: capData }, limit: 1 })).items.length,
    1,
  );
  assert.equal(
    (await fail(backend, 'inference.embed', { model: { path: llava }, data: { path: capData } })).field,
    'model',
  );
  assert.equal(
    (await fail(backend, 'inference.embed', { model: { path: clip }, data: { path: capData }, limit: -1 })).field,
    'limit',
  );
});

test('inference.score: bad input names the field (across the worker boundary too)', async () => {
  assert.equal(
    (await fail(backend, 'inference.score', { model: { path: llava }, data: { path: join(tmp.dir, 'missing.jsonl') } }))
      .field,
    'data.path',
  );
  assert.equal(
    (await fail(backend, 'inference.score', { model: { path: llava }, data: { path: llavaData }, limit: 0 })).field,
    'limit',
  );
  writeFileSync(join(tmp.dir, 'bad.json'), '{ nope');
  const e = await fail(backend, 'inference.score', {
    model: { path: llava },
    data: { path: join(tmp.dir, 'bad.json') },
  });
  assert.equal(e.code, 'invalid_request');
  assert.equal(e.field, 'data');
  assert.equal((await fail(backend, 'inference.score', { model: { path: llava } })).field, 'data');
});

test('inference.train: a BLIP LoRA adapter in a folder, steps as inference.step events; bad input names the field', async () => {
  const outDir = join(tmp.dir, 'blip-adapter');
  events.length = 0;
  const r = await ok(backend, 'inference.train', {
    requestId: 't1',
    model: { path: blip },
    data: { path: blipData },
    outDir,
    options: { epochs: 1, batchSize: 2, lr: 1e-2 },
  });
  assert.equal(r.outDir, outDir);
  assert.ok(r.steps >= 1);
  assert.ok(existsSync(join(outDir, 'adapter_config.json')) && existsSync(join(outDir, 'adapter_model.safetensors')));
  const steps = events.filter((e) => e.event === 'inference.step' && e.payload.requestId === 't1');
  assert.equal(steps.length, r.steps);
  assert.equal(steps.at(-1)!.payload.loss, r.lastLoss);
  assert.match(r.notes[0], /^BLIP VQA: \d+ question\(s\) from split "train"/);
  assert.equal(
    (await fail(backend, 'inference.train', { model: { path: blip }, data: { path: blipData }, outDir })).field,
    'outDir',
  );
  const fresh = join(tmp.dir, 'fresh');
  assert.equal(
    (await fail(backend, 'inference.train', { model: { path: llava }, data: { path: blipData }, outDir: fresh })).field,
    'model',
  );
  assert.equal(
    (
      await fail(backend, 'inference.train', {
        model: { path: blip },
        data: { path: blipData },
        outDir: fresh,
        options: { rank: 'big' },
      })
    ).field,
    'options.rank',
  );
  const e = await fail(backend, 'inference.train', {
    model: { path: blip },
    data: { path: blipData },
    outDir: fresh,
    options: { targetModules: ['q_proj'] },
  });
  assert.equal(e.field, 'options');
  assert.match(e.message, /target module "q_proj" matches no linear layer/);
  assert.equal(existsSync(join(fresh, 'adapter_config.json')), false);
});

test('inference.train: an aborted request stops before the adapter is written', async () => {
  const outDir = join(tmp.dir, 'cancelled');
  mkdirSync(outDir);
  const ac = new AbortController();
  const off = backend.events.subscribe((event) => {
    if (event === 'inference.step') ac.abort();
  });
  const env = await backend.dispatcher.dispatch(
    'inference.train',
    { requestId: 't2', model: { path: blip }, data: { path: blipData }, outDir, options: { epochs: 3, batchSize: 1 } },
    { signal: ac.signal },
  );
  off();
  assert.equal(env.ok, false);
  assert.equal(!env.ok && env.error.code, 'cancelled');
  assert.equal(existsSync(join(outDir, 'adapter_config.json')), false);
});
