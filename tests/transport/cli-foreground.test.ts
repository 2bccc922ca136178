import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { openDatabase, closeDatabase } from '../../src-main/storage/database';
import { insertRun, getRun } from '../../src-main/storage/runs-queries';
import { JobRunner } from '../../src-main/jobs/runner';
import { runInForeground } from '../../src-main/transport/cli/foreground';
import { formatProgress, formatDuration } from '../../src-main/transport/cli/progress';
import { registerToyTrainer, TOY_JOB_ENTRY } from '../jobs/fixtures/toy-trainer';

const { dir, cleanup } = tempDir('fg-');
const db = openDatabase(':memory:');
registerToyTrainer();
const runner = new JobRunner({ db, entry: TOY_JOB_ENTRY });
after(async () => {
  await runner.shutdown();
  closeDatabase(db);
  cleanup();
});

test('progress line shows bar, step, loss, lr, grad norm, throughput and ETA', () => {
  const line = formatProgress(
    {
      type: 'progress',
      step: 40,
      totalSteps: 100,
      loss: 0.693147,
      lr: 2e-4,
      gradNorm: 0.52,
      samplesPerSec: 31.25,
      tokensPerSec: 4010.4,
      etaSec: 72,
    },
    10,
  );
  assert.equal(
    line,
    '[####------]  40% step 40/100 loss 0.6931 lr 2.00e-4 gnorm 0.52 | 31.3 samples/s 4010 tok/s | ETA 1m12s',
  );
  assert.equal(formatDuration(3725), '1h02m');
  // whole numbers keep their zeros (270.2 samples/s once printed as "27")
  const at = (samplesPerSec: number, loss = 2) =>
    formatProgress(
      {
        type: 'progress',
        step: 1,
        totalSteps: 2,
        loss,
        lr: 1e-3,
        gradNorm: 1,
        samplesPerSec,
        tokensPerSec: 0,
        etaSec: 0,
      },
      4,
    );
  assert.match(at(270.2), / \| 270 samples\/s /);
  assert.match(at(100), / \| 100 samples\/s /);
  assert.match(at(1000.4), / \| 1000 samples\/s /);
  assert.match(at(12345.6), / \| 12346 samples\/s /);
  assert.match(at(0.5), / \| 0\.5 samples\/s /);
  assert.match(at(1, 10), / loss 10 /);
  assert.match(at(1, 0.25), / loss 0\.25 /);
});

test('runInForeground prints progress and events; stop pauses, resume finishes', async () => {
  const runId = insertRun(db, { name: 'fg', config: {} }).id;
  const spec = {
    trainer: 'toy',
    outDir: join(dir, 'run'),
    config: {
      hparams: { maxSteps: 30, saveEvery: 10, evalEvery: 10, lr: 0.05 },
      data: { numSamples: 64, dim: 4 },
      debug: { stepDelayMs: 10 },
    },
  };
  let text = '';
  const io = { write: (t: string) => void (text += t), isTTY: false };
  const stop = new AbortController();
  const off = runner.subscribe((e) => {
    if (e.runId === runId && e.type === 'progress' && e.step === 12) stop.abort();
  });
  assert.equal(await runInForeground(runner, runId, { start: { spec }, io, stop: stop.signal, every: 5 }), 'paused');
  off();
  assert.match(text, /^training 30 steps\n/);
  assert.match(text, /\[#+-+\]\s+16% step 5\/30 loss /);
  assert.match(text, /eval at step 10: loss [\d.]+, accuracy [\d.]+/);
  assert.match(text, /pausing after the current step/);
  assert.match(text, /paused at step 1\d; resume continues from there/);
  text = '';
  const logs: string[] = [];
  const offLog = runner.subscribe((e) => {
    if (e.runId === runId && e.type === 'log') logs.push(e.message);
  });
  assert.equal(await runInForeground(runner, runId, { start: { resume: true }, io }), 'completed');
  offLog();
  // the log names the final folder after its atomic rename, never the temporary one
  assert.ok(logs.includes(`final adapter written to ${join(spec.outDir, 'final')}`), logs.join('\n'));
  assert.ok(!logs.some((m) => m.includes('.tmp-')), logs.join('\n'));
  assert.match(text, /^resumed from the checkpoint at step 1\d \(30 steps in all\)/);
  assert.match(text, /step 30\/30/);
  assert.match(text, /done: loss [\d.]+, accuracy [\d.]+; output in .*final/);
  assert.equal(getRun(db, runId)!.status, 'completed');
});

test('evalAtStart evaluates the base model at step 0, before the first step, and not again on resume', async () => {
  const runId = insertRun(db, { name: 'fg-start', config: {} }).id;
  const spec = {
    trainer: 'toy',
    outDir: join(dir, 'run-start'),
    config: { hparams: { maxSteps: 6, saveEvery: 3, evalAtStart: true, lr: 0.05 }, data: { numSamples: 32, dim: 4 } },
  };
  const events: Array<{ type: string; step?: number }> = [];
  const off = runner.subscribe((e) => {
    if (e.runId === runId && (e.type === 'eval' || e.type === 'progress'))
      events.push({ type: e.type, step: (e as { step?: number }).step });
  });
  let text = '';
  assert.equal(
    await runInForeground(runner, runId, {
      start: { spec },
      io: { write: (t: string) => void (text += t), isTTY: false },
    }),
    'completed',
  );
  off();
  assert.deepEqual(events[0], { type: 'eval', step: 0 }, JSON.stringify(events));
  assert.deepEqual(
    events.filter((e) => e.type === 'eval').map((e) => e.step),
    [0, 6],
  );
  assert.match(text, /eval at step 0: loss [\d.]+/);
});
