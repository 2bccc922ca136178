// `lenslab train` and `lenslab eval` end to end on a tiny LLaVA: a path is imported (and reused the second time),
// the plan and memory estimate are printed before training, progress lines stream, the run is stored; eval of the
// base and of the run's adapter on the same items, compared.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { until } from '../helpers/wait';
import { openDatabase, closeDatabase } from '../../src-main/storage/database';
import { listMetrics } from '../../src-main/storage/runs-queries';
import { listCheckpointRows } from '../../src-main/jobs/store';
import { listCheckpoints } from '../../src-main/training/checkpoints';
import { runCli } from '../../src-main/cli';
import { writeDemoDataset } from '../../src-main/models/demo/dataset';
import { writeTinyModel } from './vlm-fixture';

const tmp = tempDir('train-cli-');
after(() => tmp.cleanup());
const env = { ...process.env, LENSLAB_GRAPH_CACHE: join(tmp.dir, 'graph-cache'), LENSLAB_NO_TTY: '1' };
const dataDir = join(tmp.dir, 'app');
const modelDir = writeTinyModel(join(tmp.dir, 'model'));
await writeDemoDataset(join(tmp.dir, 'icons'), { seed: 9, count: 20, size: 32, families: ['colors'] });
const vqa = join(tmp.dir, 'icons', 'vqa.jsonl');

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(
    ['--data-dir', dataDir, ...args],
    { out: (t) => out.push(t), err: (t) => err.push(t) },
    env,
  );
  return { code, out: out.join('\n'), err: err.join('\n') };
}

test('usage and hyperparameter errors are refused before anything runs', async () => {
  const noOut = await cli('train', '--model', modelDir, '--data', vqa);
  assert.equal(noOut.code, 2);
  assert.match(noOut.err, /--out DIR is required/);
  const bad = await cli(
    'train',
    '--model',
    modelDir,
    '--data',
    vqa,
    '--out',
    join(tmp.dir, 'bad'),
    '--batch-size',
    'four',
  );
  assert.equal(bad.code, 2);
  assert.match(bad.err, /batchSize \(--batch-size\): must be a number \(got "four"\)/);
  const both = await cli(
    'train',
    '--model',
    modelDir,
    '--data',
    vqa,
    '--out',
    join(tmp.dir, 'bad'),
    '--epochs',
    '2',
    '--steps',
    '3',
  );
  assert.equal(both.code, 2);
  assert.match(both.err, /give either epochs or maxSteps/);
  const missing = await cli(
    'train',
    '--model',
    modelDir,
    '--data',
    join(tmp.dir, 'nothing-here'),
    '--out',
    join(tmp.dir, 'bad'),
  );
  assert.equal(missing.code, 2);
  assert.match(missing.err, /neither a dataset \(id or name\) nor an existing file or folder/);
  assert.equal(existsSync(join(tmp.dir, 'bad')), false, 'no run folder was made');
});

test('train, then evaluate base and adapter on the same items', async () => {
  const out = join(tmp.dir, 'run');
  const t = await cli(
    'train',
    '--model',
    modelDir,
    '--data',
    vqa,
    '--out',
    out,
    '--method',
    'lora',
    '--steps',
    '6',
    '--batch-size',
    '4',
    '--lr',
    '5e-3',
    '--dropout',
    '0',
    '--save-every',
    '3',
    '--eval-items',
    '2',
  );
  assert.equal(t.code, 0, t.err);
  assert.match(t.out, /imported \d+ item\(s\) from .*vqa\.jsonl into dataset \d+/);
  assert.match(t.out, /plan: 6 steps .* training samples/);
  assert.match(t.out, /memory: needs about [\d.]+ [KMG]iB of [\d.]+ [KMG]iB available/);
  assert.match(t.out, /run 1 completed: 6 steps in .*; adapter in .*run[/\\]final/);
  assert.match(t.err, /step 6\/6 loss [\d.]+ lr .* samples\/s .* tok\/s \| ETA/);
  assert.ok(existsSync(join(out, 'final', 'adapter_model.safetensors')));

  const again = await cli('train', '--model', modelDir, '--data', vqa, '--out', out);
  assert.equal(again.code, 2, 'a completed run folder is not reused');
  assert.match(again.err, /already holds run 1 \(completed\)/);

  const base = await cli('eval', '--model', modelDir, '--data', vqa, '--max-new-tokens', '3', '--show', '1');
  assert.equal(base.code, 0, base.err);
  assert.match(base.err, /using dataset \d+ .*imported from .*vqa\.jsonl before/);
  const baseId = /evaluation (\d+): vqa on \d+ item\(s\) of dataset .* \(val\)/.exec(base.out)?.[1];
  assert.ok(baseId, base.out);
  assert.match(base.out, /exact_match\s+[\d.]+/);
  const tuned = await cli(
    'eval',
    '--model',
    modelDir,
    '--run',
    '1',
    '--data',
    vqa,
    '--max-new-tokens',
    '3',
    '--compare',
    baseId,
    '--json',
  );
  assert.equal(tuned.code, 0, tuned.err);
  const j = JSON.parse(tuned.out);
  assert.equal(j.evaluation.id, Number(baseId) + 1);
  assert.equal(j.evaluation.runId, 1);
  assert.equal(j.evaluation.status, 'completed');
  assert.ok('exact_match' in j.comparison.metrics);
  assert.equal(j.predictions.length, j.evaluation.predictionCount);
  const ck = await cli('eval', '--model', modelDir, '--run', '1', '--step', '4', '--data', vqa);
  assert.equal(ck.code, 1);
  assert.match(ck.err, /run 1 has no checkpoint at step 4/);
});

