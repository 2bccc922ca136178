// Chat through the dispatcher with the tiny LLaVA: streamed chat.token events, saved chats/messages, follow-up turns
// that reuse the chat's image, cancel (queued in the worker, and mid-stream in-process), errors naming fields.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { createBackend, type Backend } from '../../src-main/services/backend';
import { conversationTurns, type ChatHostOptions } from '../../src-main/services/chat';
import { writeTinyLlava } from '../../src-main/models/demo/tiny-llava';
import { makeSample } from '../../src-main/models/demo/shapes';
import { loadGenerator } from '../../src-main/models/generate';
import { tempDir } from '../helpers/tmp';
import { failOn as fail, okOn as ok } from '../helpers/dispatch';

const tmp = tempDir('chat-');
const quiet = { error() {}, warn() {} };
const modelDir = join(tmp.dir, 'tiny-llava');
const imageFile = join(tmp.dir, 'shapes.png');
const question = 'How many squares are there?';
let expected: number[] = [];
const backends: Backend[] = [];

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
  writeTinyLlava(modelDir, 0, { initStd: 0.2 });
  const s = makeSample(5, 3, { size: 64 });
  await sharp(Buffer.from(s.rgb), { raw: { width: s.scene.size, height: s.scene.size, channels: 3 } })
    .png()
    .toFile(imageFile);
  // the reference answer, from a generator in this thread
  const g = await loadGenerator(modelDir, null, { cacheDir: join(tmp.dir, 'direct-cache') });
  expected = (
    await g.generate({ image: imageFile, messages: [{ role: 'user', content: question }] }, { maxNewTokens: 8 })
  ).ids;
  await g.dispose();
});

after(async () => {
  for (const b of backends) {
    await b.shutdown();
    b.close();
  }
  tmp.cleanup();
});

test('conversation turns: the latest image is tagged once, stray tags dropped', () => {
  const { turns, imageIndex } = conversationTurns([
    { role: 'user', content: 'first <image>', hasImage: true },
    { role: 'assistant', content: 'ok', hasImage: false },
    { role: 'user', content: 'second', hasImage: true },
  ]);
  assert.equal(imageIndex, 2);
  assert.deepEqual(
    turns.map((t) => t.content),
    ['first ', 'ok', '<image>\nsecond'],
  );
});

