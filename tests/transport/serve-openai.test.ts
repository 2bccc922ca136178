// The OpenAI-compatible endpoint, called with the request shapes the OpenAI SDKs send (the Python SDK's headers
// and body with content parts and a data-URL image; the Node SDK's streaming request with stream_options).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createBackend, type Backend } from '../../src-main/services/backend';
import { startServer, type RunningServer } from '../../src-main/transport/serve/server';
import { parseChatRequest } from '../../src-main/transport/serve/openai';
import { writeDemoDataset } from '../../src-main/models/demo/dataset';
import { tempDir } from '../helpers/tmp';
import { okOn } from '../helpers/dispatch';

const tmp = tempDir('openai-');
let backend: Backend;
let server: RunningServer;
let modelName: string;
let modelId: number;
let png: string;

before(async () => {
  backend = createBackend({ dataDir: join(tmp.dir, 'data'), host: 'serve', log: { error() {}, warn() {} } });
  server = await startServer({ backend, staticDir: join(tmp.dir, 'none') });
  const r = await okOn(backend, 'models.installDemo', {});
  modelName = r.model.name;
  modelId = r.model.id;
  const src = join(tmp.dir, 'icons');
  await writeDemoDataset(src, { seed: 4, count: 1, families: ['colors'] });
  png = readFileSync(join(src, 'images', '00000.png')).toString('base64');
});
after(async () => {
  await server.close();
  await backend.shutdown();
  backend.close();
  tmp.cleanup();
});

// what openai-python 1.x sends
const pythonSdkHeaders = () => ({
  Authorization: `Bearer ${server.token}`,
  'Content-Type': 'application/json',
  Accept: 'application/json',
  'User-Agent': 'OpenAI/Python 1.54.0',
  'X-Stainless-Lang': 'python',
  'X-Stainless-Package-Version': '1.54.0',
  'X-Stainless-Retry-Count': '0',
});

function post(path: string, body: unknown, headers: Record<string, string> = pythonSdkHeaders()) {
  return fetch(`${server.origin}${path}`, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

const question = (extra: Record<string, unknown> = {}) => ({
  messages: [
    { role: 'system', content: 'You are a helpful assistant.' },
    {
      role: 'user',
      content: [
        { type: 'text', text: 'What color is the circle?' },
        { type: 'image_url', image_url: { url: `data:image/png;base64,${png}`, detail: 'auto' } },
      ],
    },
  ],
  model: modelName,
  max_tokens: 8,
  temperature: 0,
  ...extra,
});

test('the token is required; /v1/models lists the registered models', async () => {
  let res = await fetch(`${server.origin}/v1/models`);
  assert.equal(res.status, 401);
  res = await fetch(`${server.origin}/v1/models`, { headers: { Authorization: 'Bearer wrong' } });
  assert.equal(res.status, 401);
  res = await fetch(`${server.origin}/v1/models`, { headers: pythonSdkHeaders() });
  assert.equal(res.status, 200);
  const list = (await res.json()) as { object: string; data: Array<{ id: string; object: string; owned_by: string }> };
  assert.equal(list.object, 'list');
  assert.deepEqual(
    list.data.map((m) => [m.id, m.object]),
    [[modelName, 'model']],
  );
});

test('an image_url request (Python SDK shape) answers like chat.generate with the same image', async () => {
  const res = await post('/v1/chat/completions', question());
  assert.equal(res.status, 200, await res.clone().text());
  const body = (await res.json()) as any;
  assert.match(body.id, /^chatcmpl-/);
  assert.equal(body.object, 'chat.completion');
  assert.equal(body.model, modelName);
  assert.equal(body.choices.length, 1);
  assert.equal(body.choices[0].message.role, 'assistant');
  assert.ok(['stop', 'length'].includes(body.choices[0].finish_reason));
  assert.ok(body.usage.prompt_tokens > 9, 'the prompt holds the image tokens');
  assert.equal(body.usage.total_tokens, body.usage.prompt_tokens + body.usage.completion_tokens);
  const direct = await okOn(backend, 'chat.generate', {
    requestId: 'direct',
    modelId,
    image: { base64: png },
    messages: [
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: 'What color is the circle?' },
    ],
    imageTurn: 1,
    options: { maxNewTokens: 8, temperature: 0 },
    save: false,
  });
  assert.equal(body.choices[0].message.content, direct.text);
  assert.equal(body.usage.prompt_tokens, direct.promptTokens);
  // without the image the prompt is shorter: the image was really used
  const text = await post('/v1/chat/completions', {
    ...question(),
    messages: [{ role: 'user', content: 'What color is the circle?' }],
  });
  assert.ok(((await text.json()) as any).usage.prompt_tokens < body.usage.prompt_tokens);
});

test('stream: true (Node SDK shape) sends chunks, the finish reason, usage and [DONE]', async () => {
  const res = await post(
    '/v1/chat/completions',
    question({ stream: true, stream_options: { include_usage: true }, max_tokens: 6 }),
    {
      Authorization: `Bearer ${server.token}`,
      'Content-Type': 'application/json',
      Accept: 'application/json',
      'User-Agent': 'OpenAI/JS 4.73.0',
      'X-Stainless-Lang': 'js',
    },
  );
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const raw = await res.text();
  const events = raw.split('\n\n').filter(Boolean);
  assert.ok(
    events.every((e) => e.startsWith('data: ')),
    raw,
  );
  assert.equal(events.at(-1), 'data: [DONE]');
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)));
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id));
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  const text = chunks.flatMap((c) => c.choices.map((ch: any) => ch.delta.content ?? '')).join('');
  const finish = chunks.flatMap((c) => c.choices).filter((ch: any) => ch.finish_reason);
  assert.equal(finish.length, 1);
  const usage = chunks.at(-1);
  assert.deepEqual(usage.choices, []);
  assert.ok(usage.usage.completion_tokens <= 6);
  const plain = (await (await post('/v1/chat/completions', question({ max_tokens: 6 }))).json()) as any;
  assert.equal(text, plain.choices[0].message.content);
  assert.equal(finish[0].finish_reason, plain.choices[0].finish_reason);
  if (usage.usage.completion_tokens === 6) assert.equal(finish[0].finish_reason, 'length');
});

