// The Train view's hyperparameter fields: types, limits, defaults and choices read from the contract's schema
// (src-main/contract/hparams.ts; only the words and the layout are the form's own), their conversion to the `hparams`
// object runs.estimate / runs.start take, and the memory estimate's suggestions turned into field changes where
// they name concrete values.
import { z } from 'zod';
import type { FieldSpec, HyperValues, NumberSpec, SelectSpec } from './hyperparams';
import {
  BASE_QUANTS,
  DEFAULT_EPOCHS,
  hparamsFields,
  LORA_TARGETS,
  SCHEDULES,
  TRAIN_METHODS,
  type BaseQuant,
  type HparamsInput,
  type LoraTarget,
  type LrScheduleKind,
  type TrainMethod,
} from '../../src-main/contract/hparams';

type HparamKey = keyof typeof hparamsFields.shape;
interface JsonField {
  type?: string;
  default?: unknown;
  minimum?: number;
  exclusiveMinimum?: number;
  maximum?: number;
  exclusiveMaximum?: number;
  enum?: readonly string[];
}
/** Each field's JSON Schema (type, limits, default, choices), as the contract's zod schema states them. */
export const HPARAM_SCHEMA = (
  z.toJSONSchema(hparamsFields, { io: 'input' }) as { properties: Record<HparamKey, JsonField> }
).properties;

const notProjector = (v: HyperValues) => v.method !== 'projector';

/**
 * A number field with the schema's limits and default. `default` only for fields the schema leaves unset (epochs,
 * maxSteps, warmupRatio: the form needs a value to show); the form's own words and layout in `spec`.
 */
function numberField(
  key: HparamKey,
  spec: Omit<NumberSpec, 'type' | 'key' | 'default'> & { default?: number },
): NumberSpec {
  const j = HPARAM_SCHEMA[key];
  const def = spec.default ?? j.default;
  if (typeof def !== 'number') throw new Error(`hyperparameter ${key} has no default in the schema`);
  const f: NumberSpec = { ...spec, key, type: 'number', default: def };
  if (j.type === 'integer') f.integer = true;
  if (j.exclusiveMinimum !== undefined) Object.assign(f, { min: j.exclusiveMinimum, exclusiveMin: true });
  else if (j.minimum !== undefined) f.min = j.minimum;
  if (j.exclusiveMaximum !== undefined) Object.assign(f, { max: j.exclusiveMaximum, exclusiveMax: true });
  // an integer with no stated maximum is bounded by the safe-integer range: no limit worth showing
  else if (j.maximum !== undefined && j.maximum < Number.MAX_SAFE_INTEGER) f.max = j.maximum;
  return f;
}

/** A select over one of the schema's lists, in its order, with the form's words for each choice. */
function choiceField<T extends string>(
  key: HparamKey,
  values: readonly T[],
  words: Record<T, { label: string; hint?: string }>,
  spec: Omit<SelectSpec, 'type' | 'key' | 'default' | 'options'>,
): SelectSpec {
  const def = HPARAM_SCHEMA[key].default;
  if (typeof def !== 'string') throw new Error(`hyperparameter ${key} has no default in the schema`);
  return { ...spec, key, type: 'select', default: def, options: values.map((v) => ({ value: v, ...words[v] })) };
}

const METHOD_WORDS: Record<TrainMethod, { label: string; hint: string }> = {
  lora: { label: 'LoRA on the language model', hint: 'Small adapters in the decoder: the usual choice.' },
  projector: { label: 'Projector only', hint: 'Trains only the vision-to-text bridge: fastest, least memory.' },
  'lora+projector': { label: 'LoRA + projector', hint: 'Both: learns most, needs more memory.' },
};
const QUANT_WORDS: Record<BaseQuant, { label: string }> = {
  none: { label: 'float32 (exact)' },
  int8: { label: 'int8 blocks (about 1/3.5 of the memory)' },
  int4: { label: 'int4 blocks (about 1/6 of the memory)' },
};
const SCHEDULE_WORDS: Record<LrScheduleKind, { label: string }> = {
  cosine: { label: 'Cosine decay' },
  linear: { label: 'Linear decay' },
  constant: { label: 'Constant' },
};

