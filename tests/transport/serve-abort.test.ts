// A request is abandoned when its client goes away: a chat generation asked over a WebSocket stops when the socket
// closes (the handler's AbortSignal), and what was generated so far is kept as a cancelled answer.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { createBackend } from '../../src-main/services/backend';
import { startServer } from '../../src-main/transport/serve/server';
import { writeTinyLlava } from '../../src-main/models/demo/tiny-llava';
import { tempDir } from '../helpers/tmp';
import { until } from '../helpers/wait';

const tmp = tempDir('serve-abort-');
const modelDir = join(tmp.dir, 'model');
writeTinyLlava(modelDir, 0, { initStd: 0.2 });
const backend = createBackend({
  dataDir: join(tmp.dir, 'data'),
  host: 'serve',
  log: { error() {}, warn() {} },
  chat: { inProcess: true },
});
const server = await startServer({ backend, staticDir: tmp.dir });
after(async () => {
  await server.close();
  await backend.shutdown();
  backend.close();
  tmp.cleanup();
});

test('closing the WebSocket stops the chat generation it asked for', async () => {
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws`, {
    headers: { Authorization: `Bearer ${server.token}`, Origin: server.origin },
  });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  let tokens = 0;
  ws.on('message', (data) => {
    const m = JSON.parse(String(data));
    if (m.event === 'chat.token' && ++tokens === 3) ws.close();
  });
  ws.send(
    JSON.stringify({
      id: 1,
      method: 'chat.generate',
      params: {
        requestId: 'gone',
        modelDir,
        messages: [{ role: 'user', content: 'Describe the image.' }],
        options: { maxNewTokens: 400 },
      },
    }),
  );
  // the answer nobody reads is still stored, cut short where the socket closed
  const answer = await until(
    async () => {
      const list = (await backend.dispatcher.call('chats.list', {})) as { chats: { id: number }[] };
      if (!list.chats.length) return null;
      const { messages } = (await backend.dispatcher.call('chats.get', { id: list.chats[0].id })) as {
        messages: { role: string; stats: any }[];
      };
      return messages.find((m) => m.role === 'assistant') ?? null;
    },
    'the assistant message',
    60_000,
    50,
  );
  assert.equal(answer.stats.finishReason, 'cancelled');
  assert.ok(answer.stats.tokens >= 3 && answer.stats.tokens < 400, `${answer.stats.tokens} tokens`);
});
