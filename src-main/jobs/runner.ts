// The job runner: each run executes in its own process (child_process.fork of entry.ts). The runner validates the
// spec before any work, stores what the job reports (metrics, checkpoints, status) in SQLite, re-emits every event
// to subscribers, and drives pause / resume / cancel. A run whose process disappears without saying goodbye
// (SIGKILL, crash, power loss, app crash) becomes 'interrupted'; resume continues from its latest checkpoint.
import { fork, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Database } from '../storage/database';
import type { RunStatus } from '../storage/runs-queries';
import { cleanCheckpoints } from '../training/checkpoints';
import type { MemoryEstimate } from '../training/memory';
import { checkpointRoot } from './driver';
import { pidAlive, processIsLive, readProcessFile, writeProcessFile } from './process-file';
import type { JobEvent, JobSpec, ParentMessage } from './protocol';
import { reconcileRun, type JobTerminal } from './reconcile';
import { acquireFolderLock, releaseFolderLock, type FolderLock } from './folder-lock';
import {
  getRun,
  loadJobSpec,
  recordCheckpoint,
  runsWithStatus,
  saveJobSpec,
  setRunProgress,
  storeMetrics,
  storeTrainingEvaluation,
  updateRunStatus,
} from './store';
import { loadTrainerModule } from './trainers';

export type RunnerEvent = { runId: number } & (JobEvent | { type: 'status'; status: RunStatus; error: string | null });

export interface JobRunnerOptions {
  db: Database;
  /** The job entry module (default: entry.ts beside this file). */
  entry?: string;
  /** Node flags for the job process (default ['--import', 'tsx'] so it runs TypeScript; [] for a built .js entry). */
  execArgv?: string[];
  /** Executable for the job process (default process.execPath). Under Electron pass its binary and
   *  env.ELECTRON_RUN_AS_NODE = '1' so the job runs as plain Node. */
  execPath?: string;
  /** Environment of the job process (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** How long cancel waits for the job to stop between steps before killing it (default 30 s). */
  cancelGraceMs?: number;
  /** A heartbeat older than this means the job process is gone (default 15 s). */
  staleHeartbeatMs?: number;
}

interface Active {
  runId: number;
  spec: JobSpec;
  child: ChildProcess;
  pid: number;
  requested: 'pause' | 'cancel' | null;
  terminal: JobEvent | null;
  exited: Promise<RunStatus>;
  killTimer: NodeJS.Timeout | null;
}

const RESUMABLE: RunStatus[] = ['paused', 'interrupted'];

export class JobRunner {
  private readonly db: Database;
  private readonly entry: string;
  private readonly execArgv: string[];
  private readonly execPath: string | undefined;
  private readonly env: NodeJS.ProcessEnv | undefined;
  private readonly cancelGraceMs: number;
  private readonly staleMs: number;
  private readonly active = new Map<number, Active>();
  private readonly listeners = new Set<(e: RunnerEvent) => void>();

  constructor(opts: JobRunnerOptions) {
    this.db = opts.db;
    this.entry = opts.entry ?? fileURLToPath(new URL('./entry.ts', import.meta.url));
    this.execArgv = opts.execArgv ?? ['--import', 'tsx'];
    this.execPath = opts.execPath;
    this.env = opts.env;
    this.cancelGraceMs = opts.cancelGraceMs ?? 30_000;
    this.staleMs = opts.staleHeartbeatMs ?? 15_000;
  }