test('errors come in the OpenAI error shape and name the parameter', async () => {
  const cases: Array<[unknown, number, RegExp, string | null]> = [
    [question({ model: 'nope' }), 404, /no model "nope"/, 'model'],
    [
      {
        ...question(),
        messages: [
          { role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }] },
        ],
      },
      400,
      /data URL .* does not fetch/,
      'messages[0].content[0].image_url.url',
    ],
    [
      {
        ...question(),
        messages: [
          {
            role: 'user',
            content: [
              { type: 'image_url', image_url: { url: `data:image/png;base64,${png}` } },
              { type: 'image_url', image_url: { url: `data:image/png;base64,${png}` } },
            ],
          },
        ],
      },
      400,
      /2 images/,
      'messages',
    ],
    [question({ tools: [{ type: 'function', function: { name: 'f' } }] }), 400, /tools are not supported/, 'tools'],
    [question({ temperature: 5 }), 400, /temperature must be a number from 0 to 2/, 'temperature'],
    [question({ n: 2 }), 400, /only n = 1/, 'n'],
    ['{not json', 400, /not valid JSON/, null],
  ];
  for (const [body, status, message, param] of cases) {
    const res = await post('/v1/chat/completions', body);
    assert.equal(res.status, status, JSON.stringify(body).slice(0, 200));
    const e = ((await res.json()) as any).error;
    assert.match(e.message, message);
    assert.equal(e.param, param);
    assert.equal(typeof e.type, 'string');
  }
  // a browser page on another origin cannot use it
  const res = await post('/v1/chat/completions', question(), { ...pythonSdkHeaders(), Origin: 'http://evil.example' });
  assert.equal(res.status, 401);
});

test('maps sampling parameters and places an image in a later user turn', () => {
  const r = parseChatRequest({
    model: 'm',
    messages: [
      { role: 'developer', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'And this?' },
          { type: 'image_url', image_url: { url: 'data:image/jpeg;base64,AAAA' } },
        ],
      },
    ],
    temperature: 0.7,
    top_p: 0.9,
    top_k: 40,
    repetition_penalty: 1.1,
    max_completion_tokens: 50,
    seed: 7,
    stop: 'END',
  });
  assert.deepEqual(
    r.messages.map((m) => m.role),
    ['system', 'user', 'assistant', 'user'],
  );
  assert.deepEqual(r.image, { base64: 'AAAA', turn: 3 });
  assert.deepEqual(r.options, {
    temperature: 0.7,
    topP: 0.9,
    topK: 40,
    repetitionPenalty: 1.1,
    maxNewTokens: 50,
    seed: 7,
    stop: ['END'],
  });
});
