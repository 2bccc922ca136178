// Training runs through the dispatcher, as every transport calls them: runs.start on a tiny LLaVA → progress events
// → completed, refusals before any run exists; then pause / resume, cancel, metric series and checkpoints of runs
// of the toy trainer (a test fixture the API cannot start), started on the backend's own job runner.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createBackend } from '../../src-main/services/backend';
import type { ApiErrorData } from '../../src-main/contract/errors';
import { insertRun, updateRunStatus } from '../../src-main/storage/runs-queries';
import { saveJobSpec } from '../../src-main/jobs/store';
import { tempDir } from '../helpers/tmp';
import { until } from '../helpers/wait';
import { registerToyTrainer, TOY_JOB_ENTRY } from '../jobs/fixtures/toy-trainer';
import { importIcons, writeTinyModel } from '../training/vlm-fixture';

const tmp = tempDir('training-svc-');
const quiet = { error() {}, warn() {} };
// the backend's job processes know the toy trainer too (the app's entry knows only 'vlm')
registerToyTrainer();
const backend = createBackend({ dataDir: tmp.dir, host: 'test', log: quiet, jobs: { entry: TOY_JOB_ENTRY } });
const modelDir = writeTinyModel(join(tmp.dir, 'model'));
const datasetId = await importIcons(backend.db, tmp.dir, join(tmp.dir, 'icons'));
const seen: { event: string; payload: any }[] = [];
backend.events.subscribe((event, payload) => seen.push({ event, payload }));
after(async () => {
  await backend.shutdown();
  backend.close();
  tmp.cleanup();
});

async function ok(method: string, params?: unknown): Promise<any> {
  const env = await backend.dispatcher.dispatch(method, params);
  if (!env.ok) assert.fail(`${method} failed: ${JSON.stringify(env.error)}`);
  return env.result;
}
async function fail(method: string, params?: unknown): Promise<ApiErrorData> {
  const env = await backend.dispatcher.dispatch(method, params);
  if (env.ok) assert.fail(`${method} unexpectedly succeeded: ${JSON.stringify(env.result)}`);
  return env.error;
}
const eventsOf = (runId: number, name: string) =>
  seen.filter((s) => s.event === name && s.payload.runId === runId).map((s) => s.payload);
/** Steps reported so far (progress events batch every step since the previous one in `points`). */
const stepsSeen = (runId: number) => eventsOf(runId, 'runs.progress').flatMap((e) => e.points.map((p: any) => p.step));
/** Wait (polling every 20 ms, up to 60 s) until `pred` holds. */
const waitFor = (pred: () => boolean, what: string) => until(pred, what, 60_000, 20);
const vlm = (hp: Record<string, unknown> = {}) => ({
  model: { path: modelDir },
  data: { datasetId },
  hparams: {
    maxSteps: 4,
    batchSize: 4,
    lr: 3e-3,
    seed: 3,
    saveEvery: 2,
    keepLastK: 1,
    evalEvery: 2,
    rank: 4,
    alpha: 8,
    ...hp,
  },
  evalMaxItems: 2,
});
const toyConfig = (hp: Record<string, unknown>, debug: Record<string, unknown> = {}) => ({
  hparams: { maxSteps: 30, batchSize: 8, lr: 0.05, seed: 3, saveEvery: 10, keepLastK: 2, evalEvery: 10, ...hp },
  data: { numSamples: 120, evalSamples: 40, dim: 5 },
  debug,
});
/** A toy run on the backend's job runner (the service's own), as runs.start would leave it: a row and a job. */
async function startToy(hp: Record<string, unknown>, debug: Record<string, unknown> = {}): Promise<{ id: number }> {
  const run = insertRun(backend.db, { name: 'toy', config: {} });
  await backend.ctx.training.runner.startJob(run.id, {
    trainer: 'toy',
    outDir: join(tmp.dir, 'runs', String(run.id)),
    config: toyConfig(hp, debug),
  });
  return run;
}

