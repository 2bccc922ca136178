// The VLM trainer on a tiny LLaVA, through the job runner (a process per run) and the API:
//  - checks before any work: bad hyperparameters, samples longer than max_seq_len, a missing model, named;
//  - metrics per step and checkpoints (PEFT adapter + optimizer state) in SQLite and on disk, predictions of the
//    evaluations during training stored per checkpoint;
//  - a run SIGKILLed after a checkpoint, recovered as interrupted and resumed, ends with the same adapter as an
//    uninterrupted run, with LoRA dropout 0.1 (masks are a hash of dropout_seed, fed per micro-batch from the run's
//    seed and step: see vlm-trainer.ts).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { runnerEvent } from '../helpers/wait';
import { createBackend } from '../../src-main/services/backend';
import type { ApiErrorData } from '../../src-main/contract/errors';
import { JobRunner, type RunnerEvent } from '../../src-main/jobs/runner';
import { listCheckpointRows } from '../../src-main/jobs/store';
import { insertRun, getRun, listMetrics } from '../../src-main/storage/runs-queries';
import { snapshotDataset, writeSnapshot } from '../../src-main/training/data';
import { readSafetensors } from '../../src-main/models/weights/safetensors';
import type { VlmConfigInput } from '../../src-main/training/vlm-config';
import { importIcons, writeTinyModel } from './vlm-fixture';

const tmp = tempDir('vlm-trainer-');
process.env.LENSLAB_GRAPH_CACHE = join(tmp.dir, 'graph-cache');
const backend = createBackend({ dataDir: join(tmp.dir, 'app'), host: 'test', log: { error() {}, warn() {} } });
const runner = new JobRunner({ db: backend.db, cancelGraceMs: 2000 });
after(async () => {
  await runner.shutdown();
  await backend.shutdown();
  backend.close();
  tmp.cleanup();
});

const modelDir = writeTinyModel(join(tmp.dir, 'model'));
const datasetId = await importIcons(backend.db, join(tmp.dir, 'app'), join(tmp.dir, 'icons'));

async function fail(method: string, params: unknown): Promise<ApiErrorData> {
  const env = await backend.dispatcher.dispatch(method, params);
  if (env.ok) assert.fail(`${method} unexpectedly succeeded`);
  return env.error;
}

test('estimate and refusals before any run starts, naming the problem', async () => {
  const model = { path: modelDir };
  const data = { datasetId };
  const est = (await backend.dispatcher.call('runs.estimate', {
    model,
    data,
    hparams: { maxSteps: 5, batchSize: 2 },
  })) as any;
  assert.equal(est.plan.totalSteps, 5);
  assert.ok(est.plan.trainSamples > 10 && est.plan.evalSamples >= 1, JSON.stringify(est.plan));
  assert.ok(est.plan.longestSample > 16, 'image tokens are counted');
  assert.equal(est.memory.fits, true);
  assert.ok(est.memory.breakdown.total > est.memory.breakdown.weights);
  assert.equal(est.refusal, null);

  const runsBefore = getRunCount();
  const long = await fail('runs.start', { model, data, hparams: { maxSteps: 5, maxSeqLen: 16 } });
  assert.equal(long.field, 'data');
  assert.match(long.message, /item "\d+#0": has \d+ tokens \(image tokens included\), more than max_seq_len 16/);
  const bad = await fail('runs.start', { model, data, hparams: { method: 'full' } });
  assert.equal(bad.field, 'hparams.method');
  const target = await fail('runs.start', { model, data, hparams: { targetModules: ['qkv'] } });
  assert.match(target.field ?? '', /^hparams\.targetModules/);
  const noModel = await fail('runs.start', { model: { path: join(tmp.dir, 'nope') }, data, hparams: {} });
  assert.equal(noModel.field, 'model.path');
  const notLlava = await fail('runs.start', { model: { path: join(tmp.dir, 'icons') }, data, hparams: {} });
  assert.equal(notLlava.field, 'model');
  assert.match(notLlava.message, /config\.json/);
  const evalNoVal = await fail('runs.start', {
    model,
    data: { datasetId, evalSplit: 'test' },
    hparams: { evalEvery: 2 },
  });
  assert.equal(evalNoVal.field, 'hparams.evalEvery');
  assert.equal(getRunCount(), runsBefore, 'no run was created');
});

