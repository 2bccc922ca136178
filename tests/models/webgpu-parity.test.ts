// Training steps and greedy generation on ONNX Runtime's WebGPU provider give what the CPU gives, for the shipped demo
// model (CLIP + LLaMA) and a tiny SigLIP + Qwen2 LLaVA (tied embeddings, q/k/v biases, linear projector). Here the
// device is Mesa's llvmpipe (a CPU Vulkan device; .ci/run installs Mesa from bookworm-backports): correct, slow, so
// shapes are tiny. The device sessions are created with session.disable_cpu_ep_fallback = 1, so a node of the
// training or decode graphs that the provider cannot run fails these tests instead of running on the CPU. There is
// no skip: a machine without a WebGPU adapter fails them, with ORT's reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { StepExecutor, tensor, type ort } from '../../src-main/engine';
import {
  buildTrainableVlm,
  loadVlm,
  DROPOUT_SEED_INPUT,
  type LoadedVlm,
  type TrainMethod,
} from '../../src-main/models/program';
import { createGenerator } from '../../src-main/models/generate';
import { loadHfFolder } from '../../src-main/models/hf-folder';
import { makeSample } from '../../src-main/models/demo/shapes';
import { writeSiglipQwen2Llava } from '../fixtures/models/siglip-qwen2';
import { demoRows, makeFeeds } from './program-fixture';
import { after } from 'node:test';
import { tempDir } from '../helpers/tmp';

const cleanups: (() => void)[] = [];
after(() => cleanups.forEach((c) => c()));
function tmpDir(prefix: string): string {
  const t = tempDir(`${prefix}-`);
  cleanups.push(t.cleanup);
  return t.dir;
}

const DEMO = join(import.meta.dirname, '../../resources/demo/model');
const TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

async function trainBoth(m: LoadedVlm, method: TrainMethod, accumulation: number, steps: number) {
  const tv = buildTrainableVlm(m, method, { rank: 4, alpha: 8, dropout: 0.1, targetModules: TARGETS });
  const rows = await demoRows(m, 7, 4, 'counting');
  const batches = [makeFeeds(m, rows.slice(0, 2)), makeFeeds(m, rows.slice(2, 4))];
  const run = async (provider: 'cpu' | 'webgpu') => {
    const ex = await StepExecutor.create(
      { params: tv.params, forward: tv.forward, clipNorm: 1, accumulation, session: { provider, threads: 1 } },
      tv.initialValues(3),
    );
    const losses: number[] = [];
    const norms: number[] = [];
    let resident = false;
    for (let s = 0; s < steps; s++) {
      const micro = (accumulation === 1 ? [batches[s % 2]] : batches).map((f, i) => ({
        ...f,
        [DROPOUT_SEED_INPUT]: tensor('int64', [], [BigInt(s * 10 + i)]),
      }));
      const r = await ex.step(accumulation === 1 ? micro[0] : micro, 2e-3);
      losses.push(r.loss);
      norms.push(r.gradNorm);
      resident ||= ex.resident;
    }
    const transfer = ex.transfer();
    await ex.sync();
    const st = ex.state();
    const provider_ = ex.provider;
    await ex.dispose();
    return { losses, norms, st, resident, transfer, provider: provider_ };
  };
  return { cpu: await run('cpu'), gpu: await run('webgpu'), tv };
}

function maxDiff(a: Record<string, ArrayLike<number>>, b: Record<string, ArrayLike<number>>): number {
  let d = 0;
  for (const k of Object.keys(a)) {
    assert.ok(b[k], `missing ${k}`);
    for (let i = 0; i < a[k].length; i++) d = Math.max(d, Math.abs(a[k][i] - b[k][i]));
  }
  return d;
}

