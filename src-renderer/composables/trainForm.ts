// The Train view's hyperparameter fields (defaults equal to src-main/training/hparams.ts; a test checks that),
// their conversion to the `hparams` object runs.estimate / runs.start take, and the memory estimate's suggestions
// turned into field changes where they name concrete values.
import type { FieldSpec, HyperValues } from './hyperparams';
import { LORA_TARGETS } from '../../src-main/contract/hparams';

const notProjector = (v: HyperValues) => v.method !== 'projector';

export const TARGET_PRESETS: Record<string, string[]> = {
  attention: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
  qv: ['q_proj', 'v_proj'],
  all: [...LORA_TARGETS],
  // BLIP's BERT text model names its attention projections query / key / value (the blip-vqa-lora recipe)
  'query-key': ['query', 'key'],
};

export const TRAIN_FIELDS: FieldSpec[] = [
  {
    key: 'method',
    label: 'Method',
    type: 'select',
    default: 'lora',
    options: [
      { value: 'lora', label: 'LoRA on the language model', hint: 'Small adapters in the decoder: the usual choice.' },
      { value: 'projector', label: 'Projector only', hint: 'Trains only the vision-to-text bridge: fastest, least memory.' },
      { value: 'lora+projector', label: 'LoRA + projector', hint: 'Both: learns most, needs more memory.' },
    ],
  },
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
  { key: 'epochs', label: 'Epochs', type: 'number', default: 3, min: 1, max: 10000, integer: true, visibleWhen: (v) => v.duration === 'epochs' },
  { key: 'maxSteps', label: 'Steps', type: 'number', default: 100, min: 1, max: 10_000_000, integer: true, visibleWhen: (v) => v.duration === 'steps' },
  { key: 'lr', label: 'Learning rate', type: 'number', default: 2e-4, min: 0, exclusiveMin: true, max: 1, help: 'LoRA usually 1e-4 to 3e-4; a projector alone can take 1e-3.' },
  { key: 'batchSize', label: 'Batch size', type: 'number', default: 4, min: 1, max: 4096, integer: true, help: 'Samples per micro-batch: the main memory knob.' },
  { key: 'gradAccum', label: 'Gradient accumulation', type: 'number', default: 1, min: 1, max: 4096, integer: true, help: 'Micro-batches per step: a larger effective batch without more memory.' },
  { key: 'rank', label: 'LoRA rank', type: 'number', default: 8, min: 1, max: 1024, integer: true, visibleWhen: notProjector, help: 'Higher learns more and uses more memory.' },
  { key: 'alpha', label: 'LoRA alpha', type: 'number', default: 16, min: 0, exclusiveMin: true, max: 1e4, visibleWhen: notProjector, help: 'The update is scaled by alpha / rank.' },
  {
    key: 'targets',
    label: 'LoRA layers',
    type: 'select',
    default: 'attention',
    advanced: true,
    visibleWhen: notProjector,
    options: [
      { value: 'attention', label: 'Attention (q, k, v, o)' },
      { value: 'qv', label: 'Queries and values only (q, v)' },
      { value: 'all', label: 'Attention and MLP (all 7)' },
      // offered once the backend takes these names (the BLIP family), so every choice of the form parses
      ...(TARGET_PRESETS['query-key'].every((t) => (LORA_TARGETS as readonly string[]).includes(t)) ? [{ value: 'query-key', label: 'BLIP text attention (query, key)', hint: 'Only BLIP models have these layers.' }] : []),
    ],
  },
  { key: 'dropout', label: 'LoRA dropout', type: 'number', default: 0, min: 0, max: 0.99, advanced: true, visibleWhen: notProjector },
  {
    key: 'quantizeBase',
    label: 'Frozen base weights',
    type: 'select',
    default: 'none',
    advanced: true,
    help: 'int4 or int8 holds the frozen model in a fraction of the memory (QLoRA); the adapter stays float32 and applies to the original model.',
    options: [
      { value: 'none', label: 'float32 (exact)' },
      { value: 'int8', label: 'int8 blocks (about 1/3.5 of the memory)' },
      { value: 'int4', label: 'int4 blocks (about 1/6 of the memory)' },
    ],
  },
  {
    key: 'schedule',
    label: 'Learning-rate schedule',
    type: 'select',
    default: 'cosine',
    advanced: true,
    options: [
      { value: 'cosine', label: 'Cosine decay' },
      { value: 'linear', label: 'Linear decay' },
      { value: 'constant', label: 'Constant' },
    ],
  },
  { key: 'warmupRatio', label: 'Warmup', type: 'number', default: 0, min: 0, max: 0.99, advanced: true, unit: 'of the steps', help: 'A fraction such as 0.03.' },
  { key: 'weightDecay', label: 'Weight decay', type: 'number', default: 0, min: 0, max: 1, advanced: true },
  { key: 'clipNorm', label: 'Gradient clipping', type: 'number', default: 1, min: 0, max: 1e6, advanced: true, unit: 'norm', help: '0 turns it off.' },
  { key: 'maxSeqLen', label: 'Longest sample', type: 'number', default: 1024, min: 8, max: 131072, integer: true, advanced: true, unit: 'tokens', help: 'Image tokens count; longer samples are refused, never cut.' },
  { key: 'evalAtStart', label: 'Evaluate the base model first', type: 'boolean', default: true, advanced: false, help: 'Step 0 on the curves, so the run shows what it gained. Needs validation items.' },
  { key: 'evalEvery', label: 'Evaluate every', type: 'number', default: 0, min: 0, integer: true, advanced: true, unit: 'steps', help: '0 = only at the end. Needs validation items.' },
  { key: 'saveEvery', label: 'Checkpoint every', type: 'number', default: 50, min: 0, integer: true, advanced: true, unit: 'steps', help: '0 = only at the end.' },
  { key: 'keepLastK', label: 'Checkpoints kept', type: 'number', default: 3, min: 1, max: 1000, integer: true, advanced: true },
  { key: 'seed', label: 'Seed', type: 'number', default: 42, min: 0, max: 0xffffffff, integer: true, advanced: true },
];

/** The `hparams` object of runs.estimate / runs.start for the form's values. */
export function toHparams(v: HyperValues): Record<string, unknown> {
  const num = (k: string) => Number(v[k]);
  const h: Record<string, unknown> = {
    method: v.method,
    lr: num('lr'),
    batchSize: num('batchSize'),
    gradAccum: num('gradAccum'),
    schedule: v.schedule,
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
  if (v.quantizeBase === 'int8' || v.quantizeBase === 'int4') h.quantizeBase = v.quantizeBase;
  if (v.method !== 'projector') {
    h.rank = num('rank');
    h.alpha = num('alpha');
    h.dropout = num('dropout');
    h.targetModules = TARGET_PRESETS[String(v.targets)] ?? TARGET_PRESETS.attention;
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
