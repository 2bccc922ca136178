// Hyperparameters of a fine-tuning run, as the API, the CLI and the trainer take them: the one list of training
// methods, of LoRA target modules and of learning-rate schedules, and the zod schema with defaults, limits and
// cross-field checks (training/hparams.ts parses with it and words the errors with CLI flags; the renderer's Train
// form offers the same choices). Pure TS + zod (imported by the renderer).
import { z } from 'zod';

/** What is trained: LoRA adapters in the decoder, the vision→text projector, or both. */
export const TRAIN_METHODS = ['lora', 'projector', 'lora+projector'] as const;
export type TrainMethod = (typeof TRAIN_METHODS)[number];
export const SCHEDULES = ['cosine', 'linear', 'constant'] as const;
export type LrScheduleKind = (typeof SCHEDULES)[number];

/** The linear layers of a decoder layer's attention and of its MLP (LLaMA / Qwen2 naming). */
export const ATTENTION_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const;
export const MLP_TARGETS = ['gate_proj', 'up_proj', 'down_proj'] as const;
/** Module names LoRA may target (the decoder's attention and MLP linear layers, LLaMA / Qwen2 naming). */
export const LORA_TARGETS = [...ATTENTION_TARGETS, ...MLP_TARGETS] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];

/**
 * How the frozen base weights are held while training: float32, or int8 / int4 blocks of 32 (QLoRA-style; adapters
 * and the projector stay float32, and the adapter applies to the float base).
 */
export const BASE_QUANTS = ['none', 'int8', 'int4'] as const;
export type BaseQuant = (typeof BASE_QUANTS)[number];

/** With neither epochs nor maxSteps, a run trains this many epochs (training/hparams.ts parseHparams). */
export const DEFAULT_EPOCHS = 3;

function got(input: unknown): string {
  if (input === undefined) return '';
  const s = JSON.stringify(input) ?? String(input);
  return ` (got ${s.length > 80 ? `${s.slice(0, 80)}…` : s})`;
}
const KINDS: Record<string, string> = {
  number: 'a number',
  boolean: 'true or false',
  array: 'a list',
  tuple: 'a list',
  object: 'an object',
  string: 'a string',
};

/**
 * A bad hyperparameter in words, the same whether it came over the API, from the CLI or the Train form:
 * "must be ≤ 1024 (got 5000)", "must be one of "lora", "projector"… (got "full")"; the field path is added by the caller
 * (the dispatcher's `hparams.rank`, the CLI's `rank (--rank)`).
 */
export function hparamMessage(iss: z.core.$ZodRawIssue): string | undefined {
  switch (iss.code) {
    case 'too_small':
      return `must be ${iss.inclusive ? '≥' : '>'} ${String(iss.minimum)}${got(iss.input)}`;
    case 'too_big':
      return `must be ${iss.inclusive ? '≤' : '<'} ${String(iss.maximum)}${got(iss.input)}`;
    case 'invalid_type':
      return `${iss.expected === 'int' ? 'must be an integer' : `must be ${KINDS[iss.expected] ?? iss.expected}`}${got(iss.input)}`;
    case 'invalid_value':
      return `must be one of ${iss.values.map((v) => JSON.stringify(v)).join(', ')}${got(iss.input)}`;
    case 'unrecognized_keys':
      return `unknown hyperparameter${iss.keys.length > 1 ? 's' : ''}: ${iss.keys.join(', ')}`;
  }
  return undefined;
}
/** Every check of the schema words its issue with hparamMessage (zod takes a check's own error first). */
const E = { error: hparamMessage };
const num = () => z.number(E);
const int = (min: number, max = Number.MAX_SAFE_INTEGER) => num().int(E).min(min, E).max(max, E);
const fraction = () => num().min(0, E).lt(1, E);

