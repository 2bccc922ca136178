// A backend's training runtime: one JobRunner (each run in its own process) whose events are forwarded to clients
// (runs.progress / runs.status / runs.eval / runs.checkpoint / runs.log; progress batched per run) and stored in
// SQLite by the runner, and the backend's background evaluations. createBackend builds it and disposes of it.
import type { ServiceContext } from './context';
import { FEATURE_CACHE_ENV, featureCacheDirOf, GRAPH_CACHE_ENV, graphCacheDirOf } from '../storage/data-dir';
import { JobRunner, type JobRunnerOptions, type RunnerEvent } from '../jobs/runner';
import { pidAlive } from '../jobs/process-file';
import { failEvaluation, runningEvaluations } from '../storage/evaluations-queries';

/** How job processes start (JobRunnerOptions without the database). */
export type JobProcessOptions = Omit<JobRunnerOptions, 'db'>;

/**
 * How job processes are started. Plain Node / tsx: the TypeScript entry under tsx (the defaults). Electron: its
 * binary as Node (ELECTRON_RUN_AS_NODE=1) and a built .js entry, given by LENSLAB_JOB_ENTRY.
 */
export function jobRunnerOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): JobProcessOptions {
  const entry = env.LENSLAB_JOB_ENTRY || undefined;
  const electron = !!process.versions.electron;
  return {
    entry,
    execArgv: entry?.endsWith('.js') || entry?.endsWith('.mjs') ? [] : undefined,
    execPath: electron ? process.execPath : undefined,
    env: electron ? { ...env, ELECTRON_RUN_AS_NODE: '1' } : undefined,
  };
}

const finite = (m: Record<string, number>) =>
  Object.fromEntries(Object.entries(m).map(([k, v]) => [k, Number.isFinite(v) ? v : null]));

/**
 * runs.progress goes out at most once per this many ms per run, carrying every step finished since the last one.
 * A small model steps in a millisecond or two; one event per step floods a browser renderer (one WebSocket task
 * each) until it stops painting, so the UI coalesces here, where the steps are still all known.
 */
export const PROGRESS_INTERVAL_MS = 100;

type ProgressPoint = { step: number; metrics: Record<string, number | null> };

/** Batches one backend's progress events per run (see PROGRESS_INTERVAL_MS); other events flush a run's batch first. */
export class ProgressBatcher {
  private pending = new Map<number, { points: ProgressPoint[]; totalSteps: number | null; timer?: NodeJS.Timeout }>();
  private lastSent = new Map<number, number>();
  constructor(
    private readonly ctx: Pick<ServiceContext, 'emit'>,
    private readonly intervalMs = PROGRESS_INTERVAL_MS,
  ) {}

  add(runId: number, totalSteps: number | null, point: ProgressPoint): void {
    let p = this.pending.get(runId);
    if (!p) this.pending.set(runId, (p = { points: [], totalSteps }));
    p.points.push(point);
    p.totalSteps = totalSteps;
    if (p.timer) return;
    const wait = (this.lastSent.get(runId) ?? -Infinity) + this.intervalMs - Date.now();
    if (wait <= 0) this.flush(runId);
    else p.timer = setTimeout(() => this.flush(runId), wait);
  }

  flush(runId: number): void {
    const p = this.pending.get(runId);
    if (!p) return;
    clearTimeout(p.timer);
    this.pending.delete(runId);
    this.lastSent.set(runId, Date.now());
    const last = p.points[p.points.length - 1];
    this.ctx.emit('runs.progress', {
      runId,
      step: last.step,
      totalSteps: p.totalSteps,
      metrics: last.metrics,
      points: p.points,
    });
  }

  /** A run stopped: its next progress (after a resume) goes out at once. */
  forget(runId: number): void {
    this.flush(runId);
    this.lastSent.delete(runId);
  }

  /** Send what is pending now, leaving no timer behind (the forwarding stops). */
  flushAll(): void {
    for (const runId of [...this.pending.keys()]) this.flush(runId);
    this.lastSent.clear();
  }
}