test('runs.start on a tiny LLaVA → progress events → completed, adapter and checkpoints stored', async () => {
  const { run, memory } = await ok('runs.start', { name: 'vlm A', ...vlm() });
  assert.equal(run.status, 'running');
  assert.equal(run.totalSteps, 4);
  assert.equal(memory.fits, true);
  await waitFor(() => eventsOf(run.id, 'runs.status').some((p) => p.status !== 'running'), 'the end of the run');
  assert.deepEqual(
    eventsOf(run.id, 'runs.status').map((p) => p.status),
    ['running', 'completed'],
    JSON.stringify(eventsOf(run.id, 'runs.log')),
  );
  assert.deepEqual(stepsSeen(run.id), [1, 2, 3, 4]);
  assert.deepEqual(
    eventsOf(run.id, 'runs.eval').map((e) => e.step),
    [2, 4],
  );
  assert.ok(
    eventsOf(run.id, 'runs.eval').every((e) => typeof e.evaluationId === 'number'),
    'the predictions are stored as evaluations',
  );
  assert.deepEqual(
    eventsOf(run.id, 'runs.checkpoint').map((e) => e.step),
    [2, 4],
  );
  const done = await ok('runs.get', { id: run.id });
  assert.equal(done.status, 'completed');
  assert.equal(done.config.job.trainer, 'vlm');
  assert.equal(done.config.hparams.method, 'lora');
  const ck = await ok('runs.checkpoints', { id: run.id });
  assert.deepEqual(
    ck.checkpoints.map((c: any) => c.step),
    [4],
  );
  assert.equal(ck.finalDir, join(tmp.dir, 'runs', String(run.id), 'final'));
  assert.ok(
    existsSync(join(ck.finalDir, 'adapter_model.safetensors')) && existsSync(join(ck.finalDir, 'adapter_config.json')),
  );
  assert.ok(ck.finalBytes > 0);
});

test('start → progress events → completed, metrics and checkpoints stored (toy run)', async () => {
  const run = await startToy({});
  await waitFor(() => eventsOf(run.id, 'runs.status').some((p) => p.status === 'completed'), 'completion');
  const events = eventsOf(run.id, 'runs.progress');
  for (const e of events)
    assert.deepEqual({ step: e.step, metrics: e.metrics }, e.points.at(-1), 'an event names its last point');
  const progress = events.flatMap((e) => e.points.map((p: any) => ({ ...p, totalSteps: e.totalSteps })));
  assert.deepEqual(
    progress.map((p) => p.step),
    Array.from({ length: 30 }, (_, i) => i + 1),
  );
  for (const p of progress) {
    for (const k of ['loss', 'lr', 'grad_norm', 'samples_per_sec', 'tokens_per_sec', 'eta_sec'])
      assert.equal(typeof p.metrics[k], 'number', `${k} at step ${p.step}`);
    assert.equal(p.totalSteps, 30);
  }
  assert.equal(progress.at(-1).metrics.eta_sec, 0);
  assert.deepEqual(
    eventsOf(run.id, 'runs.eval').map((e) => e.step),
    [10, 20, 30],
  );
  assert.deepEqual(
    eventsOf(run.id, 'runs.checkpoint').map((e) => e.step),
    [10, 20, 30],
  );

  const done = await ok('runs.get', { id: run.id });
  assert.equal(done.status, 'completed');
  assert.equal(done.step, 30);
  assert.equal(done.config.job.trainer, 'toy');
  assert.equal(done.totalSteps, 30);

  const m = await ok('runs.metrics', { id: run.id, names: ['loss', 'eval_accuracy'] });
  assert.deepEqual(Object.keys(m.series).sort(), ['eval_accuracy', 'loss']);
  assert.equal(m.series.loss.steps.length, 30);
  assert.deepEqual(m.series.eval_accuracy.steps, [10, 20, 30]);
  assert.ok(m.series.loss.values[29] < m.series.loss.values[0], 'loss goes down');
  const since = await ok('runs.metrics', { id: run.id, names: ['lr'], sinceStep: 25 });
  assert.deepEqual(since.series.lr.steps, [26, 27, 28, 29, 30]);
  assert.equal(
    (await ok('runs.metrics', { id: run.id, name: 'loss' })).points.length,
    30,
    'the one-name form still works',
  );

  const ck = await ok('runs.checkpoints', { id: run.id });
  assert.deepEqual(
    ck.checkpoints.map((c: any) => c.step),
    [20, 30],
    'keep-last-2 pruned the rows as well as the folders',
  );
  for (const c of ck.checkpoints) assert.ok(existsSync(join(c.path, 'manifest.json')), c.path);
  assert.equal(typeof ck.checkpoints[1].metrics.accuracy, 'number');
  assert.equal(ck.finalDir, join(tmp.dir, 'runs', String(run.id), 'final'));
  assert.ok(existsSync(join(ck.finalDir, 'model.safetensors')));
  const finalFiles = readdirSync(ck.finalDir);
  assert.equal(
    ck.finalBytes,
    finalFiles.reduce((s: number, f: string) => s + statSync(join(ck.finalDir, f)).size, 0),
    'the final adapter has a size like the checkpoints',
  );
  assert.ok(ck.finalBytes > 0);
});