/** The fields with their types, limits and defaults, without the cross-field checks (see hparamsSchema). */
export const hparamsFields = z.strictObject(
  {
    /** What is trained: LoRA adapters in the decoder, the vision→text projector, or both. */
    method: z.enum(TRAIN_METHODS, E).default('lora'),
    /** LoRA rank r. */
    rank: int(1, 1024).default(8),
    /** LoRA alpha; the update is scaled by alpha / rank. */
    alpha: num().positive(E).max(1e4, E).default(16),
    /** Dropout on the LoRA input (0 = off, PEFT's default). Masks are a function of (seed, step, micro-batch), so a
     *  resumed run equals an uninterrupted one with any dropout; > 0 costs a per-element hash in each LoRA module. */
    dropout: fraction().default(0),
    /** Decoder linear layers that get adapters. */
    targetModules: z
      .array(z.enum(LORA_TARGETS, E), E)
      .min(1, E)
      .default([...ATTENTION_TARGETS]),
    /** Peak learning rate. */
    lr: num().positive(E).max(1, E).default(2e-4),
    /** AdamW decoupled weight decay. */
    weightDecay: num().min(0, E).max(1, E).default(0),
    /** AdamW (beta1, beta2). */
    betas: z.tuple([fraction(), fraction()], E).default([0.9, 0.999]),
    /** AdamW epsilon. */
    eps: num().positive(E).max(1, E).default(1e-8),
    /** Linear warmup length in steps (or give warmupRatio, not both). */
    warmupSteps: int(0).optional(),
    /** Linear warmup as a fraction of the total steps. */
    warmupRatio: fraction().optional(),
    /** Decay after warmup. */
    schedule: z.enum(SCHEDULES, E).default('cosine'),
    /** The learning rate the decay ends at, as a fraction of lr. */
    minLrRatio: num().min(0, E).max(1, E).default(0),
    /** Passes over the training split (or give maxSteps, not both; neither = 3 epochs). */
    epochs: int(1, 10000).optional(),
    /** Optimizer steps to run. */
    maxSteps: int(1, 10_000_000).optional(),
    /** Samples per micro-batch. */
    batchSize: int(1, 4096).default(4),
    /** Micro-batches per optimizer step (effective batch = batchSize × gradAccum). */
    gradAccum: int(1, 4096).default(1),
    /** Longest sample, in tokens with image tokens expanded; longer samples are refused, never cut. */
    maxSeqLen: int(8, 131072).default(1024),
    /** Seed for initialisation, shuffling and dropout. */
    seed: int(0, 0xffffffff).default(42),
    /** Evaluate every N steps (0 = only at the end). */
    evalEvery: int(0).default(0),
    /** Evaluate the base model before the first step too (step 0), so the curves show what training gained; skipped
     *  when the dataset has no validation items. Off by default here; the app's Train form turns it on. */
    evalAtStart: z.boolean(E).default(false),
    /** Write a checkpoint every N steps (0 = only at the end). */
    saveEvery: int(0).default(50),
    /** How many recent checkpoints to keep. */
    keepLastK: int(1, 1000).default(3),
    /** Global gradient-norm clipping threshold (0 = off). */
    clipNorm: num().min(0, E).max(1e6, E).default(1),
    /** Frozen base weights as int8 / int4 blocks (less memory; LoRA and the projector stay float32), or none. */
    quantizeBase: z.enum(BASE_QUANTS, E).default('none'),
    /** Pack a micro-batch's samples end to end into fewer rows (attention masked per sample, positions restarting at
     *  each sample) instead of padding each to the longest: same loss and gradients, less padding computed. */
    packing: z.boolean(E).default(false),
    /** Recompute each layer's activations in the backward instead of keeping them (gradient checkpointing): less
     *  memory, about a third more compute a step; the same loss and gradients. */
    gradientCheckpointing: z.boolean(E).default(false),
  },
  E,
);

/** The hyperparameters: fields, defaults and limits, and the checks across fields. */
export const hparamsSchema = hparamsFields.superRefine((h, ctx) => {
  const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
  if (h.epochs !== undefined && h.maxSteps !== undefined) issue('maxSteps', 'give either epochs or maxSteps, not both');
  if (h.warmupSteps !== undefined && h.warmupRatio !== undefined)
    issue('warmupRatio', 'give either warmupSteps or warmupRatio, not both');
  if (h.maxSteps !== undefined && h.warmupSteps !== undefined && h.warmupSteps >= h.maxSteps)
    issue('warmupSteps', `warmup (${h.warmupSteps} steps) must be shorter than maxSteps (${h.maxSteps})`);
  if (h.method !== 'projector' && new Set(h.targetModules).size !== h.targetModules.length)
    issue('targetModules', `lists a module twice: ${h.targetModules.join(', ')}`);
  if (h.schedule === 'constant' && h.minLrRatio !== 0)
    issue('minLrRatio', 'has no effect with schedule "constant"; leave it at 0');
});

export type HparamsInput = z.input<typeof hparamsSchema>;
/** Parsed hyperparameters with defaults filled in (epochs is set when maxSteps is not). */
export type Hparams = z.output<typeof hparamsSchema>;

type Shape = typeof hparamsFields.shape;
type Bare<S> = S extends z.ZodDefault<infer I> ? I : S extends z.ZodOptional<infer I> ? I : S;
/** Each field alone, with its type and limits but no default: a stored value is checked, nothing is filled in. */
const bareFields = Object.fromEntries(
  Object.entries(hparamsFields.shape).map(([k, s]) => [
    k,
    (s instanceof z.ZodDefault || s instanceof z.ZodOptional ? s.unwrap() : s).optional(),
  ]),
) as { [K in keyof Shape]: z.ZodOptional<Bare<Shape[K]>> };

/** Hyperparameters a stored run recorded, in this version's fields and limits; none required, nothing filled in. */
export const StoredHparams = z.object(bareFields);
export type StoredHparams = z.output<typeof StoredHparams>;

/**
 * A stored run's hyperparameters, read back: a run recorded by an older or newer version may carry a field this one
 * does not know, or a value it does not take (a method, target or limit since changed). Such a record is shown, never
 * refused or rewritten: `hparams` holds every field whose stored value this version takes (nothing filled in: a field
 * an older version did not have stays absent), `other` the rest exactly as stored.
 */
export function readStoredHparams(stored: unknown): { hparams: StoredHparams; other: Record<string, unknown> } {
  const hparams: Record<string, unknown> = {};
  const other: Record<string, unknown> = {};
  if (stored && typeof stored === 'object' && !Array.isArray(stored))
    for (const [k, v] of Object.entries(stored)) {
      const r =
        Object.hasOwn(bareFields, k) && v !== undefined
          ? (bareFields[k as keyof Shape] as z.ZodType).safeParse(v)
          : null;
      if (r?.success) hparams[k] = r.data;
      else other[k] = v;
    }
  return { hparams: hparams as StoredHparams, other };
}
