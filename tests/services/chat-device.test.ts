// Chat on a chosen device: chat.generate with device 'webgpu' runs the generation graphs on the WebGPU provider
// (llvmpipe here) with the KV cache on the device and answers with the CPU's tokens; the reply says where it ran and
// why; 'auto' times a short answer on the CPU and on WebGPU once per model and keeps the faster.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createBackend } from '../../src-main/services/backend';
import { tempDir } from '../helpers/tmp';
import { okOn as ok } from '../helpers/dispatch';

const DEMO = join(import.meta.dirname, '../../resources/demo/model');
const tmp = tempDir('chat-device-');
process.env.LENSLAB_GRAPH_CACHE = join(tmp.dir, 'graph-cache');
const backend = createBackend({
  dataDir: join(tmp.dir, 'app'),
  dbFile: ':memory:',
  host: 'test',
  log: { error() {}, warn() {} },
  chat: { inProcess: true },
});
after(async () => {
  await backend.shutdown();
  backend.close();
  tmp.cleanup();
});

test('chat.generate on WebGPU gives the CPU answer and says where it ran; auto measures and keeps the faster', async () => {
  const ask = (requestId: string, device?: string) =>
    ok(backend, 'chat.generate', {
      requestId,
      modelDir: DEMO,
      messages: [{ role: 'user', content: 'Describe the picture.' }],
      options: { maxNewTokens: 6 },
      save: false,
      ...(device ? { device } : {}),
    });
  const cpu = await ask('c', 'cpu');
  assert.deepEqual(cpu.device, { provider: 'cpu', reason: 'chosen for this chat' });
  const gpu = await ask('g', 'webgpu');
  assert.equal(gpu.device.provider, 'webgpu');
  assert.deepEqual(gpu.ids, cpu.ids, 'same greedy tokens on WebGPU');
  const auto = await ask('a', 'auto');
  // which side wins on llvmpipe depends on the machine's load, so the rule is pinned, not the winner
  // (the min rule itself is tested with fake probes in tests/engine/provider-choice.test.ts)
  const m =
    /^auto: measured cpu [\d.]+ ms\/step vs webgpu [\d.]+ ms\/step; (the CPU is fastest here|webgpu is fastest)$/.exec(
      auto.device.reason,
    );
  assert.ok(m, auto.device.reason);
  assert.equal(auto.device.provider, m[1] === 'webgpu is fastest' ? 'webgpu' : 'cpu', auto.device.reason);
  assert.deepEqual(auto.ids, cpu.ids);
  const dflt = await ask('d');
  assert.equal(dflt.device.provider, 'cpu');
  assert.match(dflt.device.reason, /LENSLAB_PROVIDER=cpu|default/);
});
