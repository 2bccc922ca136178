// runs.start for a CLIP / SigLIP model: the run's hyperparameters mapped onto contrastive training (LoRA on the
// attention projections q/k/v/out of both towers, or the projections / heads in full for method 'projector'),
// checked against the dataset's image-caption pairs before the job starts (the 'contrastive' trainer kind,
// training/contrastive-trainer.ts). Errors name the field.
import { ApiError } from '../contract/errors';
import type { Hparams } from '../contract/hparams';
import { itemsOfSplit, type DataSnapshot } from '../training/data';
import { ContrastiveTrainError, checkContrastiveOptions, type ContrastiveTrainOptions } from '../training/contrastive';
import { pairOf, type ContrastiveJobConfig } from '../training/contrastive-trainer';

export interface ContrastivePlan {
  options: Omit<ContrastiveTrainOptions, 'onStep'>;
  totalSteps: number;
  trainPairs: number;
  evalPairs: number;
}

export function planContrastiveRun(
  hp: Hparams,
  snapshot: DataSnapshot,
  data: { trainSplit: 'train' | 'val' | 'test'; evalSplit: 'train' | 'val' | 'test' },
): ContrastivePlan {
  if (hp.method === 'lora+projector')
    throw new ApiError(
      'invalid_request',
      'a CLIP / SigLIP model trains with method "lora" (attention LoRA in both towers) or "projector" (its projections / heads)',
      'hparams.method',
    );
  if (hp.maxSteps !== undefined)
    throw new ApiError(
      'invalid_request',
      'contrastive runs are planned in epochs (give epochs, not maxSteps)',
      'hparams.maxSteps',
    );
  // settings the image-text trainer has no use for are refused rather than silently dropped
  const unsupported: [keyof Hparams, boolean, string][] = [
    [
      'quantizeBase',
      hp.quantizeBase !== 'none',
      'a CLIP / SigLIP run keeps its frozen towers float32 (quantizeBase "none")',
    ],
    ['packing', hp.packing, 'a CLIP / SigLIP batch has one caption per image: nothing to pack'],
    ['gradientCheckpointing', hp.gradientCheckpointing, 'a CLIP / SigLIP run keeps its activations (no recomputation)'],
  ];
  for (const [field, set, why] of unsupported) if (set) throw new ApiError('invalid_request', why, `hparams.${field}`);
  const options: ContrastivePlan['options'] = {
    method: hp.method === 'projector' ? 'projections' : 'lora',
    towers: 'both',
    rank: hp.rank,
    alpha: hp.alpha,
    lr: hp.lr,
    epochs: hp.epochs ?? 3,
    batchSize: hp.batchSize,
    gradAccum: hp.gradAccum,
    weightDecay: hp.weightDecay,
    seed: hp.seed,
  };
  const train = itemsOfSplit(snapshot, data.trainSplit).map(pairOf).filter(Boolean).length;
  const held = itemsOfSplit(snapshot, data.evalSplit).map(pairOf).filter(Boolean).length;
  try {
    checkContrastiveOptions(options as ContrastiveTrainOptions, train);
  } catch (e) {
    if (!(e instanceof ContrastiveTrainError)) throw e;
    const field = /batch size/.test(e.message)
      ? 'hparams.batchSize'
      : /accumulation/.test(e.message)
        ? 'hparams.gradAccum'
        : 'data';
    throw new ApiError(
      'invalid_request',
      `${e.message} (the ${data.trainSplit} split has ${train} image-caption pairs)`,
      field,
    );
  }
  // as ContrastiveStepper plans: per epoch, batches of batchSize with a trailing single pair dropped
  const bs = Math.min(options.batchSize!, train);
  const perEpoch = Math.floor(train / bs) + (train % bs >= 2 ? 1 : 0);
  const totalSteps = Math.floor((perEpoch * options.epochs!) / options.gradAccum!);
  if (totalSteps < 1)
    throw new ApiError(
      'invalid_request',
      `${perEpoch * options.epochs!} batches do not make one step of ${options.gradAccum} accumulated batches`,
      'hparams.gradAccum',
    );
  return { options, totalSteps, trainPairs: train, evalPairs: held };
}

export function contrastiveJobConfig(
  modelDir: string,
  dataFile: string,
  data: { trainSplit: 'train' | 'val' | 'test'; evalSplit: 'train' | 'val' | 'test' },
  hp: Hparams,
  plan: ContrastivePlan,
): ContrastiveJobConfig {
  return {
    model: modelDir,
    data: { file: dataFile, trainSplit: data.trainSplit, evalSplit: data.evalSplit },
    options: plan.options,
    evalEvery: hp.evalEvery,
    saveEvery: hp.saveEvery,
    keepLastK: hp.keepLastK,
    evalAtStart: true,
  };
}