test('pause, then resume to completion', async () => {
  const run = await startToy({ maxSteps: 40, saveEvery: 0 }, { stepDelayMs: 25 });
  await waitFor(() => stepsSeen(run.id).length >= 3, 'a few steps');
  const paused = await ok('runs.pause', { id: run.id });
  assert.equal(paused.status, 'paused');
  assert.ok(paused.step >= 3 && paused.step < 40, `paused at ${paused.step}`);
  const ck = await ok('runs.checkpoints', { id: run.id });
  assert.deepEqual(
    ck.checkpoints.map((c: any) => c.step),
    [paused.step],
    'pausing wrote a checkpoint at the step reached',
  );
  assert.equal((await fail('runs.pause', { id: run.id })).code, 'conflict');

  const resumed = await ok('runs.resume', { id: run.id });
  assert.equal(resumed.status, 'running');
  await waitFor(() => eventsOf(run.id, 'runs.status').some((p) => p.status === 'completed'), 'completion after resume');
  const steps = stepsSeen(run.id);
  assert.deepEqual(
    steps,
    Array.from({ length: 40 }, (_, i) => i + 1),
    'no step repeated or skipped across the pause',
  );
  assert.equal((await fail('runs.resume', { id: run.id })).code, 'conflict', 'a completed run cannot be resumed');
});

test('cancel stops a running run and writes no checkpoint after it', async () => {
  const run = await startToy({ maxSteps: 200, saveEvery: 5, keepLastK: 1 }, { stepDelayMs: 20 });
  await waitFor(() => stepsSeen(run.id).length >= 7, 'a few steps');
  const r = await ok('runs.cancel', { id: run.id });
  assert.equal(r.status, 'cancelled');
  assert.ok(r.step < 200);
  const root = join(tmp.dir, 'runs', String(run.id), 'checkpoints');
  const dirs = readdirSync(root);
  assert.ok(
    dirs.every((d) => /^step-\d+$/.test(d)),
    `no temp folders left: ${dirs}`,
  );
  const ck = await ok('runs.checkpoints', { id: run.id });
  assert.ok(
    ck.checkpoints.every((c: any) => c.step % 5 === 0 && c.step <= r.step),
    'only scheduled checkpoints, none at the cancel',
  );
  assert.equal(ck.finalDir, null);
  assert.equal(ck.finalBytes, null);
  assert.equal((await ok('runs.cancel', { id: run.id })).status, 'cancelled', 'cancelling again is harmless');
});