  /** Receive every event of every run (job events and status changes). Returns an unsubscribe function. */
  subscribe(fn: (e: RunnerEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  isActive(runId: number): boolean {
    return this.active.has(runId);
  }

  pid(runId: number): number | null {
    return this.active.get(runId)?.pid ?? null;
  }

  /**
   * Validate the spec (trainer config, hyperparameters against the data) and start the run's job process.
   * Invalid specs throw here, before any process starts or any status changes. The run must exist and not be active.
   */
  async startJob(
    runId: number,
    spec: JobSpec,
    opts: { validated?: { totalSteps: number | null; memory?: MemoryEstimate }; lock?: FolderLock } = {},
  ): Promise<{ pid: number; totalSteps: number | null; memory?: MemoryEstimate }> {
    const run = getRun(this.db, runId);
    if (!run) throw new Error(`run ${runId} does not exist`);
    if (this.active.has(runId)) throw new Error(`run ${runId} is already running`);
    if (run.status !== 'queued')
      throw new Error(
        `run ${runId} is ${run.status}; only a queued run can be started (use resume for a paused or interrupted one)`,
      );
    const normalized: JobSpec = { ...spec, outDir: resolve(spec.outDir) };
    // `validated`: the caller has just run the same checks (the service does, to answer with the estimate)
    const { totalSteps, memory } =
      opts.validated ?? (await loadTrainerModule(normalized.trainer)).validateConfig(normalized.config);
    // the caller may hold the folder's lock already (the service takes it before writing the data snapshot)
    const lock = opts.lock ?? acquireFolderLock(normalized.outDir, `run ${runId}, starting`);
    try {
      saveJobSpec(this.db, runId, normalized);
      if (totalSteps !== null) setRunProgress(this.db, runId, 0, totalSteps);
      const pid = this.spawn(runId, normalized, false, lock);
      return { pid, totalSteps, memory };
    } catch (e) {
      if (!opts.lock) lock.release();
      throw e;
    }
  }

  /** Continue a paused or interrupted run from its latest checkpoint (from the start if it has none). */
  async resume(runId: number, o: { provider?: 'auto' | 'cpu' | 'cuda' | 'webgpu' } = {}): Promise<{ pid: number }> {
    const run = getRun(this.db, runId);
    if (!run) throw new Error(`run ${runId} does not exist`);
    if (this.active.has(runId)) throw new Error(`run ${runId} is already running`);
    if (!RESUMABLE.includes(run.status))
      throw new Error(`run ${runId} is ${run.status}; only a paused or interrupted run can be resumed`);
    const spec = loadJobSpec(this.db, runId);
    if (!spec) throw new Error(`run ${runId} has no job spec to resume from`);
    // A job process from an earlier app session may still be finishing its last step: let it go first.
    const old = readProcessFile(spec.outDir);
    if (old && !old.endedAt && old.pid !== process.pid) await this.waitForExit(old.pid, this.cancelGraceMs);
    // one resume at a time: another process (or a second call here) resuming the same run holds the folder
    const lock = acquireFolderLock(spec.outDir, `run ${runId}, resuming`);
    try {
      const now = getRun(this.db, runId)!;
      if (this.active.has(runId) || !RESUMABLE.includes(now.status))
        throw new Error(
          `run ${runId} is ${this.active.has(runId) ? 'running' : now.status}; only a paused or interrupted run can be resumed`,
        );
      this.reconcile(runId, spec.outDir);
      // a device chosen at resume (e.g. the CPU after the GPU was lost) replaces the run's for this and later resumes
      if (o.provider) {
        spec.config = { ...(spec.config as Record<string, unknown>), provider: o.provider };
        saveJobSpec(this.db, runId, spec);
      }
      (await loadTrainerModule(spec.trainer)).validateConfig(spec.config);
      return { pid: this.spawn(runId, spec, true, lock) };
    } catch (e) {
      lock.release();
      throw e;
    }
  }

  /** Ask a running job to finish its step, checkpoint and stop. Resolves with the run's status once it has stopped. */
  pause(runId: number): Promise<RunStatus> {
    const a = this.active.get(runId);
    if (!a) throw new Error(`run ${runId} is not running`);
    if (!a.requested) {
      a.requested = 'pause';
      this.send(a, { type: 'pause' });
    }
    return a.exited;
  }

  /**
   * Stop a run for good. A running job stops after its current step without writing a checkpoint (killed after
   * cancelGraceMs); any partial checkpoint data is removed. A paused/interrupted/queued run is marked cancelled.
   */
  async cancel(runId: number): Promise<RunStatus> {
    const a = this.active.get(runId);
    if (!a) {
      const run = getRun(this.db, runId);
      if (!run) throw new Error(`run ${runId} does not exist`);
      if (['completed', 'failed', 'cancelled'].includes(run.status)) return run.status;
      const spec = loadJobSpec(this.db, runId);
      if (spec) cleanCheckpoints(checkpointRoot(spec.outDir));
      this.setStatus(runId, 'cancelled', null);
      return 'cancelled';
    }
    a.requested = 'cancel';
    this.send(a, { type: 'cancel' });
    if (!a.killTimer)
      a.killTimer = setTimeout(() => {
        if (this.active.get(runId) === a) a.child.kill('SIGKILL');
      }, this.cancelGraceMs);
    return a.exited;
  }

  /** Resolves with the run's status when its job process has exited (at once if it is not running). */
  wait(runId: number): Promise<RunStatus> {
    const a = this.active.get(runId);
    if (a) return a.exited;
    const run = getRun(this.db, runId);
    if (!run) return Promise.reject(new Error(`run ${runId} does not exist`));
    return Promise.resolve(run.status);
  }

  /**
   * Call at service start (and whenever useful): runs marked 'running' that no live process is working on become
   * 'interrupted', and what their dead process left half-written is removed. Returns the run ids changed.
   */
  recover(): number[] {
    const changed: number[] = [];
    for (const runId of runsWithStatus(this.db, 'running')) {
      if (this.active.has(runId)) continue;
      const spec = loadJobSpec(this.db, runId);
      const info = spec ? readProcessFile(spec.outDir) : null;
      if (info && processIsLive(info, this.staleMs)) continue; // another runner's job, or one still finishing
      if (spec) cleanCheckpoints(checkpointRoot(spec.outDir));
      // what the job did after its parent stopped listening (it pauses itself when the parent dies) is in its journal
      const t = spec ? this.reconcile(runId, spec.outDir) : null;
      if (t?.type === 'paused')
        this.setStatus(
          runId,
          'paused',
          t.reason ?? 'paused itself when the process that started it went away; resume continues from its checkpoint',
          t.step,
        );
      else if (t?.type === 'done') this.setStatus(runId, 'completed', null, t.step);
      else if (t?.type === 'failed') this.setStatus(runId, 'failed', t.message, t.step);
      else if (t?.type === 'cancelled') this.setStatus(runId, 'cancelled', null, t.step);
      else
        this.setStatus(
          runId,
          'interrupted',
          'the job process is gone (the app or the job stopped unexpectedly); resume continues from the last checkpoint',
        );
      changed.push(runId);
    }
    return changed;
  }

  /** Pause every running job (e.g. when the app quits); resolves when all have stopped. */
  async shutdown(): Promise<void> {
    await Promise.all([...this.active.keys()].map((id) => this.pause(id).catch(() => undefined)));
  }

  /**
   * Let go of every running job without waiting (the database is about to close): stop handling its events and
   * disconnect it. A job that loses its parent pauses itself (finishes its step, checkpoints, exits); the run stays
   * 'running' in the database until the next recover() marks it interrupted, and resume continues it.
   */
  detach(): void {
    for (const a of this.active.values()) {
      a.child.removeAllListeners('message');
      a.child.removeAllListeners('exit');
      a.child.on('error', () => undefined);
      if (a.killTimer) clearTimeout(a.killTimer);
      try {
        if (a.child.connected) a.child.disconnect();
      } catch {
        /* already gone */
      }
    }
    this.active.clear();
    this.listeners.clear();
  }

  // ------------------------------------------------------------------------------------------------ internals

  private emit(e: RunnerEvent): void {
    for (const fn of this.listeners) {
      try {
        fn(e);
      } catch {
        /* a listener's error must not break the runner */
      }
    }
  }

  private setStatus(runId: number, status: RunStatus, error: string | null, step?: number): void {
    updateRunStatus(this.db, runId, status, { error, step });
    this.emit({ runId, type: 'status', status, error });
  }

  /**
   * setStatus where a job has ended: a database that cannot be written (SQLITE_FULL, read-only) must not crash the
   * host or leave wait() hanging. The row keeps 'running'; the job's journal holds its outcome, so the next
   * recover() (when the database can be written again) records it.
   */
  private settleStatus(runId: number, status: RunStatus, error: string | null, step?: number): void {
    try {
      this.setStatus(runId, status, error, step);
    } catch (err) {
      const code = (err as { code?: string }).code;
      const message = `could not record that run ${runId} is ${status} in the database: ${(err as Error).message}${code ? ` (${code})` : ''}; the next start of Lenslab records it from the run folder`;
      this.emit({ runId, type: 'log', level: 'error', message });
      this.emit({ runId, type: 'status', status, error });
    }
  }

  /** reconcileRun, logged instead of thrown (a damaged journal or folder must not stop a status change). */
  private reconcile(runId: number, outDir: string): JobTerminal | null {
    try {
      return reconcileRun(this.db, runId, outDir);
    } catch (err) {
      this.emit({
        runId,
        type: 'log',
        level: 'error',
        message: `could not reconcile run ${runId} with ${outDir}: ${(err as Error).message}`,
      });
      return null;
    }
  }

  private send(a: Active, m: ParentMessage): void {
    try {
      if (a.child.connected) a.child.send(m);
    } catch {
      /* the child is exiting; its exit handler settles the status */
    }
  }

  private async waitForExit(pid: number, graceMs: number): Promise<void> {
    const deadline = Date.now() + graceMs;
    while (pidAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    if (pidAlive(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone meanwhile */
      }
      while (pidAlive(pid)) await new Promise((r) => setTimeout(r, 50));
    }
  }

  private spawn(runId: number, spec: JobSpec, resume: boolean, lock: FolderLock): number {
    mkdirSync(spec.outDir, { recursive: true });
    const logFd = openSync(resolve(spec.outDir, 'job.log'), 'a');
    let child: ChildProcess;
    try {
      child = fork(this.entry, [], {
        execArgv: this.execArgv,
        execPath: this.execPath,
        env: this.env,
        stdio: ['ignore', logFd, logFd, 'ipc'],
        serialization: 'json',
      });
    } finally {
      closeSync(logFd);
    }
    const pid = child.pid;
    if (pid === undefined) throw new Error(`could not start the job process for run ${runId}`);
    // the job process holds the folder from now on (it removes the lock at its end, as does onExit)
    lock.handOver(pid, `run ${runId}, job process`);
    const now = new Date().toISOString();
    writeProcessFile(spec.outDir, { pid, runId, startedAt: now, heartbeatAt: now });
    let settle!: (s: RunStatus) => void;
    const a: Active = {
      runId,
      spec,
      child,
      pid,
      requested: null,
      terminal: null,
      exited: new Promise<RunStatus>((r) => (settle = r)),
      killTimer: null,
    };
    this.active.set(runId, a);
    this.setStatus(runId, 'running', null);
    child.on('message', (m: unknown) => this.onMessage(a, m as JobEvent));
    child.on('exit', (code, signal) => settle(this.onExit(a, code, signal)));
    child.on('error', () => {
      /* 'exit' follows and settles the status */
    });
    child.send({ type: 'start', runId, spec, resume } satisfies ParentMessage);
    return pid;
  }

  private onMessage(a: Active, e: JobEvent): void {
    if (!e || typeof e !== 'object' || typeof e.type !== 'string') return;
    const { runId } = a;
    try {
      switch (e.type) {
        case 'started':
          setRunProgress(this.db, runId, e.step, e.totalSteps);
          break;
        case 'progress':
          storeMetrics(this.db, runId, e);
          setRunProgress(this.db, runId, e.step, e.totalSteps);
          break;
        case 'eval':
          storeMetrics(this.db, runId, e);
          if (e.predictions?.length) e.evaluationId = storeTrainingEvaluation(this.db, runId, e);
          break;
        case 'checkpoint':
          recordCheckpoint(this.db, runId, e);
          break;
        case 'paused':
        case 'cancelled':
        case 'done':
        case 'failed':
          a.terminal = e;
          break;
      }
    } catch (err) {
      this.emit({
        runId,
        type: 'log',
        level: 'error',
        message: `could not store ${e.type} event: ${(err as Error).message}`,
      });
    }
    // predictions are stored; listeners get the evaluation id instead of the list
    this.emit(e.type === 'eval' && e.predictions ? { runId, ...e, predictions: undefined } : { runId, ...e });
  }

  private onExit(a: Active, code: number | null, signal: NodeJS.Signals | null): RunStatus {
    if (a.killTimer) clearTimeout(a.killTimer);
    this.active.delete(a.runId);
    releaseFolderLock(a.spec.outDir, a.pid);
    // Whatever the way out, no half-written checkpoint stays behind.
    try {
      cleanCheckpoints(checkpointRoot(a.spec.outDir));
    } catch {
      /* the run dir may have been removed */
    }
    // events that did not arrive (or could not be stored) are in the job's journal; rows follow the folders on disk
    const journaled = this.reconcile(a.runId, a.spec.outDir);
    const t = a.terminal ?? journaled;
    let status: RunStatus;
    let error: string | null = null;
    if (t?.type === 'done') status = 'completed';
    else if (t?.type === 'paused') {
      status = 'paused';
      error = t.reason ?? null;
    } else if (t?.type === 'cancelled' || a.requested === 'cancel') status = 'cancelled';
    else if (t?.type === 'failed') {
      status = 'failed';
      error = t.message;
    } else {
      status = 'interrupted';
      error = `the job process ended unexpectedly (${signal ? `signal ${signal}` : `exit code ${code}`}); resume continues from the last checkpoint`;
    }
    const step = t && 'step' in t ? t.step : undefined;
    this.settleStatus(a.runId, status, error, step);
    return status;
  }
}
