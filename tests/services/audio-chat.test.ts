// An audio LLM in the app, through the dispatcher: models.import registers an Ultravox-layout folder as an
// 'audio-llm' (what it takes, its encoder, what it cannot do yet), chat.generate answers about a WAV clip with the
// KV-cached generator (same tokens as the generator called directly), stores the clip in the media store, reuses
// it on a follow-up turn, and refuses mismatched inputs and features it lacks with errors naming the field.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createBackend, type Backend } from '../../src-main/services/backend';
import type { ChatHostOptions } from '../../src-main/services/chat';
import { writeTinyAudioLlm } from '../../src-main/models/demo/tiny-audio-llm';
import { writeTinyLlava } from '../../src-main/models/demo/tiny-llava';
import { toneSample } from '../../src-main/models/demo/tones';
import { clipFeatures, loadAudioLlm } from '../../src-main/models/audio/ultravox';
import { promptIds } from '../../src-main/models/audio/train';
import { AudioLlmCachedGenerator } from '../../src-main/models/audio/generate';
import { buildTrainableAudioLlm } from '../../src-main/models/audio/train';
import { loadAudioAdapter, mergeAudioAdapter, saveAudioAdapter } from '../../src-main/models/audio/adapter';
import { decodeAudioFile } from '../../src-main/media/audio';
import { mediaPath } from '../../src-main/datasets/media-store';
import { tempDir } from '../helpers/tmp';
import { failOn as fail, okOn as ok } from '../helpers/dispatch';
import { wav } from '../helpers/wav';

const tmp = tempDir('audio-chat-');
const quiet = { error() {}, warn() {} };
const backends: Backend[] = [];
let modelDir = '';
const llavaDir = join(tmp.dir, 'tiny-llava');
const clipFile = join(tmp.dir, 'tones.wav');
const sample = toneSample(7, 1);
let expected: number[] = [];
let expectedTuned: number[] = [];
const adapterDir = join(tmp.dir, 'adapter');

function newBackend(
  name: string,
  chat: ChatHostOptions,
): { backend: Backend; events: { event: string; payload: any }[] } {
  const backend = createBackend({ dataDir: join(tmp.dir, name), dbFile: ':memory:', host: 'test', log: quiet, chat });
  const events: { event: string; payload: any }[] = [];
  backend.events.subscribe((event, payload) => events.push({ event, payload }));
  backends.push(backend);
  return { backend, events };
}

before(async () => {
  modelDir = writeTinyAudioLlm(join(tmp.dir, 'audio'), 5, { stackFactor: 4, initStd: 0.2 }).dir;
  writeTinyLlava(llavaDir, 0);
  writeFileSync(clipFile, wav(sample.samples, 16000));
  // the reference: the cached generator called directly on the decoded file
  const m = loadAudioLlm(modelDir);
  try {
    const d = await decodeAudioFile(clipFile);
    const f = clipFeatures(m.features, [{ samples: d.samples, sampleRate: d.sampleRate }]);
    const g = await AudioLlmCachedGenerator.create(
      { config: m.config, weights: m.weights },
      m.features.config.nbMaxFrames,
    );
    try {
      expected = (await g.greedy(promptIds(m, sample.question), f, 8, { stopAtEos: true })).ids;
    } finally {
      await g.dispose();
    }
    // a projector adapter with other weights, and its answer from the merged weights
    const t = buildTrainableAudioLlm(m, 'projector', null, m.features.config.nbMaxFrames);
    const v = t.initialValues(0);
    for (const k of Object.keys(v)) v[k] = v[k].map((x, i) => x + 0.5 * Math.sin(i + 1));
    saveAudioAdapter(adapterDir, m, 'projector', null, v, modelDir);
    const a = loadAudioAdapter(adapterDir, m);
    const gt = await AudioLlmCachedGenerator.create(
      { config: m.config, weights: mergeAudioAdapter(m, a.method, a.lora, a.values) },
      m.features.config.nbMaxFrames,
    );
    try {
      expectedTuned = (await gt.greedy(promptIds(m, sample.question), f, 8, { stopAtEos: true })).ids;
    } finally {
      await gt.dispose();
    }
  } finally {
    m.close();
  }
});

after(async () => {
  for (const b of backends) {
    await b.shutdown();
    b.close();
  }
  tmp.cleanup();
});

test('models.import registers an Ultravox-layout folder as an audio LLM and says what it cannot do yet', async () => {
  const { backend: b } = newBackend('import', { inProcess: true });
  const { model, report } = await ok(b, 'models.import', { path: modelDir, name: 'tiny audio' });
  assert.equal(report.kind, 'audio-llm');
  assert.equal(report.modelType, 'ultravox');
  assert.equal(report.family, 'ultravox-llama');
  assert.deepEqual(report.inputs, ['text', 'audio']);
  assert.equal(report.audio.audioTokens, 13);
  assert.equal(report.audio.stackFactor, 4);
  assert.equal(report.vision, null);
  assert.ok(report.params > 0 && report.bytes > 0);
  assert.ok(
    report.warnings.some((w: string) => /not available for audio LLMs yet/.test(w) && /GGUF/.test(w)),
    report.warnings.join('; '),
  );
  const { models } = await ok(b, 'models.list', {});
  assert.deepEqual(
    models.map((m: any) => [m.id, m.report.kind]),
    [[model.id, 'audio-llm']],
  );
  // an image model says what it takes too
  const llava = await ok(b, 'models.inspect', { path: llavaDir });
  assert.deepEqual(llava.inputs, ['text', 'image']);
  // features it does not have: a clear refusal naming the field
  for (const [method, params] of [
    ['models.merge', { model: { id: model.id }, adapter: { path: tmp.dir }, name: 'merged' }],
    ['models.exportGguf', { model: { id: model.id }, dir: join(tmp.dir, 'gguf') }],
  ] as const) {
    const e = await fail(b, method, params);
    assert.equal(e.code, 'invalid_request', method);
    assert.equal(e.field, 'model.id', method);
    assert.match(e.message, /not available for audio LLMs yet/, method);
  }
});