test('a run that does not fit in memory is refused with suggestions (LENSLAB_MEMORY_LIMIT)', async () => {
  const model = { path: modelDir };
  const data = { datasetId };
  process.env.LENSLAB_MEMORY_LIMIT = '198M';
  try {
    const est = (await backend.dispatcher.call('runs.estimate', {
      model,
      data,
      hparams: { maxSteps: 5, batchSize: 64 },
    })) as any;
    assert.equal(est.memory.fits, false);
    assert.equal(est.memory.availableBytes, 198 * 1024 * 1024);
    assert.ok(est.memory.suggestions.length > 0);
    assert.match(est.refusal, /^not enough memory: training needs about [\d.]+ MiB of 198\.0 MiB available .*Try: /);
    const before = getRunCount();
    const r = await fail('runs.start', { model, data, hparams: { maxSteps: 5, batchSize: 64 } });
    assert.equal(r.code, 'invalid_request');
    assert.equal(r.field, 'hparams');
    assert.match(r.message, /not enough memory.*use batch size \d+ with gradient accumulation/);
    assert.equal(getRunCount(), before);
  } finally {
    delete process.env.LENSLAB_MEMORY_LIMIT;
  }
});

function getRunCount(): number {
  return (backend.db.prepare('SELECT COUNT(*) AS n FROM runs').get() as { n: number }).n;
}

let n = 0;
function newJob(debug: { stepDelayMs?: number } = {}) {
  const runId = insertRun(backend.db, { name: `vlm ${n}`, config: {}, datasetId }).id;
  const outDir = join(tmp.dir, 'runs', String(n++));
  writeSnapshot(join(outDir, 'data.json'), snapshotDataset(backend.db, join(tmp.dir, 'app'), datasetId));
  const config: VlmConfigInput = {
    model: modelDir,
    data: { file: join(outDir, 'data.json') },
    hparams: {
      method: 'lora+projector',
      maxSteps: 8,
      batchSize: 4,
      gradAccum: 2,
      lr: 3e-3,
      dropout: 0.1,
      saveEvery: 2,
      keepLastK: 2,
      evalEvery: 4,
      seed: 11,
      rank: 4,
      alpha: 8,
    },
    eval: { maxItems: 3, maxNewTokens: 3 },
    debug,
  };
  return { runId, spec: { trainer: 'vlm', outDir, config } };
}
const when = (runId: number, pred: (e: RunnerEvent) => boolean) => runnerEvent(runner, runId, pred);
function adapterTensors(outDir: string): Map<string, Float32Array> {
  const t = readSafetensors(join(outDir, 'final', 'adapter_model.safetensors'));
  return new Map([...t].map(([k, v]) => [k, Float32Array.from(v.data)]));
}