test('Ctrl-C pauses `lenslab train` after a step (with a checkpoint); the same command resumes it to the end', async () => {
  const out = join(tmp.dir, 'run-int');
  const cliPath = fileURLToPath(new URL('../../src-main/cli.ts', import.meta.url));
  const args = [
    '--import',
    'tsx',
    cliPath,
    '--data-dir',
    dataDir,
    'train',
    '--model',
    modelDir,
    '--data',
    vqa,
    '--out',
    out,
    '--steps',
    '400',
    '--batch-size',
    '2',
    '--save-every',
    '0',
  ];
  // the CLI and its job in one process group, as in a terminal: SIGINT goes to both
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  let sent = false;
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => {
    stderr += d;
    if (!sent && /step \d+\/400/.test(stderr) && child.pid) {
      sent = true;
      try {
        process.kill(-child.pid, 'SIGINT');
      } catch {
        /* already gone */
      }
    }
  });
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  assert.equal(code, 0, stderr);
  assert.match(stderr, /pausing after the current step/);
  const m = /run (\d+) paused at step (\d+)\/400; resume with: lenslab train --out /.exec(stdout);
  assert.ok(m, stdout + stderr);
  assert.ok(Number(m[2]) < 400);
  assert.ok(
    existsSync(join(out, 'checkpoints', `step-${m[2].padStart(6, '0')}`, 'adapter', 'adapter_model.safetensors')),
    'the pause wrote a checkpoint',
  );

  const again = await cli('train', '--out', out);
  assert.equal(again.code, 0, again.err);
  assert.match(again.out, new RegExp(`resuming run ${m[1]} from its last checkpoint`));
  assert.match(again.err, new RegExp(`resumed from the checkpoint at step ${m[2]}`));
  assert.match(again.out, new RegExp(`run ${m[1]} completed: 400 steps`));
});

test('SIGKILL of `lenslab train` alone: its job pauses itself; every step and checkpoint is on record, and the same command resumes', async () => {
  const out = join(tmp.dir, 'run-killed');
  const cliPath = fileURLToPath(new URL('../../src-main/cli.ts', import.meta.url));
  const args = [
    '--import',
    'tsx',
    cliPath,
    '--data-dir',
    dataDir,
    'train',
    '--model',
    modelDir,
    '--data',
    vqa,
    '--out',
    out,
    '--steps',
    '120',
    '--batch-size',
    '2',
    '--save-every',
    '4',
    '--eval-every',
    '0',
  ];
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stdout.on('data', () => undefined);
  child.stderr.on('data', (d) => {
    stderr += d;
    const m = /step (\d+)\/120/g;
    let last = 0;
    for (let x = m.exec(stderr); x; x = m.exec(stderr)) last = Number(x[1]);
    if (last >= 14) child.kill('SIGKILL'); // the CLI only: its job keeps running and pauses itself
  });
  await new Promise((r) => child.on('exit', r));
  const ended = await until(
    () =>
      existsSync(join(out, 'process.json')) && JSON.parse(readFileSync(join(out, 'process.json'), 'utf8')).endedAt
        ? JSON.parse(readFileSync(join(out, 'process.json'), 'utf8'))
        : null,
    'the job to pause itself',
    60_000,
  );
  assert.equal(ended.outcome, 'paused', stderr);

  const again = await cli('train', '--out', out);
  assert.equal(again.code, 0, again.err);
  const runId = Number(/resuming run (\d+) from its last checkpoint/.exec(again.out)?.[1]);
  assert.ok(runId > 0, again.out);
  assert.match(again.out, new RegExp(`run ${runId} completed: 120 steps`));
  const db = openDatabase(join(dataDir, 'lenslab.db'));
  try {
    assert.deepEqual(
      listMetrics(db, runId, 'loss').map((p) => p.step),
      Array.from({ length: 120 }, (_, i) => i + 1),
      'every step, those after the kill included',
    );
    assert.deepEqual(
      listCheckpointRows(db, runId).map((c) => [c.step, c.path]),
      listCheckpoints(join(out, 'checkpoints')).map((c) => [c.step, c.dir]),
      'the checkpoint rows are the checkpoint folders',
    );
  } finally {
    closeDatabase(db);
  }
});