/** The LoRA layer choices: sets of the schema's targets (the schema's default first, then fewer, then all). */
export const TARGET_PRESETS = {
  attention: hparamsFields.shape.targetModules.parse(undefined),
  qv: ['q_proj', 'v_proj'],
  all: LORA_TARGETS,
} satisfies Record<string, readonly LoraTarget[]>;
type TargetChoice = keyof typeof TARGET_PRESETS;
const TARGET_WORDS: Record<TargetChoice, string> = {
  attention: 'Attention (q, k, v, o)',
  qv: 'Queries and values only (q, v)',
  all: `Attention and MLP (all ${LORA_TARGETS.length})`,
};

export const TRAIN_FIELDS: FieldSpec[] = [
  choiceField('method', TRAIN_METHODS, METHOD_WORDS, { label: 'Method' }),
  {
    key: 'duration',
    label: 'Train for',
    type: 'select',
    default: 'epochs',
    options: [
      { value: 'epochs', label: 'Epochs (passes over the data)' },
      { value: 'steps', label: 'Optimizer steps' },
    ],
  },
  numberField('epochs', { label: 'Epochs', default: DEFAULT_EPOCHS, visibleWhen: (v) => v.duration === 'epochs' }),
  numberField('maxSteps', { label: 'Steps', default: 100, visibleWhen: (v) => v.duration === 'steps' }),
  numberField('lr', { label: 'Learning rate', help: 'LoRA usually 1e-4 to 3e-4; a projector alone can take 1e-3.' }),
  numberField('batchSize', { label: 'Batch size', help: 'Samples per micro-batch: the main memory knob.' }),
  numberField('gradAccum', {
    label: 'Gradient accumulation',
    help: 'Micro-batches per step: a larger effective batch without more memory.',
  }),
  numberField('rank', {
    label: 'LoRA rank',
    visibleWhen: notProjector,
    help: 'Higher learns more and uses more memory.',
  }),
  numberField('alpha', {
    label: 'LoRA alpha',
    visibleWhen: notProjector,
    help: 'The update is scaled by alpha / rank.',
  }),
  {
    key: 'targets',
    label: 'LoRA layers',
    type: 'select',
    default: 'attention',
    advanced: true,
    visibleWhen: notProjector,
    options: Object.entries(TARGET_WORDS).map(([value, label]) => ({ value, label })),
  },
  numberField('dropout', { label: 'LoRA dropout', advanced: true, visibleWhen: notProjector }),
  choiceField('quantizeBase', BASE_QUANTS, QUANT_WORDS, {
    label: 'Frozen base weights',
    advanced: true,
    help: 'int4 or int8 holds the frozen model in a fraction of the memory (QLoRA); the adapter stays float32 and applies to the original model. On a CPU an int4 step takes about a third longer.',
  }),
  choiceField('schedule', SCHEDULES, SCHEDULE_WORDS, { label: 'Learning-rate schedule', advanced: true }),
  numberField('warmupRatio', {
    label: 'Warmup',
    default: 0,
    advanced: true,
    unit: 'of the steps',
    help: 'A fraction such as 0.03.',
  }),
  numberField('weightDecay', { label: 'Weight decay', advanced: true }),
  numberField('clipNorm', { label: 'Gradient clipping', advanced: true, unit: 'norm', help: '0 turns it off.' }),
  numberField('maxSeqLen', {
    label: 'Longest sample',
    advanced: true,
    unit: 'tokens',
    help: 'Image tokens count; longer samples are refused, never cut.',
  }),
  {
    key: 'packing',
    label: 'Pack samples',
    type: 'boolean',
    default: HPARAM_SCHEMA.packing.default === true,
    advanced: true,
    help: 'Short samples share a row (attention kept within each sample): less padding, the same loss and gradients.',
  },
  {
    key: 'gradientCheckpointing',
    label: 'Recompute activations',
    type: 'boolean',
    default: HPARAM_SCHEMA.gradientCheckpointing.default === true,
    advanced: true,
    help: 'Gradient checkpointing: each layer is computed again in the backward instead of kept, so training needs less memory and a step takes about a third longer.',
  },
  // the one default the app sets apart from the API's: runs started here evaluate the base model at step 0, so the
  // curves show what training gained (the schema keeps it off for scripts)
  {
    key: 'evalAtStart',
    label: 'Evaluate the base model first',
    type: 'boolean',
    default: true,
    advanced: false,
    help: 'Step 0 on the curves, so the run shows what it gained. Needs validation items.',
  },
  numberField('evalEvery', {
    label: 'Evaluate every',
    advanced: true,
    unit: 'steps',
    help: '0 = only at the end. Needs validation items.',
  }),
  numberField('saveEvery', { label: 'Checkpoint every', advanced: true, unit: 'steps', help: '0 = only at the end.' }),
  numberField('keepLastK', { label: 'Checkpoints kept', advanced: true }),
  numberField('seed', { label: 'Seed', advanced: true }),
];

