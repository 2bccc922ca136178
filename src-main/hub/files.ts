// Which files of a Hub repository Lenslab downloads: the weights as safetensors and the JSON/text files a model
// folder is read from (config, tokenizer, chat template, image preprocessor). Never pickles (*.bin, *.pt, *.pth,
// *.ckpt, *.pkl): loading them would run code. Only top-level files: subfolders hold other exports (onnx/, gguf).

const WANTED_EXACT = new Set([
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'vocab.json',
  'merges.txt',
  'tokenizer.model',
  'chat_template.json',
  'chat_template.jinja',
  'preprocessor_config.json',
  'processor_config.json',
  'model.safetensors',
  'model.safetensors.index.json',
]);

const SHARD_RE = /^model-\d{5}-of-\d{5}\.safetensors$/;
const PICKLE_RE = /\.(bin|pt|pth|ckpt|pkl|pickle)$/i;

export function isPickle(file: string): boolean {
  return PICKLE_RE.test(file);
}

/** Whether `file` (a repo path) is one Lenslab needs. */
export function wantedFile(file: string): boolean {
  if (file.includes('/')) return false;
  if (isPickle(file)) return false;
  return WANTED_EXACT.has(file) || SHARD_RE.test(file);
}

export interface SelectedFiles {
  files: string[];
  /** Files left out and why (shown with --json and in the pull report). */
  skipped: Array<{ file: string; reason: string }>;
}

/** Pick the files to download from a repo listing; an error names what is missing (no safetensors, no config). */
export function selectFiles(all: string[], repo: string): SelectedFiles {
  const files: string[] = [];
  const skipped: SelectedFiles['skipped'] = [];
  for (const f of all) {
    if (wantedFile(f)) files.push(f);
    else
      skipped.push({
        file: f,
        reason: isPickle(f)
          ? 'pickle (not loaded: it could run code)'
          : f.includes('/')
            ? 'in a subfolder'
            : 'not needed',
      });
  }
  if (!files.includes('config.json'))
    throw new Error(`${repo} has no config.json at the top level: it is not a transformers model repository`);
  const hasWeights = files.some((f) => f.endsWith('.safetensors'));
  if (!hasWeights) {
    const pickles = all.filter(isPickle);
    throw new Error(
      pickles.length
        ? `${repo} has its weights only as PyTorch pickles (${pickles.slice(0, 3).join(', ')}): Lenslab reads safetensors only (a pickle can run code when loaded). Look for a revision or a copy of the model with .safetensors files`
        : `${repo} has no .safetensors weights`,
    );
  }
  // a sharded checkpoint and a single file side by side: the index says which the model uses
  if (files.includes('model.safetensors.index.json') && files.includes('model.safetensors')) {
    files.splice(files.indexOf('model.safetensors.index.json'), 1);
    for (const s of files.filter((f) => SHARD_RE.test(f))) {
      files.splice(files.indexOf(s), 1);
      skipped.push({ file: s, reason: 'shard of a second copy (model.safetensors is used)' });
    }
    skipped.push({
      file: 'model.safetensors.index.json',
      reason: 'index of a second copy (model.safetensors is used)',
    });
  }
  return { files: files.sort(), skipped };
}
