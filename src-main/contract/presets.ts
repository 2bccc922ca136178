// Named training recipes (`lenslab train --preset ID`, the Train view's preset picker): the hyperparameters of a
// published fine-tuning recipe, applied as editable defaults (flags / form fields given by the user win). A preset is
// for one model family; where this build does not load that family, or the chosen model is of another one, the
// preset says so in plain words instead of starting a run that cannot work. Pure TS (imported by the renderer).
import { LORA_TARGETS } from './hparams';

export interface TrainPreset {
  id: string;
  /** One line for pickers. */
  label: string;
  /** Where the numbers come from, and what Lenslab does alike. */
  description: string;
  /** The family in words, e.g. 'BLIP'. */
  familyLabel: string;
  /** The HF class the recipe trains (docs, messages). */
  architecture: string;
  /** config.json model_type values of the family. */
  modelTypes: readonly string[];
  /** Where the app's trainer does not load the family but `lenslab train` trains it: that command. */
  terminal?: string;
  /** Hyperparameters in the API's names (contract/hparams.ts); target module names as the family's PEFT names them. */
  hparams: {
    method: 'lora';
    rank: number;
    alpha: number;
    dropout: number;
    targetModules: readonly string[];
    lr: number;
    weightDecay: number;
    schedule: 'constant';
    clipNorm: number;
    batchSize?: number;
    epochs?: number;
  };
}

// Both recipes are a plain PyTorch loop around torch.optim.AdamW (its default weight decay 0.01), with no
// learning-rate schedule and no gradient clipping; PEFT's bias="none" is what Lenslab's LoRA always does.
export const TRAIN_PRESETS: readonly TrainPreset[] = [
  {
    id: 'blip-vqa-lora',
    label: 'BLIP VQA + LoRA (r16, α32, query/key, lr 4e-5, batch 8, 1 epoch)',
    description:
      'BlipForQuestionAnswering (Salesforce/blip-vqa-base) with LoRA r=16, lora_alpha=32, lora_dropout=0.05 on the text ' +
      "model's query and key; AdamW lr 4e-5, batch 8, 1 epoch, constant learning rate.",
    familyLabel: 'BLIP',
    architecture: 'BlipForQuestionAnswering',
    modelTypes: ['blip'],
    // BLIP VQA trains in the CLI's foreground trainer (transport/cli/blip.ts), not in runs.start
    terminal: 'lenslab train --model BLIP_VQA_DIR --data DATA --out ADAPTER_DIR --preset blip-vqa-lora',
    hparams: {
      method: 'lora',
      rank: 16,
      alpha: 32,
      dropout: 0.05,
      targetModules: ['query', 'key'],
      lr: 4e-5,
      weightDecay: 0.01,
      schedule: 'constant',
      clipNorm: 0,
      batchSize: 8,
      epochs: 1,
    },
  },
  {
    id: 'blip2-caption-lora',
    label: 'BLIP-2 captioning + LoRA (r16, α32, q_proj/v_proj, lr 5e-5)',
    description:
      'Blip2ForConditionalGeneration (Salesforce/blip2-opt-2.7b) with LoRA r=16, lora_alpha=32, lora_dropout=0.05, ' +
      "bias='none' on PEFT's default BLIP-2 targets q_proj and v_proj (the OPT decoder); AdamW lr 5e-5, constant learning rate.",
    familyLabel: 'BLIP-2',
    architecture: 'Blip2ForConditionalGeneration',
    modelTypes: ['blip-2'],
    hparams: {
      method: 'lora',
      rank: 16,
      alpha: 32,
      dropout: 0.05,
      targetModules: ['q_proj', 'v_proj'],
      lr: 5e-5,
      weightDecay: 0.01,
      schedule: 'constant',
      clipNorm: 0,
    },
  },
];

export const TRAIN_PRESET_IDS = TRAIN_PRESETS.map((p) => p.id);

export function presetById(id: string): TrainPreset | undefined {
  return TRAIN_PRESETS.find((p) => p.id === id);
}

/**
 * Why this preset cannot train here, in words (null: it can). `loadedModelTypes`: the config.json model_type values
 * the trainer loads (undefined: not known, not checked); `modelType`: the chosen model's, when one is chosen.
 */
export function presetProblem(
  p: TrainPreset,
  o: { loadedModelTypes?: readonly string[]; modelType?: string | null; modelLabel?: string } = {},
): string | null {
  const needs = `${p.familyLabel} models (${p.architecture}, config.json model_type "${p.modelTypes[0]}")`;
  if (o.modelType != null && !p.modelTypes.includes(o.modelType))
    return `The ${p.id} preset is for ${needs}; the chosen model${o.modelLabel ? ` (${o.modelLabel})` : ''} is model_type "${o.modelType}". Choose a ${p.familyLabel} model to use it.`;
  const loaded = o.loadedModelTypes === undefined || p.modelTypes.some((t) => o.loadedModelTypes!.includes(t));
  const targetsKnown = p.hparams.targetModules.every((t) => (LORA_TARGETS as readonly string[]).includes(t));
  if (loaded && targetsKnown) return null;
  if (p.terminal)
    return `The ${p.id} preset is for ${needs}. The app cannot train ${p.familyLabel} models yet; train them from a terminal: ${p.terminal}`;
  return `The ${p.id} preset is for ${needs}. This version of Lenslab does not load the ${p.familyLabel} model family yet, so it cannot train with this preset.`;
}

/** The preset as `lenslab train` flags (the CLI merges the user's flags over them). */
export function presetFlags(p: TrainPreset): Record<string, string> {
  const h = p.hparams;
  const f: Record<string, string> = {
    method: h.method,
    rank: String(h.rank),
    alpha: String(h.alpha),
    dropout: String(h.dropout),
    'target-modules': h.targetModules.join(','),
    lr: String(h.lr),
    'weight-decay': String(h.weightDecay),
    schedule: h.schedule,
    'clip-norm': String(h.clipNorm),
  };
  if (h.batchSize !== undefined) f['batch-size'] = String(h.batchSize);
  if (h.epochs !== undefined) f.epochs = String(h.epochs);
  return f;
}