test('a SIGKILLed run resumes from its checkpoint to the same adapter as an uninterrupted run', async () => {
  // uninterrupted
  const a = newJob();
  await runner.startJob(a.runId, a.spec);
  assert.equal(await runner.wait(a.runId), 'completed', getRun(backend.db, a.runId)?.error ?? '');

  // metrics for every step, checkpoints on disk and in SQLite
  const loss = listMetrics(backend.db, a.runId, 'loss');
  assert.deepEqual(
    loss.map((p) => p.step),
    [1, 2, 3, 4, 5, 6, 7, 8],
  );
  for (const name of ['lr', 'grad_norm', 'samples_per_sec', 'tokens_per_sec', 'eval_loss', 'eval_exact_match'])
    assert.ok(listMetrics(backend.db, a.runId, name).length > 0, name);
  const rows = listCheckpointRows(backend.db, a.runId);
  assert.deepEqual(
    rows.map((r) => r.step),
    [6, 8],
    'keep-last-2',
  );
  for (const r of rows)
    for (const f of [
      'manifest.json',
      'state.json',
      'optimizer.safetensors',
      'adapter/adapter_config.json',
      'adapter/adapter_model.safetensors',
    ])
      assert.ok(existsSync(join(r.path, f)), `${r.path}/${f}`);
  assert.deepEqual(readdirSync(join(a.spec.outDir, 'checkpoints')).sort(), ['step-000006', 'step-000008']);
  assert.ok(existsSync(join(a.spec.outDir, 'final', 'adapter_config.json')));
  // evaluations during training: predictions stored, linked to the checkpoint of their step
  const evals = backend.db
    .prepare('SELECT id, checkpoint_id, split, config_json FROM evaluations WHERE run_id = ? ORDER BY id')
    .all(a.runId) as any[];
  assert.deepEqual(
    evals.map((e) => JSON.parse(e.config_json).step),
    [4, 8],
  );
  assert.equal(evals[1].checkpoint_id, rows[1].id);
  assert.equal(evals[0].checkpoint_id, null, 'step 4 kept no checkpoint (pruned)');
  const preds = backend.db
    .prepare('SELECT COUNT(*) AS n FROM predictions WHERE evaluation_id = ?')
    .get(evals[1].id) as { n: number };
  assert.ok(preds.n >= 1 && preds.n <= 3, `${preds.n} predictions (at most eval.maxItems)`);
  const api = (await backend.dispatcher.call('evaluations.predictions', { id: evals[1].id })) as any;
  assert.equal(api.total, preds.n);
  assert.equal(typeof api.predictions[0].scores.exact_match, 'number');

  // killed after the step-4 checkpoint, then resumed
  const b = newJob({ stepDelayMs: 400 });
  await runner.startJob(b.runId, b.spec);
  await when(b.runId, (e) => e.type === 'checkpoint' && e.step === 4);
  process.kill(runner.pid(b.runId)!, 'SIGKILL');
  assert.equal(await runner.wait(b.runId), 'interrupted');
  assert.match(getRun(backend.db, b.runId)!.error ?? '', /SIGKILL/);
  const started = when(b.runId, (e) => e.type === 'started');
  await runner.resume(b.runId);
  const s = (await started) as Extract<RunnerEvent, { type: 'started' }>;
  assert.ok(s.resumedFrom !== null && s.resumedFrom >= 4, `resumed from ${s.resumedFrom}`);
  assert.equal(await runner.wait(b.runId), 'completed', getRun(backend.db, b.runId)?.error ?? '');

  const ta = adapterTensors(a.spec.outDir);
  const tb = adapterTensors(b.spec.outDir);
  assert.deepEqual([...tb.keys()].sort(), [...ta.keys()].sort());
  assert.ok(
    [...ta.keys()].some((k) => k.includes('lora_A')) && [...ta.keys()].some((k) => k.includes('multi_modal_projector')),
    [...ta.keys()].join(', '),
  );
  let maxDiff = 0;
  for (const [k, va] of ta) {
    const vb = tb.get(k)!;
    for (let i = 0; i < va.length; i++) maxDiff = Math.max(maxDiff, Math.abs(va[i] - vb[i]));
  }
  assert.ok(maxDiff <= 1e-6, `resumed adapter differs by ${maxDiff}`);
  const la = listMetrics(backend.db, a.runId, 'loss').map((p) => p.value!);
  const lb = listMetrics(backend.db, b.runId, 'loss').map((p) => p.value!);
  assert.equal(lb.length, 8);
  for (let i = 0; i < 8; i++)
    assert.ok(
      Math.abs(la[i] - lb[i]) <= 1e-5 * Math.max(1, Math.abs(la[i])),
      `loss at step ${i + 1}: ${la[i]} vs ${lb[i]}`,
    );
});

test("evaluations.start over the API: the base and a run's adapter on the same items, stored and compared", async () => {
  const runId = (
    backend.db.prepare("SELECT id FROM runs WHERE status = 'completed' ORDER BY id LIMIT 1").get() as { id: number }
  ).id;
  const statuses: any[] = [];
  const off = backend.events.subscribe((e, p) => {
    if (e === 'evaluations.status') statuses.push(p);
  });
  const settle = async (id: number) => {
    const t0 = Date.now();
    while (!statuses.some((s) => s.id === id)) {
      if (Date.now() - t0 > 60_000) throw new Error(`evaluation ${id} did not finish`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return statuses.find((s) => s.id === id);
  };
  const start = (adapter?: unknown) =>
    backend.dispatcher.call('evaluations.start', {
      model: { path: modelDir },
      ...(adapter ? { adapter } : {}),
      data: { datasetId, split: 'val' },
      maxNewTokens: 3,
    }) as Promise<any>;
  const base = await start();
  assert.equal(base.status, 'running');
  assert.equal((await settle(base.id)).status, 'completed');
  const tuned = await start({ runId });
  assert.equal((await settle(tuned.id)).status, 'completed');
  off();
  const got = (await backend.dispatcher.call('evaluations.get', { id: tuned.id })) as any;
  assert.equal(got.runId, runId);
  assert.equal(got.task, 'vqa');
  assert.ok(got.predictionCount >= 1);
  assert.equal(typeof got.metrics.exact_match, 'number');
  const listed = (await backend.dispatcher.call('evaluations.list', { runId })) as any;
  assert.ok(listed.evaluations.some((e: any) => e.id === tuned.id));
  const cmp = (await backend.dispatcher.call('evaluations.compare', { baseId: base.id, tunedId: tuned.id })) as any;
  assert.equal(cmp.items.length, got.predictionCount, 'same items');
  const noCk = await fail('evaluations.start', {
    model: { path: modelDir },
    adapter: { runId, step: 1 },
    data: { datasetId },
  });
  assert.equal(noCk.field, 'adapter.step');
});
