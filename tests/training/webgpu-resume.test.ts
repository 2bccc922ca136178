// A 50-step LoRA run of the shipped demo model on the WebGPU provider (Mesa's llvmpipe here; .ci/run installs it),
// SIGKILLed after a checkpoint and resumed, ends with the adapter of an uninterrupted CPU run (1e-4) and the same
// per-step losses. Between steps the parameters and AdamW moments stay in device memory; checkpoints read them back
// through CPU-bound outputs (StepExecutor.sync), and the resumed run uploads them again.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { runnerEvent } from '../helpers/wait';
import { createBackend } from '../../src-main/services/backend';
import { JobRunner, type RunnerEvent } from '../../src-main/jobs/runner';
import { insertRun, getRun, listMetrics } from '../../src-main/storage/runs-queries';
import { snapshotDataset, writeSnapshot } from '../../src-main/training/data';
import { readSafetensors } from '../../src-main/models/weights/safetensors';
import type { VlmConfigInput } from '../../src-main/training/vlm-config';
import { importIcons } from './vlm-fixture';

const DEMO = join(import.meta.dirname, '../../resources/demo/model');
const tmp = tempDir('webgpu-resume-');
process.env.LENSLAB_GRAPH_CACHE = join(tmp.dir, 'graph-cache');
const backend = createBackend({ dataDir: join(tmp.dir, 'app'), host: 'test', log: { error() {}, warn() {} } });
const runner = new JobRunner({ db: backend.db, cancelGraceMs: 2000 });
after(async () => {
  await runner.shutdown();
  await backend.shutdown();
  backend.close();
  tmp.cleanup();
});
// shape questions, which the demo base has never learned: on colours (which it answers) the loss is near zero and
// AdamW's normalized steps follow the float noise of each device's gradient, so two devices part at the 1e-3 level
const datasetId = await importIcons(backend.db, join(tmp.dir, 'app'), join(tmp.dir, 'icons'), 16, ['shapes']);

let n = 0;
function newJob(provider: 'cpu' | 'webgpu', stepDelayMs = 0) {
  const runId = insertRun(backend.db, { name: `webgpu ${n}`, config: {}, datasetId }).id;
  const outDir = join(tmp.dir, 'runs', String(n++));
  writeSnapshot(join(outDir, 'data.json'), snapshotDataset(backend.db, join(tmp.dir, 'app'), datasetId));
  const config: VlmConfigInput = {
    model: DEMO,
    data: { file: join(outDir, 'data.json') },
    hparams: {
      method: 'lora',
      maxSteps: 50,
      batchSize: 2,
      lr: 2e-3,
      dropout: 0.1,
      saveEvery: 10,
      keepLastK: 2,
      evalEvery: 0,
      seed: 3,
      rank: 4,
      alpha: 8,
    },
    eval: { maxItems: 1, maxNewTokens: 2 },
    provider,
    debug: { stepDelayMs },
  };
  return { runId, spec: { trainer: 'vlm', outDir, config } };
}

function adapter(outDir: string): Map<string, Float32Array> {
  const t = readSafetensors(join(outDir, 'final', 'adapter_model.safetensors'));
  return new Map([...t].map(([k, v]) => [k, Float32Array.from(v.data)]));
}

test('a 50-step LoRA run on WebGPU, SIGKILLed and resumed, ends with the adapter of an uninterrupted CPU run', async (t) => {
  const a = newJob('cpu');
  await runner.startJob(a.runId, a.spec);
  assert.equal(await runner.wait(a.runId), 'completed', getRun(backend.db, a.runId)?.error ?? '');

  const b = newJob('webgpu', 20);
  const logs: string[] = [];
  const onEvent = (e: RunnerEvent) => {
    if (e.runId === b.runId && e.type === 'log') logs.push(e.message);
  };
  const off = runner.subscribe(onEvent);
  await runner.startJob(b.runId, b.spec);
  await runnerEvent(runner, b.runId, (e) => e.type === 'checkpoint' && e.step === 20);
  process.kill(runner.pid(b.runId)!, 'SIGKILL');
  assert.equal(await runner.wait(b.runId), 'interrupted');
  const started = runnerEvent(runner, b.runId, (e) => e.type === 'started');
  await runner.resume(b.runId);
  const s = (await started) as Extract<RunnerEvent, { type: 'started' }>;
  assert.ok(s.resumedFrom !== null && s.resumedFrom >= 20 && s.resumedFrom < 50, `resumed from ${s.resumedFrom}`);
  assert.equal(await runner.wait(b.runId), 'completed', getRun(backend.db, b.runId)?.error ?? '');
  off();
  assert.ok(
    logs.some((l) => /^device: webgpu/.test(l)),
    `the run says where it runs: ${logs.join(' | ')}`,
  );

  const ta = adapter(a.spec.outDir);
  const tb = adapter(b.spec.outDir);
  assert.deepEqual([...tb.keys()].sort(), [...ta.keys()].sort());
  let maxDiff = 0;
  for (const [k, va] of ta) {
    const vb = tb.get(k)!;
    for (let i = 0; i < va.length; i++) maxDiff = Math.max(maxDiff, Math.abs(va[i] - vb[i]));
  }
  t.diagnostic(`adapter max |webgpu - cpu| = ${maxDiff.toExponential(2)}`);
  assert.ok(maxDiff <= 1e-4, `WebGPU resumed adapter differs from the CPU one by ${maxDiff}`);
  const la = listMetrics(backend.db, a.runId, 'loss').map((p) => p.value!);
  const lb = listMetrics(backend.db, b.runId, 'loss').map((p) => p.value!);
  assert.equal(la.length, 50);
  assert.equal(lb.length, 50);
  for (let i = 0; i < 50; i++)
    assert.ok(Math.abs(la[i] - lb[i]) <= 1e-4, `loss at step ${i + 1}: cpu ${la[i]} vs webgpu ${lb[i]}`);
  assert.ok(la[49] < la[0], 'the run learns');
});

test('without a usable GPU a WebGPU run pauses with the reason, and resumes on the CPU when asked', async () => {
  const j = newJob('webgpu');
  (j.spec.config.hparams as Record<string, unknown>).maxSteps = 4;
  const prev = process.env.VK_ICD_FILENAMES;
  process.env.VK_ICD_FILENAMES = join(tmp.dir, 'no-vulkan-driver.json'); // the job process finds no Vulkan driver
  try {
    await runner.startJob(j.runId, j.spec);
    assert.equal(await runner.wait(j.runId), 'paused');
  } finally {
    if (prev === undefined) delete process.env.VK_ICD_FILENAMES;
    else process.env.VK_ICD_FILENAMES = prev;
  }
  const run = getRun(backend.db, j.runId)!;
  assert.equal(run.status, 'paused');
  assert.match(
    run.error ?? '',
    /^paused: the WebGPU device cannot run .*adapter.*Resume to continue from the latest checkpoint/,
  );
  await runner.resume(j.runId, { provider: 'cpu' });
  assert.equal(await runner.wait(j.runId), 'completed', getRun(backend.db, j.runId)?.error ?? '');
  assert.equal(listMetrics(backend.db, j.runId, 'loss').length, 4);
});