test('chat.generate in the worker: streamed tokens, saved turns, follow-up reuses the image, list/get/rename/delete', async () => {
  const { backend: b, events } = newBackend('worker', { inProcess: false });
  const r = await ok(b, 'chat.generate', {
    requestId: 'r1',
    modelDir,
    image: { path: imageFile },
    messages: [{ role: 'user', content: question }],
    options: { maxNewTokens: 8 },
  });
  assert.deepEqual(r.ids, expected, 'same tokens as a generator in this thread');
  assert.equal(r.finishReason, 'length');
  const tokens = events.filter((e) => e.event === 'chat.token').map((e) => e.payload);
  assert.deepEqual(
    tokens.map((t) => t.id),
    r.ids,
  );
  assert.deepEqual(
    tokens.map((t) => t.index),
    r.ids.map((_: number, i: number) => i),
  );
  assert.ok(tokens.every((t) => t.requestId === 'r1' && t.chatId === r.chatId));
  assert.equal(tokens.map((t) => t.text).join(''), r.text);
  assert.ok(
    events.some((e) => e.event === 'chat.status'),
    'loading is reported',
  );
  assert.ok(
    events.some((e) => e.event === 'chats.changed' && e.payload.kind === 'created' && e.payload.id === r.chatId),
  );

  const { chat, messages } = await ok(b, 'chats.get', { id: r.chatId });
  assert.equal(chat.title, question);
  assert.equal(chat.modelDir, modelDir);
  assert.equal(chat.adapterDir, null);
  assert.equal(chat.messageCount, 2);
  assert.deepEqual(
    messages.map((m: any) => [m.role, m.position]),
    [
      ['user', 0],
      ['assistant', 1],
    ],
  );
  assert.equal(messages[0].content, question);
  assert.match(messages[0].imageHash, /^[0-9a-f]{64}$/);
  assert.equal(messages[0].imageExt, 'png');
  assert.ok(
    existsSync(join(b.dataDir, 'images', messages[0].imageHash.slice(0, 2), `${messages[0].imageHash}.png`)),
    'image in the store',
  );
  assert.equal(messages[1].content, r.text);
  assert.deepEqual(r.message, messages[1]);
  assert.equal(messages[1].stats.tokens, 8);
  assert.equal(messages[1].stats.finishReason, 'length');
  assert.equal(messages[1].stats.promptTokens, r.promptTokens);

  // follow-up: the model sees the stored image again (prompt longer than the first by the new turns)
  const r2 = await ok(b, 'chat.generate', {
    requestId: 'r2',
    chatId: r.chatId,
    messages: [{ role: 'user', content: 'And circles?' }],
    options: { maxNewTokens: 4 },
  });
  assert.equal(r2.chatId, r.chatId);
  assert.ok(r2.promptTokens > r.promptTokens + 64 / 8, `${r2.promptTokens} vs ${r.promptTokens}`);
  const again = await ok(b, 'chats.get', { id: r.chatId });
  assert.deepEqual(
    again.messages.map((m: any) => m.role),
    ['user', 'assistant', 'user', 'assistant'],
  );
  assert.equal(again.messages[2].imageHash, null);

  // the same image by hash starts a second chat
  const r3 = await ok(b, 'chat.generate', {
    requestId: 'r3',
    modelDir,
    image: { hash: messages[0].imageHash },
    messages: [{ role: 'user', content: question }],
    options: { maxNewTokens: 8 },
    title: 'Shapes',
  });
  assert.deepEqual(r3.ids, expected);
  const list = await ok(b, 'chats.list');
  assert.deepEqual(
    list.chats.map((c: any) => c.title),
    ['Shapes', question],
  );
  assert.equal((await ok(b, 'chats.update', { id: r3.chatId, title: 'Renamed' })).title, 'Renamed');
  // regenerate: drop the answer (position 1) and ask again with the stored image: the same greedy answer
  const cut = await ok(b, 'chats.truncate', { id: r3.chatId, fromPosition: 1 });
  assert.equal(cut.removed, 1);
  assert.equal(cut.chat.messageCount, 1);
  assert.equal((await fail(b, 'chats.truncate', { id: 9999, fromPosition: 0 })).code, 'not_found');
  await ok(b, 'chats.truncate', { id: r3.chatId, fromPosition: 0 });
  const regen = await ok(b, 'chat.generate', {
    requestId: 'r3b',
    chatId: r3.chatId,
    image: { hash: messages[0].imageHash },
    messages: [{ role: 'user', content: question }],
    options: { maxNewTokens: 8 },
  });
  assert.deepEqual(regen.ids, expected);
  assert.deepEqual(
    (await ok(b, 'chats.get', { id: r3.chatId })).messages.map((m: any) => [m.role, m.position]),
    [
      ['user', 0],
      ['assistant', 1],
    ],
  );
  await ok(b, 'chats.delete', { id: r.chatId });
  assert.deepEqual(
    (await ok(b, 'chats.list')).chats.map((c: any) => c.id),
    [r3.chatId],
  );
  assert.equal((await fail(b, 'chats.get', { id: r.chatId })).code, 'not_found');
  assert.equal(
    (b.db.prepare('SELECT COUNT(*) AS n FROM messages WHERE chat_id = ?').get(r.chatId) as { n: number }).n,
    0,
  );

  // save: false stores nothing
  const before = (await ok(b, 'chats.list')).chats.length;
  const r4 = await ok(b, 'chat.generate', {
    requestId: 'r4',
    modelDir,
    messages: [{ role: 'user', content: 'Hello' }],
    options: { maxNewTokens: 3 },
    save: false,
  });
  assert.equal(r4.chatId, null);
  assert.equal(r4.message, null);
  assert.equal(r4.ids.length, 3);
  assert.equal((await ok(b, 'chats.list')).chats.length, before);
});

test('chat.cancel: a queued request in the worker returns cancelled with no tokens', async () => {
  const { backend: b } = newBackend('worker-cancel', { inProcess: false });
  const first = b.dispatcher.dispatch('chat.generate', {
    requestId: 'a',
    modelDir,
    messages: [{ role: 'user', content: 'Describe the image.' }],
    options: { maxNewTokens: 20 },
  });
  const second = b.dispatcher.dispatch('chat.generate', {
    requestId: 'b',
    modelDir,
    messages: [{ role: 'user', content: 'Describe the image.' }],
    options: { maxNewTokens: 20 },
  });
  assert.deepEqual(await ok(b, 'chat.cancel', { requestId: 'b' }), { cancelled: true });
  assert.deepEqual(await ok(b, 'chat.cancel', { requestId: 'nope' }), { cancelled: false });
  const [ra, rb] = await Promise.all([first, second]);
  assert.ok(ra.ok && rb.ok);
  assert.equal((ra.result as any).ids.length, 20);
  assert.equal((rb.result as any).finishReason, 'cancelled');
  assert.deepEqual((rb.result as any).ids, []);
  const saved = (rb.result as any).message;
  assert.equal(saved.stats.finishReason, 'cancelled');
});