function forward(ctx: Pick<ServiceContext, 'emit'>, batcher: ProgressBatcher, e: RunnerEvent): void {
  const { runId } = e;
  if (e.type === 'progress') {
    const metrics = finite({
      loss: e.loss,
      lr: e.lr,
      grad_norm: e.gradNorm,
      samples_per_sec: e.samplesPerSec,
      tokens_per_sec: e.tokensPerSec,
      eta_sec: e.etaSec,
      ...(e.epoch === undefined ? {} : { epoch: e.epoch }),
    });
    batcher.add(runId, e.totalSteps, { step: e.step, metrics });
    return;
  }
  // the steps before a status change, an evaluation or a checkpoint reach clients before it
  batcher.flush(runId);
  switch (e.type) {
    case 'status':
      ctx.emit('runs.status', { runId, status: e.status, error: e.error });
      if (e.status !== 'running' && e.status !== 'queued') batcher.forget(runId);
      break;
    case 'eval':
      ctx.emit('runs.eval', { runId, step: e.step, metrics: finite(e.metrics), evaluationId: e.evaluationId ?? null });
      break;
    case 'checkpoint':
      ctx.emit('runs.checkpoint', { runId, step: e.step, path: e.path, bytes: e.bytes, pruned: e.pruned });
      break;
    case 'log':
      ctx.emit('runs.log', { runId, level: e.level, message: e.message });
      break;
    case 'failed':
      ctx.emit('runs.log', { runId, level: 'error', message: e.message });
      break;
    case 'started':
      ctx.emit('runs.started', { runId, totalSteps: e.totalSteps, resumedFrom: e.resumedFrom });
      break;
    case 'paused':
    case 'cancelled':
      ctx.emit('runs.ended', { runId, kind: e.type, step: e.step });
      break;
    case 'done':
      ctx.emit('runs.ended', { runId, kind: 'done', step: e.step, metrics: finite(e.metrics), outputDir: e.outputDir });
      break;
  }
}

export class TrainingRuntime {
  readonly runner: JobRunner;
  /** Background evaluations in this backend, by evaluation id. */
  readonly evals = new Map<number, { abort: AbortController; done: Promise<void> }>();
  private readonly off: () => void;
  private stopped = false;

  constructor(
    private readonly ctx: Pick<ServiceContext, 'db' | 'dataDir' | 'emit'>,
    jobs: JobProcessOptions = jobRunnerOptionsFromEnv(),
  ) {
    // jobs compile into the data directory's graph cache, the one chat and evaluations use
    this.runner = new JobRunner({
      db: ctx.db,
      ...jobs,
      env: {
        ...(jobs.env ?? process.env),
        [GRAPH_CACHE_ENV]: graphCacheDirOf(ctx.dataDir),
        [FEATURE_CACHE_ENV]: featureCacheDirOf(ctx.dataDir),
      },
    });
    const batcher = new ProgressBatcher(ctx);
    const unsubscribe = this.runner.subscribe((e) => {
      try {
        forward(ctx, batcher, e);
      } catch (err) {
        console.error('[lenslab] could not forward a training event:', err);
      }
    });
    this.off = () => {
      batcher.flushAll();
      unsubscribe();
    };
  }

  /** At backend start: runs left 'running' by a process that is gone become 'interrupted' (resumable). */
  recover(): number[] {
    // evaluations whose backend process is gone will never finish
    for (const r of runningEvaluations(this.ctx.db))
      if (r.pid !== process.pid && (r.pid === null || !pidAlive(r.pid)))
        failEvaluation(this.ctx.db, r.id, 'the process running it stopped', 'interrupted');
    return this.runner.recover();
  }

  /** Pause every running job (each finishes its step and checkpoints), end the evaluations, stop forwarding. */
  async shutdown(): Promise<void> {
    if (this.stopped) return;
    for (const e of this.evals.values()) e.abort.abort();
    await Promise.all([this.runner.shutdown(), ...[...this.evals.values()].map((e) => e.done)]);
    this.stop();
  }

  /** Stop forwarding and let go of running jobs at once (before the database closes); they pause themselves. */
  detach(): void {
    if (this.stopped) return;
    for (const e of this.evals.values()) e.abort.abort();
    this.runner.detach();
    this.stop();
  }

  private stop(): void {
    this.stopped = true;
    this.off();
  }
}
