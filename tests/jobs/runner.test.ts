import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { tempDir } from '../helpers/tmp';
import { makeZombie } from '../helpers/zombie';
import { folderLockHolder } from '../../src-main/jobs/folder-lock';
import { runnerEvent, until } from '../helpers/wait';
import { openDatabase, closeDatabase } from '../../src-main/storage/database';
import { insertRun, getRun, listMetrics, updateRunStatus } from '../../src-main/storage/runs-queries';
import { JobRunner, type RunnerEvent } from '../../src-main/jobs/runner';
import { listCheckpointRows, saveJobSpec } from '../../src-main/jobs/store';
import { writeProcessFile, readProcessFile } from '../../src-main/jobs/process-file';
import { listCheckpoints, verifyCheckpoint } from '../../src-main/training/checkpoints';
import { readSafetensors } from '../../src-main/models/weights/safetensors';
import type { JobSpec } from '../../src-main/jobs/protocol';
import { registerToyTrainer, TOY_JOB_ENTRY, type ToyConfigInput } from './fixtures/toy-trainer';

const { dir, cleanup } = tempDir('jobs-');
const db = openDatabase(join(dir, 'lenslab.db'));
registerToyTrainer();
const runner = new JobRunner({ db, cancelGraceMs: 300, entry: TOY_JOB_ENTRY });
after(async () => {
  await runner.shutdown();
  closeDatabase(db);
  cleanup();
});

const baseConfig = (over: Partial<ToyConfigInput['debug']> = {}, hp: Record<string, unknown> = {}): ToyConfigInput => ({
  hparams: {
    maxSteps: 40,
    batchSize: 8,
    lr: 0.05,
    seed: 7,
    saveEvery: 5,
    keepLastK: 2,
    evalEvery: 10,
    dropout: 0.1,
    warmupSteps: 4,
    ...hp,
  },
  data: { numSamples: 200, evalSamples: 50, dim: 6 },
  debug: { stepDelayMs: 0, ...over },
});
let n = 0;
function newRun(config: ToyConfigInput): { runId: number; spec: JobSpec } {
  const runId = insertRun(db, { name: `r${n}`, config: {} }).id;
  return { runId, spec: { trainer: 'toy', outDir: join(dir, `run-${n++}`), config } };
}
/** Resolve with the first event matching `pred` for a run. */
const when = (runId: number, pred: (e: RunnerEvent) => boolean) => runnerEvent(runner, runId, pred);
const finalWeights = (spec: JobSpec) => {
  const t = readSafetensors(join(spec.outDir, 'final', 'model.safetensors'));
  return [...t.get('w')!.data, ...t.get('b')!.data];
};
function assertClose(a: number[], b: number[], tol = 1e-6) {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol, `param ${i}: ${a[i]} vs ${b[i]}`);
}
const tmpLeft = (spec: JobSpec) => readdirSync(join(spec.outDir, 'checkpoints')).filter((d) => /\.(tmp|del)-/.test(d));

// The reference: one uninterrupted run.
const reference = (async () => {
  const r = newRun(baseConfig());
  await runner.startJob(r.runId, r.spec);
  assert.equal(await runner.wait(r.runId), 'completed');
  return { ...r, weights: finalWeights(r.spec), loss: listMetrics(db, r.runId, 'loss') };
})();

test('an uninterrupted run stores metrics, evals and checkpoints (SQLite and disk)', async () => {
  const ref = await reference;
  const run = getRun(db, ref.runId)!;
  assert.equal(run.status, 'completed');
  assert.equal(run.step, 40);
  assert.equal(run.total_steps, 40);
  assert.deepEqual(
    ref.loss.map((p) => p.step),
    Array.from({ length: 40 }, (_, i) => i + 1),
  );
  assert.ok(ref.loss[39].value! < ref.loss[0].value!, 'loss goes down');
  for (const name of ['lr', 'grad_norm', 'samples_per_sec', 'tokens_per_sec'])
    assert.equal(listMetrics(db, ref.runId, name).length, 40, name);
  assert.deepEqual(
    listMetrics(db, ref.runId, 'eval_loss').map((p) => p.step),
    [10, 20, 30, 40],
  );
  const acc = listMetrics(db, ref.runId, 'eval_accuracy');
  assert.ok(acc[acc.length - 1].value! > 0.7, `eval accuracy ${acc[acc.length - 1].value}`);
  // keep-last-2 on disk and in the checkpoints table
  assert.deepEqual(
    listCheckpoints(join(ref.spec.outDir, 'checkpoints')).map((c) => c.step),
    [35, 40],
  );
  assert.deepEqual(
    listCheckpointRows(db, ref.runId).map((c) => c.step),
    [35, 40],
  );
  assert.deepEqual(tmpLeft(ref.spec), []);
  assert.ok(existsSync(join(ref.spec.outDir, 'final', 'model.safetensors')));
  assert.equal(readProcessFile(ref.spec.outDir)?.outcome, 'done');
});