function assertParity(r: Awaited<ReturnType<typeof trainBoth>>, steps: number, label: string) {
  assert.equal(r.gpu.provider, 'webgpu', `${label}: ran on ${r.gpu.provider}`);
  assert.ok(r.gpu.resident, `${label}: parameters and moments stay on the device between steps`);
  assert.equal(r.cpu.resident, false);
  for (let s = 0; s < steps; s++) {
    assert.ok(
      Math.abs(r.cpu.losses[s] - r.gpu.losses[s]) < 1e-4,
      `${label} step ${s + 1}: loss cpu ${r.cpu.losses[s]} vs webgpu ${r.gpu.losses[s]}`,
    );
    assert.ok(
      Math.abs(r.cpu.norms[s] - r.gpu.norms[s]) < 1e-4 * Math.max(1, r.cpu.norms[s]),
      `${label} step ${s + 1}: grad norm ${r.cpu.norms[s]} vs ${r.gpu.norms[s]}`,
    );
  }
  assert.ok(r.cpu.losses[0] !== r.cpu.losses[steps - 1], `${label}: the steps change the parameters`);
  assert.ok(
    maxDiff(r.cpu.st.params, r.gpu.st.params) < 1e-4,
    `${label}: adapter differs by ${maxDiff(r.cpu.st.params, r.gpu.st.params)}`,
  );
  assert.ok(
    maxDiff(r.cpu.st.m, r.gpu.st.m) < 1e-4 && maxDiff(r.cpu.st.v, r.gpu.st.v) < 1e-4,
    `${label}: AdamW moments differ`,
  );
  assert.equal(r.gpu.st.t, steps);
  // per step only the scalars come back (loss, grad norm, token sums): no parameter or moment crosses to the host
  const t = r.gpu.transfer!;
  assert.ok(t.fromDevice / steps < 64, `${label}: ${t.fromDevice} bytes read back over ${steps} steps`);
}

test('demo model: LoRA training steps on WebGPU (fused step) equal the CPU; state stays on the device', async () => {
  const m = loadVlm(DEMO);
  try {
    const r = await trainBoth(m, 'lora', 1, 3);
    assertParity(r, 3, 'demo fused');
  } finally {
    m.close();
  }
});

test('tiny SigLIP + Qwen2 LLaVA: LoRA + projector with gradient accumulation on WebGPU equals the CPU', async () => {
  const dir = tmpDir('webgpu-siglip');
  writeSiglipQwen2Llava(dir, 5);
  const m = loadVlm(dir);
  try {
    const r = await trainBoth(m, 'lora+projector', 2, 2);
    assertParity(r, 2, 'siglip-qwen2 accumulation');
  } finally {
    m.close();
  }
});

async function greedyBoth(
  dir: string,
  imageSize: number,
  cacheDir: string,
): Promise<{ cpu: number[][]; gpu: number[][] }> {
  const m = loadHfFolder(dir);
  const s = makeSample(11, 0, { size: imageSize, families: ['colors'] });
  const reqs = [
    {
      image: { data: s.rgb, width: imageSize, height: imageSize },
      messages: [{ role: 'user', content: s.qa[0].question }],
    },
    { messages: [{ role: 'user', content: 'Describe the picture.' }] },
  ];
  const out: Record<string, number[][]> = {};
  try {
    for (const provider of ['cpu', 'webgpu'] as const) {
      const gen = await createGenerator(m, null, { cacheDir, session: { provider, threads: 1 } });
      out[provider] = [];
      for (const r of reqs) out[provider].push((await gen.generate(r, { maxNewTokens: 8 })).ids);
      await gen.dispose();
    }
  } finally {
    m.close();
  }
  return { cpu: out.cpu, gpu: out.webgpu };
}

test('greedy generation with the KV cache on WebGPU gives the CPU tokens (demo model and tiny SigLIP + Qwen2)', async () => {
  const cache = tmpDir('webgpu-gen-cache');
  const demo = await greedyBoth(DEMO, 64, cache);
  assert.deepEqual(demo.gpu, demo.cpu);
  assert.ok(demo.cpu[0].length >= 1);
  const dir = tmpDir('webgpu-gen-siglip');
  writeSiglipQwen2Llava(dir, 6);
  const sq = await greedyBoth(dir, 40, cache);
  assert.deepEqual(sq.gpu, sq.cpu);
  assert.ok(sq.cpu[1].length >= 2, 'the random model produces several tokens');
});

export type { ort };
