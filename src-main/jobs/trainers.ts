// Trainer kinds by name. A job spec names one; the job process imports only that module. The app ships 'vlm'
// (LoRA / projector fine-tuning of a LLaVA model) and 'contrastive' (CLIP / SigLIP image-text fine-tuning,
// training/contrastive-trainer.ts); tests register their own (a small logistic-regression trainer that proves
// resume-equals-uninterrupted) through a job entry of their own, never through the API.
import type { TrainerModule } from './trainer';

const TRAINERS = new Map<string, () => Promise<TrainerModule>>([
  ['vlm', async () => (await import('../training/vlm-trainer')).vlmTrainerModule],
  ['contrastive', async () => (await import('../training/contrastive-trainer')).contrastiveTrainerModule],
]);

/** Add a trainer kind in this process (a test's job entry and its parent both call it before starting jobs). */
export function registerTrainer(kind: string, load: () => Promise<TrainerModule>): void {
  TRAINERS.set(kind, load);
}

export function trainerKinds(): string[] {
  return [...TRAINERS.keys()];
}

export async function loadTrainerModule(kind: string): Promise<TrainerModule> {
  const load = TRAINERS.get(kind);
  if (!load) throw new Error(`unknown trainer "${kind}" (known: ${trainerKinds().join(', ')})`);
  return load();
}
