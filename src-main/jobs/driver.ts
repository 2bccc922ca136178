// The training loop around a Trainer, as run inside a job process: resume from the latest checkpoint, step,
// report progress (loss, lr, grad norm, samples/s, tokens/s, ETA), evaluate and checkpoint on schedule, stop on
// NaN/Inf, and honour pause (checkpoint, then stop) and cancel (stop, write nothing) between steps.
import { existsSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  cleanCheckpoints,
  latestCheckpoint,
  listCheckpoints,
  loadCheckpoint,
  pruneCheckpoints,
  saveCheckpoint,
  stepDirName,
} from '../training/checkpoints';
import type { JobEvent, JobSpec } from './protocol';
import { isDiskFull, nameDiskFull } from '../util/disk-full';
import type { Trainer } from './trainer';
import { loadTrainerModule } from './trainers';

export type JobOutcome = 'done' | 'paused' | 'cancelled' | 'failed';

export interface JobControl {
  pause: boolean;
  cancel: boolean;
}

export function checkpointRoot(outDir: string): string {
  return join(outDir, 'checkpoints');
}

export function finalDir(outDir: string): string {
  return join(outDir, 'final');
}

const yieldToEvents = () => new Promise<void>((r) => setImmediate(r));

/** Run a job to one of its outcomes. Every event goes through `emit`; errors become a 'failed' event. */
export async function runJob(
  spec: JobSpec,
  resume: boolean,
  control: JobControl,
  emit: (e: JobEvent) => void,
): Promise<JobOutcome> {
  const log = (message: string, level: 'info' | 'warn' | 'error' = 'info') => emit({ type: 'log', level, message });
  let trainer: Trainer | null = null;
  let step = 0;
  try {
    const mod = await loadTrainerModule(spec.trainer);
    trainer = mod.createTrainer(spec.config, { outDir: spec.outDir, log });
    const root = checkpointRoot(spec.outDir);
    const removed = cleanCheckpoints(root);
    if (removed.length) log(`removed incomplete checkpoint data: ${removed.join(', ')}`, 'warn');
    const latest = resume ? latestCheckpoint(root) : null;
    if (resume && !latest) log('no checkpoint to resume from; starting from the beginning', 'warn');
    await trainer.init(latest ? loadCheckpoint(latest.dir) : null);
    step = trainer.step;
    const plan = trainer.plan;
    emit({
      type: 'started',
      step,
      totalSteps: plan.totalSteps,
      resumedFrom: latest ? latest.step : null,
      pid: process.pid,
    });

    let lastSaved = latest ? latest.step : -1;
    let lastEval: Record<string, number> = {};
    const save = async (metrics: Record<string, number>) => {
      const files = await trainer!.saveState();
      let ref;
      try {
        ref = saveCheckpoint(root, step, files, { info: { metrics } });
      } catch (e) {
        throw nameDiskFull(e, 'cannot write the checkpoint', join(root, stepDirName(step)));
      }
      // prune only after the new one is committed, and report what went
      const pruned = pruneCheckpoints(root, plan.keepLastK);
      lastSaved = step;
      emit({ type: 'checkpoint', step, path: ref.dir, bytes: ref.bytes, pruned, metrics });
    };
    const evaluate = async () => {
      const r = await trainer!.evaluate();
      lastEval = r.metrics;
      emit({ type: 'eval', step, metrics: r.metrics, task: r.task, split: r.split, predictions: r.predictions });
      return r.metrics;
    };

    // the base model's score at step 0, so the curves start where training started (a resumed run has it already)
    if (step === 0 && plan.evalAtStart && !latest) await evaluate();

    let emaStepSec = 0;
    let emaSamples = 0;
    let emaTokens = 0;
    const alpha = 0.3;
    while (trainer.step < plan.totalSteps) {
      await yieldToEvents();
      if (control.cancel || control.pause) break;
      const t0 = performance.now();
      const r = await trainer.trainStep();
      const dt = Math.max(1e-6, (performance.now() - t0) / 1000);
      step = r.step;
      if (!Number.isFinite(r.loss) || !Number.isFinite(r.gradNorm)) {
        const what = !Number.isFinite(r.loss) ? `loss is ${r.loss}` : `gradient norm is ${r.gradNorm}`;
        const message = `${what} at step ${r.step} (lr ${r.lr.toExponential(2)}): training diverged and was stopped. Try a lower learning rate (--lr), more warmup, or gradient clipping (--clip-norm).`;
        emit({ type: 'failed', step: r.step, message });
        return 'failed';
      }
      const first = emaStepSec === 0;
      emaStepSec = first ? dt : alpha * dt + (1 - alpha) * emaStepSec;
      emaSamples = first ? r.samples / dt : alpha * (r.samples / dt) + (1 - alpha) * emaSamples;
      emaTokens = first ? r.tokens / dt : alpha * (r.tokens / dt) + (1 - alpha) * emaTokens;
      emit({
        type: 'progress',
        step: r.step,
        totalSteps: plan.totalSteps,
        epoch: r.epoch,
        loss: r.loss,
        lr: r.lr,
        gradNorm: r.gradNorm,
        samplesPerSec: emaSamples,
        tokensPerSec: emaTokens,
        etaSec: (plan.totalSteps - r.step) * emaStepSec,
      });
      const last = r.step >= plan.totalSteps;
      if (!last && plan.evalEvery > 0 && r.step % plan.evalEvery === 0) await evaluate();
      if (!last && plan.saveEvery > 0 && r.step % plan.saveEvery === 0) await save(lastEval);
    }

    if (trainer.step < plan.totalSteps) {
      if (control.cancel) {
        emit({ type: 'cancelled', step });
        return 'cancelled';
      }
      if (lastSaved !== step) await save(lastEval);
      emit({ type: 'paused', step });
      return 'paused';
    }
    const metrics = await evaluate();
    if (lastSaved !== step) await save(metrics);
    const out = finalDir(spec.outDir);
    const tmp = `${out}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    try {
      await trainer.exportFinal(tmp);
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      throw nameDiskFull(e, 'cannot write the final adapter', tmp);
    }
    if (existsSync(out)) rmSync(out, { recursive: true, force: true });
    renameSync(tmp, out);
    log(`final adapter written to ${out}`);
    emit({ type: 'done', step, metrics, outputDir: out });
    return 'done';
  } catch (e) {
    const err = e as Error;
    if (err?.name === 'DeviceError') {
      // The GPU cannot be used (no adapter, driver refused, device lost): the state on it is gone, the checkpoints
      // on disk are whole (saveCheckpoint is atomic). Pause, so a resume continues from the latest one, on the CPU if
      // the user says so (runs.resume device).
      const reason = `paused: ${err.message}. Resume to continue from the latest checkpoint (choose the CPU if the GPU stays unavailable).`;
      emit({ type: 'log', level: 'warn', message: reason });
      emit({ type: 'paused', step, reason });
      return 'paused';
    }
    if (isDiskFull(err)) {
      // A full disk (say the compiled-graph cache before step 1, or a checkpoint) loses nothing that was saved: the
      // checkpoints on disk are whole. Pause, so the run resumes once space is freed, instead of failing it for good.
      const reason = `paused: ${err.message}. Free some disk space and resume; it continues from the latest checkpoint.`;
      emit({ type: 'log', level: 'warn', message: reason });
      emit({ type: 'paused', step: lastCheckpointStep(spec.outDir) ?? 0, reason });
      return 'paused';
    }
    emit({ type: 'failed', step, message: err.message || String(e) });
    if (err.stack) emit({ type: 'log', level: 'error', message: err.stack });
    return 'failed';
  } finally {
    await trainer?.dispose?.().catch(() => undefined);
  }
}

/** The step of the newest complete checkpoint in the run folder (what a resume continues from), or null. */
function lastCheckpointStep(outDir: string): number | null {
  try {
    return listCheckpoints(checkpointRoot(outDir)).at(-1)?.step ?? null;
  } catch {
    return null;
  }
}