test('SIGKILL mid-run → interrupted; resume reaches the same parameters as the uninterrupted run', async () => {
  const ref = await reference;
  const r = newRun(baseConfig({ stepDelayMs: 15 }));
  const seen = when(r.runId, (e) => e.type === 'progress' && e.step >= 17);
  const { pid } = await runner.startJob(r.runId, r.spec);
  await seen;
  process.kill(pid, 'SIGKILL');
  assert.equal(await runner.wait(r.runId), 'interrupted');
  const mid = getRun(db, r.runId)!;
  assert.equal(mid.status, 'interrupted');
  assert.match(mid.error!, /SIGKILL/);
  assert.ok(mid.step >= 17 && mid.step < 40);
  const resumed = when(r.runId, (e) => e.type === 'started');
  await runner.resume(r.runId);
  const started = await resumed;
  assert.ok(
    started.type === 'started' &&
      started.resumedFrom !== null &&
      started.resumedFrom >= 15 &&
      started.resumedFrom % 5 === 0,
  );
  assert.equal(await runner.wait(r.runId), 'completed');
  assertClose(finalWeights(r.spec), ref.weights);
  // the loss curve, replayed steps included, is the reference's
  const loss = listMetrics(db, r.runId, 'loss');
  assert.equal(loss.length, 40);
  loss.forEach((p, i) => assert.ok(Math.abs(p.value! - ref.loss[i].value!) < 1e-9, `loss at step ${p.step}`));
  assert.deepEqual(tmpLeft(r.spec), []);
});

test('pause checkpoints at the current step; resume completes with the same result', async () => {
  const ref = await reference;
  const r = newRun(baseConfig({ stepDelayMs: 10 }));
  const seen = when(r.runId, (e) => e.type === 'progress' && e.step >= 7);
  await runner.startJob(r.runId, r.spec);
  await seen;
  assert.equal(await runner.pause(r.runId), 'paused');
  const run = getRun(db, r.runId)!;
  assert.equal(run.status, 'paused');
  const cks = listCheckpoints(join(r.spec.outDir, 'checkpoints'));
  assert.equal(cks[cks.length - 1].step, run.step, 'a checkpoint at the pause step');
  await runner.resume(r.runId);
  assert.equal(await runner.wait(r.runId), 'completed');
  assertClose(finalWeights(r.spec), ref.weights);
});

test('cancel stops the run and leaves no half-written checkpoint, even when killed mid-save', async () => {
  // polite cancel between steps
  const a = newRun(baseConfig({ stepDelayMs: 20 }));
  const seenA = when(a.runId, (e) => e.type === 'progress' && e.step >= 3);
  await runner.startJob(a.runId, a.spec);
  await seenA;
  assert.equal(await runner.cancel(a.runId), 'cancelled');
  assert.equal(getRun(db, a.runId)!.status, 'cancelled');
  assert.deepEqual(
    listCheckpoints(join(a.spec.outDir, 'checkpoints'))
      .map((c) => c.step)
      .filter((s) => s > 5),
    [],
  );

  // cancel while the job is blocked inside a checkpoint write: the grace period runs out, it is killed mid-save
  const b = newRun(baseConfig({ commitDelayMs: 1500 }, { saveEvery: 1 }));
  const seenB = when(b.runId, (e) => e.type === 'progress' && e.step === 2);
  await runner.startJob(b.runId, b.spec);
  await seenB; // step 2's checkpoint is being written now
  assert.equal(await runner.cancel(b.runId), 'cancelled');
  const root = join(b.spec.outDir, 'checkpoints');
  assert.deepEqual(tmpLeft(b.spec), []);
  for (const d of readdirSync(root)) assert.ok(verifyCheckpoint(join(root, d)).ok, `${d} is a complete checkpoint`);
  assert.ok(!existsSync(join(root, 'step-000002')));
  // cancelling a paused run needs no process
  const c = newRun(baseConfig());
  updateRunStatus(db, c.runId, 'paused');
  assert.equal(await runner.cancel(c.runId), 'cancelled');
});

