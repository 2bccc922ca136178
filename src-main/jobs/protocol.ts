// Messages between the job runner (parent) and a job process (child), over Node's IPC channel.
// Pure types and small helpers; no Node imports, so the contract/renderer side can share the event shapes.

/** What a job runs: a trainer kind (see trainers.ts), its config, and the run directory. JSON-safe. */
export interface JobSpec {
  /** Trainer kind: 'vlm' in the app. */
  trainer: string;
  /** The run directory: checkpoints/, final/, process.json and job.log live here. */
  outDir: string;
  /** Trainer-specific config (hyperparameters, model dir, dataset...), validated by the trainer module. */
  config: unknown;
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

/** One generated answer of an evaluation during training (stored by the runner as a prediction). */
export interface EvalPrediction {
  key: string | number;
  itemId?: number | null;
  prompt: string;
  output: string;
  references: string[];
  scores: Record<string, number>;
}

export interface EvalEvent {
  type: 'eval';
  step: number;
  metrics: Record<string, number>;
  /** Generation results, when the trainer generated answers: stored as an evaluation of the run at this step. */
  task?: 'vqa' | 'caption';
  split?: 'train' | 'val' | 'test';
  predictions?: EvalPrediction[];
  /** Set by the runner once the predictions are stored. */
  evaluationId?: number;
}

/** Child → parent. */
export type JobEvent =
  | { type: 'started'; step: number; totalSteps: number; resumedFrom: number | null; pid: number }
  | ProgressEvent
  | EvalEvent
  | { type: 'checkpoint'; step: number; path: string; bytes: number; pruned: number[]; metrics: Record<string, number> }
  | { type: 'log'; level: 'info' | 'warn' | 'error'; message: string }
  | {
      type: 'paused';
      step: number;
      /** Set when the job paused itself (e.g. its GPU became unusable). */ reason?: string;
    }
  | { type: 'cancelled'; step: number }
  | { type: 'done'; step: number; metrics: Record<string, number>; outputDir: string }
  | { type: 'failed'; step: number; message: string };

export const TERMINAL_EVENTS = ['paused', 'cancelled', 'done', 'failed'] as const;

export function isJobEvent(m: unknown): m is JobEvent {
  return !!m && typeof m === 'object' && typeof (m as { type?: unknown }).type === 'string';
}
