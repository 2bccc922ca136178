// Merge a contrastive adapter into its CLIP / SigLIP folder (PEFT's merge_and_unload: W + scaling * B A for every
// adapted module, modules_to_save replaced): a full folder in the published layout, usable for search, for more
// contrastive training, or as the vision tower of a composed LLaVA. Every float tensor of the base is written under
// its stored name (one model.safetensors); integer buffers (position_ids, which transformers rebuilds) are left out;
// the other files (config, tokenizer, preprocessor) are copied unchanged.
import { copyFileSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeSafetensors, type TensorToWrite } from '../../weights/safetensors';
import { loadContrastiveAdapter, mergedTensors } from './adapter';
import { contrastiveCanonicalName } from './graph';
import { loadContrastive, type ContrastiveModel } from './model';

export interface ContrastiveMergeReport {
  dir: string;
  /** canonical names of the tensors the adapter changed */
  merged: string[];
  files: string[];
}

const FLOAT = new Set(['F32', 'F16', 'BF16', 'F64']);

export function mergeContrastiveFolder(
  baseDir: string,
  adapterDir: string,
  outDir: string,
  o: { dtype?: 'F32' | 'F16' | 'BF16' } = {},
): ContrastiveMergeReport {
  const base = resolve(baseDir);
  const out = resolve(outDir);
  const m: ContrastiveModel = loadContrastive(base);
  try {
    const ad = loadContrastiveAdapter(resolve(adapterDir), m.config);
    const merged = mergedTensors(ad, m.config, m.weights);
    const files = m.storedFiles;
    const tensors: TensorToWrite[] = [];
    for (const stored of files.names()) {
      const info = files.fileOf(stored).info(stored);
      if (!FLOAT.has(info.dtype)) continue;
      const canonical = contrastiveCanonicalName(stored);
      const replaced = canonical !== null ? merged.get(canonical) : undefined;
      const dtype =
        o.dtype ?? (replaced ? 'F32' : info.dtype === 'F64' ? 'F32' : (info.dtype as 'F32' | 'F16' | 'BF16'));
      tensors.push({ name: stored, dtype, shape: info.shape, data: () => replaced ?? files.get(stored) });
    }
    mkdirSync(out, { recursive: true });
    const written: string[] = [];
    for (const f of readdirSync(base)) {
      if (
        f.endsWith('.safetensors') ||
        f.endsWith('.safetensors.index.json') ||
        f.endsWith('.bin') ||
        !statSync(join(base, f)).isFile()
      )
        continue;
      copyFileSync(join(base, f), join(out, f));
      written.push(f);
    }
    writeSafetensors(join(out, 'model.safetensors'), tensors);
    written.push('model.safetensors');
    return { dir: out, merged: [...merged.keys()].sort(), files: written.sort() };
  } finally {
    m.close();
  }
}