test('NaN loss stops the run with a clear message', async () => {
  const r = newRun(baseConfig({ nanAtStep: 3 }));
  await runner.startJob(r.runId, r.spec);
  assert.equal(await runner.wait(r.runId), 'failed');
  const run = getRun(db, r.runId)!;
  assert.equal(run.status, 'failed');
  assert.match(run.error!, /loss is NaN at step 3 .*diverged.*lower learning rate/);
  assert.equal(listMetrics(db, r.runId, 'loss').length, 2);
});

test('invalid hyperparameters and data that do not fit are refused before any work', async () => {
  const bad = newRun(baseConfig({}, { lr: -1 }));
  await assert.rejects(runner.startJob(bad.runId, bad.spec), /lr \(--lr\): must be > 0/);
  const warm = newRun(baseConfig({}, { maxSteps: undefined, epochs: 1, warmupSteps: 100 }));
  await assert.rejects(runner.startJob(warm.runId, warm.spec), /warmupSteps.*shorter than the run/);
  const kind = newRun(baseConfig());
  await assert.rejects(runner.startJob(kind.runId, { ...kind.spec, trainer: 'nope' }), /unknown trainer "nope"/);
  for (const r of [bad, warm, kind]) {
    assert.equal(getRun(db, r.runId)!.status, 'queued');
    assert.ok(!existsSync(r.spec.outDir), 'no run directory was created');
  }
});

test('recover(): running runs whose process is gone become interrupted; live ones are left alone', async () => {
  const mk = (info: { pid: number; heartbeatAgoMs: number }) => {
    const r = newRun(baseConfig());
    saveJobSpec(db, r.runId, r.spec);
    updateRunStatus(db, r.runId, 'running');
    const at = new Date(Date.now() - info.heartbeatAgoMs).toISOString();
    writeProcessFile(r.spec.outDir, { pid: info.pid, runId: r.runId, startedAt: at, heartbeatAt: at });
    return r.runId;
  };
  // a pid that has certainly exited
  const dead = spawn(process.execPath, ['-e', '0']);
  await new Promise((r) => dead.on('exit', r));
  const gone = mk({ pid: dead.pid!, heartbeatAgoMs: 0 });
  const stale = mk({ pid: process.pid, heartbeatAgoMs: 60_000 });
  const live = mk({ pid: process.pid, heartbeatAgoMs: 0 });
  // a job just SIGKILLed whose parent has not reaped it yet: a zombie, with a heartbeat a moment old
  const z = process.platform === 'linux' ? await makeZombie() : null;
  const zombie = z ? mk({ pid: z.pid, heartbeatAgoMs: 0 }) : null;
  const fresh = new JobRunner({ db });
  const changed = fresh.recover();
  z?.done();
  assert.ok(changed.includes(gone) && changed.includes(stale) && !changed.includes(live));
  if (zombie) assert.ok(changed.includes(zombie), 'a zombie job is dead');
  assert.equal(getRun(db, gone)!.status, 'interrupted');
  assert.equal(getRun(db, live)!.status, 'running');
  updateRunStatus(db, live, 'cancelled');
});

