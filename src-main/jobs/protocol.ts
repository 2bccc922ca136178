// Messages between the job runner (parent) and a job process (child), over Node's IPC channel.
// Pure types and small helpers; no Node imports, so the contract/renderer side can share the event shapes.

/** What a job runs: a trainer kind (see TRAINERS), its config, and the run directory. JSON-safe. */
export interface JobSpec {
  /** Trainer kind, e.g. 'toy' or 'vlm'. */
  trainer: string;
  /** The run directory: checkpoints/, final/, process.json and job.log live here. */
  outDir: string;
  /** Trainer-specific config (hyperparameters, model dir, dataset...), validated by the trainer module. */
  config: unknown;
  /** Test hook: milliseconds to block inside every checkpoint write, before it commits (simulates slow disks). */
  debugCommitDelayMs?: number;
}

/** Parent → child. */
export type ParentMessage =
  | { type: 'start'; runId: number; spec: JobSpec; resume: boolean }
  /** Finish the current step, write a checkpoint, exit with status paused. */
  | { type: 'pause' }
  /** Finish the current step, write nothing, exit with status cancelled. */
  | { type: 'cancel' };

export interface ProgressEvent {
  type: 'progress';
  step: number;
  totalSteps: number;
  epoch?: number;
  loss: number;
  lr: number;
  gradNorm: number;
  samplesPerSec: number;
  tokensPerSec: number;
  /** Seconds left at the recent pace. */
  etaSec: number;
}

/** Child → parent. */
export type JobEvent =
  | { type: 'started'; step: number; totalSteps: number; resumedFrom: number | null; pid: number }
  | ProgressEvent
  | { type: 'eval'; step: number; metrics: Record<string, number> }
  | { type: 'checkpoint'; step: number; path: string; bytes: number; pruned: number[]; metrics: Record<string, number> }
  | { type: 'log'; level: 'info' | 'warn' | 'error'; message: string }
  | { type: 'paused'; step: number }
  | { type: 'cancelled'; step: number }
  | { type: 'done'; step: number; metrics: Record<string, number>; outputDir: string }
  | { type: 'failed'; step: number; message: string };

export const TERMINAL_EVENTS = ['paused', 'cancelled', 'done', 'failed'] as const;

export function isJobEvent(m: unknown): m is JobEvent {
  return !!m && typeof m === 'object' && typeof (m as { type?: unknown }).type === 'string';
}
