// A backend owns its runtimes and disposes of all of them: 50 backends opened and closed on one data folder, some
// of them with a backend worker (runs.estimate), a generation worker (chat.generate) and a training job process
// running when they close, leave this process with the threads, open files, handles and child processes it had.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createBackend, type Backend } from '../../src-main/services/backend';
import { insertRun } from '../../src-main/storage/runs-queries';
import { tempDir } from '../helpers/tmp';
import { okOn as ok } from '../helpers/dispatch';
import { until } from '../helpers/wait';
import { registerToyTrainer, TOY_JOB_ENTRY } from '../jobs/fixtures/toy-trainer';
import { importIcons, writeTinyModel } from '../training/vlm-fixture';

const tmp = tempDir('backend-life-');
after(() => tmp.cleanup());
const dataDir = join(tmp.dir, 'data');
const quiet = { error() {}, warn() {} };
registerToyTrainer();

/** Child processes of this process (Linux /proc), tsx's esbuild service left out. */
function children(): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid && !stat.startsWith(`${name} (esbuild)`)) out.push(Number(name));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/** Threads of this process, libvips' own pool left out (sharp grows and shrinks it on its own schedule). */
function threads(): number {
  let n = 0;
  for (const t of readdirSync('/proc/self/task')) {
    try {
      if (readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim() !== 'libvips worker') n++;
    } catch {
      /* ended meanwhile */
    }
  }
  return n;
}

interface Snapshot {
  threads: number;
  fds: number;
  /** Child processes other than tsx's esbuild service (started once, on first use, by the TypeScript loader). */
  children: number;
  resources: Record<string, number>;
}

function snapshot(): Snapshot {
  const resources: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) resources[r] = (resources[r] ?? 0) + 1;
  return { threads: threads(), fds: readdirSync('/proc/self/fd').length, children: children().length, resources };
}

const modelDir = writeTinyModel(join(tmp.dir, 'model'));
let datasetId = 0;

/** One backend's life; `busy` starts every runtime, and a training job that is still running when it closes. */
async function life(i: number, busy: boolean): Promise<number> {
  let threads = 0;
  const b: Backend = createBackend({
    dataDir,
    host: 'test',
    log: quiet,
    jobs: { entry: TOY_JOB_ENTRY },
    chat: { inProcess: false },
    work: { inProcess: false },
  });
  try {
    assert.equal((await ok(b, 'system.info')).dataDir, dataDir);
    await ok(b, 'runs.list');
    if (busy) {
      if (!datasetId) datasetId = await importIcons(b.db, dataDir, join(tmp.dir, 'icons'));
      // the shared backend worker thread
      const est = await ok(b, 'runs.estimate', {
        model: { path: modelDir },
        data: { datasetId },
        hparams: { maxSteps: 2, batchSize: 2 },
      });
      assert.equal(est.plan.totalSteps, 2);
      // the generation worker thread
      const r = await ok(b, 'chat.generate', {
        requestId: `r${i}`,
        modelDir,
        messages: [{ role: 'user', content: 'hi' }],
        options: { maxNewTokens: 2 },
        save: false,
      });
      assert.equal(r.ids.length, 2);
      // a job process, still stepping when the backend closes
      const run = insertRun(b.db, { name: `life ${i}`, config: {} });
      const config = {
        hparams: { maxSteps: 10_000, batchSize: 4, saveEvery: 0 },
        data: { numSamples: 32, dim: 3 },
        debug: { stepDelayMs: 20 },
      };
      await b.ctx.training.runner.startJob(run.id, {
        trainer: 'toy',
        outDir: join(tmp.dir, 'runs', String(run.id)),
        config,
      });
      assert.ok(children().includes(b.ctx.training.runner.pid(run.id)!), 'the job process runs');
      threads = snapshot().threads;
    }
  } finally {
    // every other busy backend shuts down gracefully (jobs pause, workers close); the rest only close at once
    if (busy && i % 20 === 0) await b.shutdown();
    b.close();
  }
  return threads;
}

test('50 backends open and close without leaking threads, files, handles or child processes', async () => {
  // warm up once: lazily created pools (libuv, sharp, onnxruntime) and module caches belong to the baseline
  await life(0, true);
  await until(() => children().length === 0, 'the warm-up job to exit', 30_000, 50);
  // threads of a terminated worker take a moment to go: the baseline is a count that held for 2 s
  let last = snapshot().threads;
  let since = Date.now();
  await until(
    () => {
      const t = snapshot().threads;
      if (t !== last) [last, since] = [t, Date.now()];
      return Date.now() - since >= 2000;
    },
    'a steady thread count',
    60_000,
    100,
  );
  const settled = (a: Snapshot, b: Snapshot) =>
    a.threads <= b.threads &&
    a.fds <= b.fds &&
    a.children === 0 &&
    JSON.stringify(a.resources) === JSON.stringify(b.resources);
  const before = snapshot();
  assert.equal(before.children, 0);

  let peak = 0;
  for (let i = 1; i <= 50; i++) peak = Math.max(peak, await life(i, i % 10 === 0));
  assert.ok(
    peak >= before.threads + 2,
    `the two workers ran as threads (${peak} threads at the peak, ${before.threads} before)`,
  );
  let now = snapshot();
  await until(
    () => settled((now = snapshot()), before),
    `resources to return to the baseline ${JSON.stringify(before)}`,
    30_000,
    100,
  ).catch(() => {});
  assert.deepEqual(now, { ...before, threads: now.threads, fds: now.fds });
  assert.ok(now.threads <= before.threads, `threads: ${now.threads} after, ${before.threads} before`);
  assert.ok(now.fds <= before.fds, `open files: ${now.fds} after, ${before.fds} before`);
});
