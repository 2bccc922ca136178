// Opening and writing the folders of the audio models (a Whisper folder, an Ultravox-layout audio LLM). Their
// config.json model types ('whisper', 'ultravox') are not in config.ts's parseHfConfig (that one normalizes the
// vision-language families and their parts), so the audio units check their own tensors here, with the same rules as
// hf-folder.ts: every stored name maps to a canonical one or is known-irrelevant, shapes equal what config.json says,
// float dtypes only, no pickle weights, errors name the file and the tensor.

import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { HfFolderError, HfWeights, writeJsonAtomic } from '../hf-folder';
import { isFloatDtype } from '../weights/dtype';
import type { TensorSpec } from '../weights/names';
import { ShardedSafetensors, writeWeightsFolder, type TensorSource, type TensorToWrite } from '../weights/safetensors';
import type { FloatDtype } from '../weights/dtype';

const list = (names: string[], max = 8) =>
  names.slice(0, max).join(', ') + (names.length > max ? ` and ${names.length - max} more` : '');

/**
 * The folder's safetensors under canonical names. `canonical(stored)` gives the canonical name, or null for tensors
 * the model never reads (e.g. a Whisper folder's decoder). `missingHint` is added to the missing-tensors error.
 */
export function openCheckedWeights(
  dir: string,
  specs: TensorSpec[],
  canonical: (stored: string) => string | null,
  missingHint = '',
): HfWeights {
  if (!existsSync(join(dir, 'model.safetensors')) && !existsSync(join(dir, 'model.safetensors.index.json'))) {
    const pickle = ['pytorch_model.bin', 'pytorch_model.bin.index.json'].find((f) => existsSync(join(dir, f)));
    if (pickle)
      throw new HfFolderError(
        `${join(dir, pickle)}: PyTorch pickle weights are not loaded (they can run code); convert the model to safetensors`,
      );
    throw new HfFolderError(`${dir}: no model.safetensors or model.safetensors.index.json`);
  }
  const files = ShardedSafetensors.openFolder(dir);
  try {
    const where = files.indexPath ?? files.files[0].path;
    const bySpec = new Map(specs.map((s) => [s.name, s]));
    const stored = new Map<string, string>();
    const extra: string[] = [];
    for (const name of files.names()) {
      const canon = canonical(name);
      if (canon === null) continue;
      const spec = bySpec.get(canon);
      if (!spec) {
        extra.push(name);
        continue;
      }
      const prev = stored.get(canon);
      if (prev !== undefined)
        throw new HfFolderError(`${where}: tensors "${prev}" and "${name}" both map to "${canon}"`);
      const info = files.info(name);
      const file = files.fileOf(name).path;
      if (!isFloatDtype(info.dtype))
        throw new HfFolderError(`${file}: tensor "${name}" has dtype ${info.dtype}; expected F32, F16 or BF16`);
      if (info.shape.length !== spec.shape.length || info.shape.some((d, i) => d !== spec.shape[i]))
        throw new HfFolderError(
          `${file}: tensor "${name}" has shape ${JSON.stringify(info.shape)}, expected ${JSON.stringify(spec.shape)} from config.json`,
        );
      stored.set(canon, name);
    }
    const missing = specs.filter((s) => !s.optional && !stored.has(s.name)).map((s) => s.name);
    if (missing.length > 0)
      throw new HfFolderError(
        `${where}: missing ${missing.length} tensor(s) that config.json requires: ${list(missing)}${missingHint}`,
      );
    if (extra.length > 0)
      throw new HfFolderError(
        `${where}: ${extra.length} unexpected tensor(s) that config.json does not explain: ${list(extra)}`,
      );
    return new HfWeights(files, stored, specs);
  } catch (e) {
    files.close();
    throw e;
  }
}

/** Write tensors (each spec's name, from `weights`) and JSON files into `dir`; returns the files written. */
export function writeModelFolder(
  dir: string,
  specs: TensorSpec[],
  weights: TensorSource,
  json: Record<string, Record<string, unknown> | undefined>,
  o: { dtype?: FloatDtype } = {},
): string[] {
  const toWrite: TensorToWrite[] = specs.map((s) => {
    if (!weights.has(s.name)) throw new HfFolderError(`${dir}: cannot save, tensor "${s.name}" is missing`);
    const info = weights.info(s.name);
    if (info.shape.length !== s.shape.length || info.shape.some((d, i) => d !== s.shape[i]))
      throw new HfFolderError(
        `${dir}: cannot save, tensor "${s.name}" has shape ${JSON.stringify(info.shape)}, expected ${JSON.stringify(s.shape)}`,
      );
    return { name: s.name, dtype: o.dtype ?? 'F32', shape: s.shape, data: () => weights.get(s.name) };
  });
  mkdirSync(dir, { recursive: true });
  const written = writeWeightsFolder(dir, toWrite);
  for (const [name, obj] of Object.entries(json)) {
    if (!obj) continue;
    writeJsonAtomic(join(dir, name), obj);
    written.push(name);
  }
  return written;
}