test('chat.cancel mid-stream (in-process host): stops after the token it was called on', async () => {
  const { backend: b, events } = newBackend('in-process', { inProcess: true });
  const unsub = b.events.subscribe((event, payload: any) => {
    if (event === 'chat.token' && payload.index === 2) void b.dispatcher.dispatch('chat.cancel', { requestId: 'c' });
  });
  const r = await ok(b, 'chat.generate', {
    requestId: 'c',
    modelDir,
    image: { path: imageFile },
    messages: [{ role: 'user', content: question }],
    options: { maxNewTokens: 50 },
  });
  unsub();
  assert.equal(r.finishReason, 'cancelled');
  assert.deepEqual(r.ids, expected.slice(0, 3));
  assert.equal(events.filter((e) => e.event === 'chat.token').length, 3);
  const { messages } = await ok(b, 'chats.get', { id: r.chatId });
  assert.equal(messages[1].content, r.text);
  assert.equal(messages[1].stats.finishReason, 'cancelled');
});

test('errors name the field: model, image, chat, request id, options', async () => {
  const { backend: b } = newBackend('errors', { inProcess: true });
  const msg = [{ role: 'user', content: 'hi' }];
  let e = await fail(b, 'chat.generate', { requestId: 'e1', modelDir: join(tmp.dir, 'missing-model'), messages: msg });
  assert.equal(e.code, 'not_found');
  assert.equal(e.field, 'modelDir');
  assert.match(e.message, /missing-model/);
  e = await fail(b, 'chat.generate', { requestId: 'e2', messages: msg });
  assert.equal(e.field, 'modelDir');
  e = await fail(b, 'chat.generate', {
    requestId: 'e3',
    modelDir,
    image: { path: join(tmp.dir, 'nope.png') },
    messages: msg,
  });
  assert.equal(e.code, 'not_found');
  assert.equal(e.field, 'image.path');
  e = await fail(b, 'chat.generate', {
    requestId: 'e4',
    modelDir,
    image: { base64: Buffer.from('not an image').toString('base64') },
    messages: msg,
  });
  assert.equal(e.field, 'image.base64');
  e = await fail(b, 'chat.generate', { requestId: 'e5', chatId: 999, messages: msg });
  assert.equal(e.code, 'not_found');
  assert.equal(e.field, 'chatId');
  e = await fail(b, 'chat.generate', { requestId: 'e6', modelDir, messages: msg, options: { temperature: -1 } });
  assert.equal(e.code, 'invalid_request');
  assert.match(e.field ?? '', /options\.temperature/);
  e = await fail(b, 'chat.generate', {
    requestId: 'e7',
    modelDir,
    adapterDir: join(tmp.dir, 'no-adapter'),
    messages: msg,
  });
  assert.equal(e.field, 'adapterDir');
  // a literal "<image>" without an image is dropped, not sent as an image placeholder
  const tagged = await ok(b, 'chat.generate', {
    requestId: 'e8',
    modelDir,
    messages: [{ role: 'user', content: '<image>What is this?' }],
    options: { maxNewTokens: 1 },
    save: false,
  });
  const plain = await ok(b, 'chat.generate', {
    requestId: 'e8b',
    modelDir,
    messages: [{ role: 'user', content: 'What is this?' }],
    options: { maxNewTokens: 1 },
    save: false,
  });
  assert.equal(tagged.promptTokens, plain.promptTokens);
  e = await fail(b, 'chat.generate', { requestId: 'e9', modelDir: join(modelDir, 'config.json'), messages: msg });
  assert.equal(e.field, 'modelDir');
  const first = b.dispatcher.dispatch('chat.generate', {
    requestId: 'dup',
    modelDir,
    messages: msg,
    options: { maxNewTokens: 2 },
    save: false,
  });
  e = await fail(b, 'chat.generate', { requestId: 'dup', modelDir, messages: msg, save: false });
  assert.equal(e.code, 'conflict');
  assert.ok((await first).ok);
});
