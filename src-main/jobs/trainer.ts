// The interface every trainer implements, so the job driver (driver.ts) can run, checkpoint, pause and resume it
// without knowing what it trains. The registry of implementations is trainers.ts.
import type { CheckpointFiles, LoadedCheckpoint } from '../training/checkpoints';
import type { MemoryEstimate } from '../training/memory';
import type { EvalPrediction } from './protocol';
import type { PhaseTotals } from '../util/phase-timer';

/** What one optimizer step reports. */
export interface StepResult {
  /** 1-based number of the step just taken (== trainer.step afterwards). */
  step: number;
  epoch?: number;
  /** Mean loss over the step's loss tokens (NaN/Inf stops the run). */
  loss: number;
  lr: number;
  /** Global gradient norm before clipping (NaN/Inf stops the run). */
  gradNorm: number;
  /** Samples and (non-padding) tokens processed by the step. */
  samples: number;
  tokens: number;
}

/** Evaluation results: scalar metrics such as { loss, exact_match, bleu4, cider }. */
export interface EvalResult {
  metrics: Record<string, number>;
  /** Generation results, stored by the runner as an evaluation of the run at this step (predictions per checkpoint). */
  task?: 'vqa' | 'caption';
  split?: 'train' | 'val' | 'test';
  predictions?: EvalPrediction[];
}

/** When the driver evaluates and saves; from the trainer's hyperparameters. 0 = only at the end. */
export interface LoopPlan {
  totalSteps: number;
  evalEvery: number;
  /** Evaluate once before the first step (step 0: the base model). */
  evalAtStart?: boolean;
  saveEvery: number;
  keepLastK: number;
}

export interface Trainer {
  readonly plan: LoopPlan;
  /** Optimizer steps completed so far. */
  readonly step: number;
  /** Set up from scratch (null) or continue exactly from a checkpoint this trainer wrote with saveState. */
  init(resume: LoadedCheckpoint | null): Promise<void>;
  /** Take one optimizer step (all its gradient-accumulation micro-batches). */
  trainStep(): Promise<StepResult>;
  /** Evaluate without changing any training state (RNG, data position, parameters). */
  evaluate(): Promise<EvalResult>;
  /** Everything needed to continue exactly: parameters, optimizer state, RNG state, data position, step. */
  saveState(): CheckpointFiles | Promise<CheckpointFiles>;
  /** Write the final artifacts (e.g. the adapter in PEFT layout) into `dir`. */
  exportFinal(dir: string): Promise<void>;
  dispose?(): Promise<void>;
  /** Summed wall time of the steps so far by phase (util/phase-timer.ts), for benchmarks and slow-step reports. */
  phases?(): PhaseTotals;
}

/** Context the job driver gives a trainer. */
export interface TrainerContext {
  /** The run directory (checkpoints/ and final/ live under it). */
  outDir: string;
  log(message: string, level?: 'info' | 'warn' | 'error'): void;
}

/** A trainer module: validate a config cheaply (in the parent, before any work) and create a trainer (in the job). */
export interface TrainerModule {
  /**
   * Throw an error naming the field when the config cannot train (bad hyperparameters, data that does not fit the
   * model, not enough memory: see training/memory.ts memoryRefusal). Returns the planned total steps when known and
   * the memory estimate to show the user.
   */
  validateConfig(config: unknown): { totalSteps: number | null; memory?: MemoryEstimate };
  createTrainer(config: unknown, ctx: TrainerContext): Trainer;
}