test('chat.generate with an audio clip in the worker: cached answer, streamed, clip stored and reused on a follow-up', async () => {
  const { backend: b, events } = newBackend('worker', { inProcess: false });
  const { model } = await ok(b, 'models.import', { path: modelDir });
  const r = await ok(b, 'chat.generate', {
    requestId: 'a1',
    modelId: model.id,
    audio: { path: clipFile },
    messages: [{ role: 'user', content: sample.question }],
    options: { maxNewTokens: 8 },
  });
  assert.deepEqual(r.ids, expected, 'same tokens as the cached generator called directly');
  const tokens = events.filter((e) => e.event === 'chat.token').map((e) => e.payload);
  assert.deepEqual(
    tokens.map((t) => t.id),
    r.ids,
  );
  assert.equal(tokens.map((t) => t.text).join(''), r.text);
  const { messages } = await ok(b, 'chats.get', { id: r.chatId });
  assert.deepEqual(
    messages.map((m: any) => m.role),
    ['user', 'assistant'],
  );
  const user = messages[0];
  assert.match(user.audioHash, /^[0-9a-f]{64}$/);
  assert.equal(user.audioExt, 'wav');
  assert.equal(user.imageHash, null);
  assert.ok(existsSync(mediaPath(join(tmp.dir, 'worker'), user.audioHash, 'wav')), 'the clip is in the media store');
  // 13 audio tokens + the question's
  assert.ok(r.promptTokens > 13);
  const f = await ok(b, 'chat.generate', {
    requestId: 'a2',
    chatId: r.chatId,
    messages: [{ role: 'user', content: 'And again?' }],
    options: { maxNewTokens: 4 },
  });
  assert.ok(f.promptTokens > r.promptTokens + r.ids.length, 'the follow-up still holds the stored clip');
  assert.equal(f.ids.length > 0, true);
  // uploaded bytes decode the same way
  const up = await ok(b, 'chat.generate', {
    requestId: 'a3',
    modelId: model.id,
    audio: { base64: Buffer.from(wav(sample.samples, 16000)).toString('base64') },
    messages: [{ role: 'user', content: sample.question }],
    options: { maxNewTokens: 8 },
    save: false,
  });
  assert.deepEqual(up.ids, expected);
});

test('chat.generate refuses mismatched inputs and bad clips, naming the field', async () => {
  const { backend: b } = newBackend('errors', { inProcess: true });
  const { model } = await ok(b, 'models.import', { path: modelDir });
  let e = await fail(b, 'chat.generate', {
    requestId: 'e1',
    modelDir: llavaDir,
    audio: { path: clipFile },
    messages: [{ role: 'user', content: 'hi' }],
  });
  assert.equal(e.code, 'invalid_request');
  assert.equal(e.field, 'audio');
  assert.match(e.message, /cannot take audio/);
  e = await fail(b, 'chat.generate', {
    requestId: 'e2',
    modelId: model.id,
    image: { path: clipFile },
    messages: [{ role: 'user', content: 'hi' }],
  });
  assert.equal(e.field, 'image');
  assert.match(e.message, /audio clips, not images/);
  e = await fail(b, 'chat.generate', {
    requestId: 'e3',
    modelId: model.id,
    audio: { base64: Buffer.from('not a sound at all').toString('base64') },
    messages: [{ role: 'user', content: 'hi' }],
  });
  assert.equal(e.code, 'invalid_request');
  assert.equal(e.field, 'audio.base64');
  assert.match(e.message, /uploaded audio: .*not a supported audio file/);
  e = await fail(b, 'chat.generate', {
    requestId: 'e4',
    modelId: model.id,
    audio: { path: join(tmp.dir, 'missing.wav') },
    messages: [{ role: 'user', content: 'hi' }],
  });
  assert.equal(e.code, 'not_found');
  assert.equal(e.field, 'audio.path');
  // nothing half-written: the refused requests stored no chat
  assert.deepEqual((await ok(b, 'chats.list', {})).chats, []);
});

test('chat.generate with an audio adapter answers as the merged weights do; a broken adapter names the field', async () => {
  const { backend: b } = newBackend('adapter', { inProcess: true });
  assert.notDeepEqual(expectedTuned, expected, 'the adapter changes the answer');
  const r = await ok(b, 'chat.generate', {
    requestId: 't1',
    modelDir,
    adapterDir,
    audio: { path: clipFile },
    messages: [{ role: 'user', content: sample.question }],
    options: { maxNewTokens: 8 },
    device: 'cpu',
  });
  assert.deepEqual(r.ids, expectedTuned);
  assert.deepEqual(r.device, { provider: 'cpu', reason: 'chosen for this chat' });
  assert.equal((await ok(b, 'chats.get', { id: r.chatId })).chat.adapterDir, adapterDir);
  const e = await fail(b, 'chat.generate', {
    requestId: 't2',
    modelDir,
    adapterDir: tmp.dir,
    audio: { path: clipFile },
    messages: [{ role: 'user', content: sample.question }],
    save: false,
  });
  assert.equal(e.code, 'invalid_request');
  assert.equal(e.field, 'adapter');
  assert.match(e.message, /not an adapter folder/);
});