/**
 * The LoRA layers field's value for a list of modules: its choice where one matches, else the modules themselves
 * ("k_proj,q_proj" of a run started from the CLI, a recipe's family names such as BLIP's "query,key"), which
 * fieldsFor offers as they are and the backend checks.
 */
export function targetsValue(modules: readonly string[]): string {
  const t = [...modules].sort().join(',');
  return Object.entries(TARGET_PRESETS).find(([, mods]) => [...mods].sort().join(',') === t)?.[0] ?? modules.join(',');
}

/** The modules of a LoRA layers value (targetsValue's inverse). */
export function targetModulesOf(targets: unknown): string[] {
  const key = String(targets ?? '');
  if (Object.hasOwn(TARGET_PRESETS, key)) return [...TARGET_PRESETS[key as TargetChoice]];
  const mods = key.split(',').filter(Boolean);
  return mods.length ? mods : [...TARGET_PRESETS.attention];
}

/** TRAIN_FIELDS with the LoRA layers a preset or a cloned run set offered too when they are none of the choices. */
export function fieldsFor(values: HyperValues): FieldSpec[] {
  const t = values.targets;
  return TRAIN_FIELDS.map((f) =>
    f.key === 'targets' && f.type === 'select' && typeof t === 'string' && t && !f.options.some((o) => o.value === t)
      ? { ...f, options: [...f.options, { value: t, label: `These layers: ${t.split(',').join(', ')}` }] }
      : f,
  );
}

/** The `hparams` object of runs.estimate / runs.start for the form's values. */
export function toHparams(v: HyperValues): HparamsInput {
  const num = (k: string) => Number(v[k]);
  // selects hold one of the schema's values (TRAIN_FIELDS lists them); the backend checks again
  const h: HparamsInput = {
    method: v.method as TrainMethod,
    lr: num('lr'),
    batchSize: num('batchSize'),
    gradAccum: num('gradAccum'),
    schedule: v.schedule as LrScheduleKind,
    weightDecay: num('weightDecay'),
    clipNorm: num('clipNorm'),
    maxSeqLen: num('maxSeqLen'),
    evalEvery: num('evalEvery'),
    evalAtStart: v.evalAtStart === true,
    saveEvery: num('saveEvery'),
    keepLastK: num('keepLastK'),
    seed: num('seed'),
  };
  if (v.duration === 'steps') h.maxSteps = num('maxSteps');
  else h.epochs = num('epochs');
  if (num('warmupRatio') > 0) h.warmupRatio = num('warmupRatio');
  if (v.packing === true) h.packing = true;
  if (v.gradientCheckpointing === true) h.gradientCheckpointing = true;
  // a float base sends nothing, as before the field existed
  if (v.quantizeBase !== HPARAM_SCHEMA.quantizeBase.default) h.quantizeBase = v.quantizeBase as BaseQuant;
  if (v.method !== 'projector') {
    h.rank = num('rank');
    h.alpha = num('alpha');
    h.dropout = num('dropout');
    // names outside the schema's list (a recipe for another family) are sent as they are: the backend names them
    h.targetModules = targetModulesOf(v.targets) as LoraTarget[];
  }
  return h;
}

/** Field changes a memory-estimate suggestion names, or null when it is advice only. */
export function suggestionPatch(text: string): HyperValues | null {
  let m = /batch size (\d+) with gradient accumulation ×(\d+)/.exec(text);
  if (m) return { batchSize: Number(m[1]), gradAccum: Number(m[2]) };
  m = /batch size 1 and sequences of at most (\d+) tokens/.exec(text);
  if (m) return { batchSize: 1, maxSeqLen: Number(m[1]) };
  m = /limit sequences to (\d+) tokens/.exec(text);
  if (m) return { maxSeqLen: Number(m[1]) };
  if (/only q_proj and v_proj/.test(text)) return { targets: 'qv' };
  if (/hold the frozen base as int4/.test(text)) return { quantizeBase: 'int4' };
  return null;
}

/** Backend field names (hparams.<field>) → the form field that shows them. */
export function formFieldOf(field: string | undefined): string | null {
  if (!field) return null;
  const f = field.replace(/^hparams\./, '').split('.')[0];
  if (f === 'targetModules') return 'targets';
  return TRAIN_FIELDS.some((x) => x.key === f) ? f : null;
}