test('invalid hyperparameters and configs are refused before any run exists, naming the field', async () => {
  const before = (await ok('runs.list')).runs.length;
  const bad = await fail('runs.start', vlm({ batchSize: 0 }));
  assert.equal(bad.code, 'invalid_request');
  assert.equal(bad.field, 'hparams.batchSize');
  // refused by the contract's schema, in the API's path (the CLI names the flag, --batch-size)
  assert.match(bad.message, /hparams\.batchSize: must be ≥ 1 \(got 0\)/);
  const both = await fail('runs.start', vlm({ epochs: 2 }));
  assert.equal(both.field, 'hparams.maxSteps');
  const warm = await fail('runs.start', vlm({ warmupSteps: 4 }));
  assert.equal(warm.field, 'hparams.warmupSteps');
  // the toy trainer is a test fixture: the API names no trainer and takes no trainer options
  const toy = await fail('runs.start', { ...vlm(), trainer: 'toy' });
  assert.equal(toy.code, 'invalid_request');
  assert.match(toy.message, /trainer/);
  const opt = await fail('runs.start', { ...vlm(), options: { data: { dim: 5 } } });
  assert.match(opt.message, /options/);
  const noModel = await fail('runs.start', { data: { datasetId }, hparams: {} });
  assert.equal(noModel.field, 'model');
  const used = await fail('runs.start', { ...vlm(), outDir: join(tmp.dir, 'runs') });
  assert.equal(used.field, 'outDir', 'a folder that already holds something is not a new run folder');
  assert.equal((await ok('runs.list')).runs.length, before, 'no run row was created');
  assert.equal((await fail('runs.pause', { id: 9999 })).code, 'not_found');
});

test('a run left "running" by a dead process is interrupted at backend start and resumes', async () => {
  // a run whose job process is gone: status running, a job spec, no live process
  const run = insertRun(backend.db, { name: 'orphan', config: {} });
  const outDir = join(tmp.dir, 'runs', 'orphan');
  saveJobSpec(backend.db, run.id, { trainer: 'toy', outDir, config: toyConfig({ maxSteps: 6 }) });
  updateRunStatus(backend.db, run.id, 'running');
  const other = createBackend({ dataDir: tmp.dir, host: 'test', log: quiet, jobs: { entry: TOY_JOB_ENTRY } });
  try {
    assert.equal(((await other.dispatcher.call('runs.get', { id: run.id })) as any).status, 'interrupted');
  } finally {
    other.close();
  }
  const r = await ok('runs.resume', { id: run.id });
  assert.equal(r.status, 'running');
  await waitFor(
    () => eventsOf(run.id, 'runs.status').some((p) => p.status === 'completed'),
    'completion of the resumed orphan',
  );
});

test('two runs.start on one new folder at once: one runs, the other is refused (conflict on outDir), no second row', async () => {
  const outDir = join(tmp.dir, 'runs', 'shared');
  const rows = () => (backend.db.prepare('SELECT COUNT(*) AS n FROM runs').get() as { n: number }).n;
  const before = rows();
  const [a, b] = await Promise.all([
    backend.dispatcher.dispatch('runs.start', { ...vlm(), outDir }),
    backend.dispatcher.dispatch('runs.start', { ...vlm(), outDir }),
  ]);
  const won = [a, b].filter((x) => x.ok) as { ok: true; result: any }[];
  const lost = [a, b].filter((x) => !x.ok) as { ok: false; error: ApiErrorData }[];
  assert.equal(won.length, 1, JSON.stringify(lost));
  assert.equal(lost.length, 1);
  assert.equal(lost[0].error.code, 'conflict');
  assert.equal(lost[0].error.field, 'outDir');
  assert.match(
    lost[0].error.message,
    new RegExp(`^run folder ${outDir} is in use by process ${process.pid} \\(a run starting`),
  );
  const id = won[0].result.run.id;
  await waitFor(() => eventsOf(id, 'runs.status').some((p) => p.status !== 'running'), 'the end of the run');
  assert.equal((await ok('runs.get', { id })).status, 'completed');
  assert.equal(rows(), before + 1, 'the refused start left no run behind');
  const again = await fail('runs.start', { ...vlm(), outDir });
  assert.equal(again.field, 'outDir', 'a finished run folder is not empty');
});
