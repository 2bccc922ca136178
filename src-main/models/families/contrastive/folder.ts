// Whether a model folder is a CLIP / SigLIP dual encoder, from its config.json alone.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export function isContrastiveFolder(dir: string | undefined): boolean {
  if (!dir) return false;
  const p = join(resolve(dir), 'config.json');
  if (!existsSync(p)) return false;
  try {
    const mt = JSON.parse(readFileSync(p, 'utf8')).model_type;
    return mt === 'clip' || mt === 'siglip';
  } catch {
    return false;
  }
}