test('app crash: the orphaned job checkpoints and exits; the next app start marks it paused and resume completes it', async () => {
  const ref = await reference;
  const r = newRun(baseConfig({ stepDelayMs: 15 }));
  const parent = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(import.meta.dirname, 'fixtures', 'parent.ts'),
      join(dir, 'lenslab.db'),
      String(r.runId),
      JSON.stringify(r.spec),
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const jobPid = await new Promise<number>((resolve, reject) => {
    let out = '';
    parent.stdout!.on('data', (d) => {
      out += String(d);
      const m = /ready (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    parent.on('exit', () => reject(new Error(`parent exited early: ${out}`)));
  });
  parent.kill('SIGKILL');
  // the job notices its parent is gone, finishes the step, checkpoints and exits
  const deadline = Date.now() + 20_000;
  while (!readProcessFile(r.spec.outDir)?.endedAt && Date.now() < deadline)
    await new Promise((res) => setTimeout(res, 100));
  assert.equal(readProcessFile(r.spec.outDir)?.outcome, 'paused');
  assert.equal(readProcessFile(r.spec.outDir)?.pid, jobPid);
  assert.equal(getRun(db, r.runId)!.status, 'running', 'nobody was left to record the end');
  assert.ok(runner.recover().includes(r.runId));
  assert.equal(getRun(db, r.runId)!.status, 'paused', 'the job paused itself; its journal says so');
  await runner.resume(r.runId);
  assert.equal(await runner.wait(r.runId), 'completed');
  assertClose(finalWeights(r.spec), ref.weights);
});

/** Start fixtures/parent.ts (a stand-in for `lenslab train`) on a run; resolves with it and its job's pid once the job has checkpointed. */
async function startParent(
  r: { runId: number; spec: JobSpec },
  resume: boolean,
  gate?: { loaded: () => void; go: Promise<void> },
) {
  const mode = gate ? 'resume-on-go' : resume ? 'resume' : 'start';
  const parent = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(import.meta.dirname, 'fixtures', 'parent.ts'),
      join(dir, 'lenslab.db'),
      String(r.runId),
      JSON.stringify(r.spec),
      mode,
    ],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  if (gate) {
    await new Promise<void>((res) => parent.stdout!.on('data', (d) => String(d).includes('loaded') && res()));
    gate.loaded();
    await gate.go;
    parent.stdin!.write('go\n');
  }
  const jobPid = await new Promise<number>((resolve, reject) => {
    let out = '';
    parent.stdout!.on('data', (d) => {
      out += String(d);
      const m = /ready (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    parent.on('exit', () => reject(new Error(`parent exited early: ${out}`)));
  });
  return { parent, jobPid };
}

test('two resumes of one paused run started together (two processes): one runs, the other is refused naming the holder', async () => {
  const r = newRun(baseConfig({ stepDelayMs: 20 }));
  await runner.startJob(r.runId, r.spec);
  await when(r.runId, (e) => e.type === 'checkpoint');
  assert.equal(await runner.pause(r.runId), 'paused');
  // both load, then both are released at once: both find the run paused, only the folder lock stops the second
  let loaded = 0;
  let release!: () => void;
  const go = new Promise<void>((res) => (release = res));
  const gate = { go, loaded: () => void (++loaded === 2 && release()) };
  const outcomes = await Promise.allSettled([startParent(r, true, gate), startParent(r, true, gate)]);
  const ok = outcomes.filter((o) => o.status === 'fulfilled') as PromiseFulfilledResult<
    Awaited<ReturnType<typeof startParent>>
  >[];
  const refused = outcomes.filter((o) => o.status === 'rejected') as PromiseRejectedResult[];
  assert.equal(ok.length, 1, `exactly one resume runs: ${refused.map((x) => x.reason).join('; ')}`);
  assert.equal(refused.length, 1);
  assert.match(
    String(refused[0].reason),
    new RegExp(`refused run folder ${r.spec.outDir} is in use by process \\d+ \\(run ${r.runId}, `),
  );
  // the one that runs: stop it (its job pauses itself), then finish the run here
  ok[0].value.parent.kill('SIGKILL');
  await until(
    () => readProcessFile(r.spec.outDir)?.pid === ok[0].value.jobPid && readProcessFile(r.spec.outDir)?.endedAt,
    'the job to pause itself',
    20_000,
  );
  runner.recover();
  await runner.resume(r.runId);
  assert.equal(await runner.wait(r.runId), 'completed');
  assert.deepEqual(
    listMetrics(db, r.runId, 'loss').map((p) => p.step),
    Array.from({ length: 40 }, (_, i) => i + 1),
  );
});

test('a second run on a folder in use is refused while the first runs, and may start once it has finished', async () => {
  const a = newRun(baseConfig({ stepDelayMs: 10 }));
  const b = newRun(baseConfig());
  await runner.startJob(a.runId, a.spec);
  await assert.rejects(
    runner.startJob(b.runId, { ...b.spec, outDir: a.spec.outDir }),
    new RegExp(`run folder ${a.spec.outDir} is in use by process \\d+ \\(run ${a.runId}, job process`),
  );
  assert.equal(getRun(db, b.runId)!.status, 'queued');
  assert.equal(await runner.wait(a.runId), 'completed');
  assert.equal(folderLockHolder(a.spec.outDir), null, 'the lock went with the job');
});

test('SIGKILL of the parent only (the job pauses itself), three times: metrics and checkpoint rows match the files', async () => {
  const ref = await reference;
  const r = newRun(baseConfig({ stepDelayMs: 20 }));
  const root = join(r.spec.outDir, 'checkpoints');
  const rowsMatchDisk = () =>
    assert.deepEqual(
      listCheckpointRows(db, r.runId).map((c) => [c.step, c.path]),
      listCheckpoints(root).map((c) => [c.step, c.dir]),
      'one row per checkpoint folder, none for a pruned one',
    );
  const allSteps = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
  for (let kill = 0; kill < 3; kill++) {
    const { parent, jobPid } = await startParent(r, kill > 0);
    parent.kill('SIGKILL');
    await until(
      () => readProcessFile(r.spec.outDir)?.pid === jobPid && readProcessFile(r.spec.outDir)?.endedAt,
      `job ${jobPid} to pause itself`,
      20_000,
    );
    assert.equal(getRun(db, r.runId)!.status, 'running', 'nobody was left to record the pause');
    assert.ok(runner.recover().includes(r.runId));
    const run = getRun(db, r.runId)!;
    assert.equal(run.status, 'paused', `kill ${kill}: ${run.error}`);
    assert.ok(run.step < 40, `kill ${kill} came before the end (step ${run.step})`);
    rowsMatchDisk();
    assert.equal(listCheckpointRows(db, r.runId).at(-1)?.step, run.step, 'the pause checkpoint is recorded');
    for (const name of ['loss', 'lr', 'grad_norm'])
      assert.deepEqual(
        listMetrics(db, r.runId, name).map((p) => p.step),
        allSteps(run.step),
        `${name}, kill ${kill}`,
      );
  }
  await runner.resume(r.runId);
  assert.equal(await runner.wait(r.runId), 'completed');
  rowsMatchDisk();
  assert.deepEqual(
    listMetrics(db, r.runId, 'loss').map((p) => p.step),
    allSteps(40),
  );
  assert.deepEqual(
    listMetrics(db, r.runId, 'eval_loss').map((p) => p.step),
    [10, 20, 30, 40],
  );
  assertClose(finalWeights(r.spec), ref.weights);
});

/** A 64 KiB tmpfs at `mnt` (root only; null where it cannot be mounted). */
function smallDisk(mnt: string): (() => void) | null {
  mkdirSync(mnt, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt], { stdio: 'ignore' });
  } catch {
    return null;
  }
  return () => execFileSync('umount', ['-l', mnt], { stdio: 'ignore' });
}

test('a full disk before step 1 (the compiled-graph cache) pauses the run naming the folder; it resumes once there is space', async (t) => {
  const mnt = join(dir, 'small-disk');
  const unmount = smallDisk(mnt);
  if (!unmount) return t.skip('mounting a small tmpfs needs root');
  try {
    const cache = join(mnt, 'graphs');
    const r = newRun(baseConfig({ graphCacheDir: cache }));
    await runner.startJob(r.runId, r.spec);
    assert.equal(await runner.wait(r.runId), 'paused', getRun(db, r.runId)!.error ?? '');
    const run = getRun(db, r.runId)!;
    assert.match(
      run.error ?? '',
      new RegExp(
        `^paused: cannot write the compiled-graph cache entry ${cache}/[0-9a-f]{16,}: no space left on device \\(ENOSPC\\)\\. Free some disk space and resume`,
      ),
    );
    assert.equal(run.step, 0);
    assert.deepEqual(readdirSync(cache), [], 'no partial cache entry is left');
    execFileSync('mount', ['-o', 'remount,size=8m', mnt], { stdio: 'ignore' }); // space freed
    await runner.resume(r.runId);
    assert.equal(await runner.wait(r.runId), 'completed');
  } finally {
    unmount();
  }
});

test('the database cannot be written when the job ends (SQLITE_FULL): no crash, wait() settles, recover() records it later', async () => {
  const r = newRun(baseConfig({ stepDelayMs: 5 }));
  const logs: string[] = [];
  const real = db.prepare.bind(db);
  let full = false;
  const off = runner.subscribe((e) => {
    if (e.runId !== r.runId) return;
    if (e.type === 'log') logs.push(e.message);
    if (e.type === 'progress' && e.step === 30) full = true; // from here on every write fails
  });
  (db as unknown as { prepare: (sql: string) => unknown }).prepare = (sql: string) => {
    if (full && /^\s*(INSERT|UPDATE|DELETE)/i.test(sql))
      throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    return real(sql);
  };
  try {
    await runner.startJob(r.runId, r.spec);
    assert.equal(await runner.wait(r.runId), 'completed');
  } finally {
    delete (db as unknown as { prepare?: unknown }).prepare;
    off();
  }
  assert.equal(getRun(db, r.runId)!.status, 'running', 'the end could not be written');
  assert.ok(
    logs.some((m) =>
      new RegExp(
        `^could not record that run ${r.runId} is completed in the database: database or disk is full \\(SQLITE_FULL\\)`,
      ).test(m),
    ),
    logs.join('\n'),
  );
  assert.ok(listMetrics(db, r.runId, 'loss').length < 40, 'steps after the disk filled were not stored');
  // the database can be written again: the next start of the app records the outcome and the missing steps
  assert.ok(runner.recover().includes(r.runId));
  assert.equal(getRun(db, r.runId)!.status, 'completed');
  assert.deepEqual(
    listMetrics(db, r.runId, 'loss').map((p) => p.step),
    Array.from({ length: 40 }, (_, i) => i + 1),
  );
});
