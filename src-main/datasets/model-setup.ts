// The RenderSetup of a model folder (tokenizer, chat template, image token expansion, context length),
// for the "too long" lint and the tokenized preview. Cached per folder.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { loadHfFolder } from '../models/hf-folder';
import { ChatTemplate, LLAVA_CHAT_TEMPLATE } from '../models/chat-template';
import type { RenderSetup } from './render';

export type ModelRenderSetup = RenderSetup & { contextLength: number };

const cache = new Map<string, { mtime: number; setup: ModelRenderSetup }>();

/** Load (or reuse) the render setup of a Hugging Face model folder. Throws naming the file on bad folders. */
export function renderSetupFromFolder(dir: string): ModelRenderSetup {
  const mtime = statSync(join(dir, 'config.json')).mtimeMs;
  const hit = cache.get(dir);
  if (hit && hit.mtime === mtime) return hit.setup;
  const model = loadHfFolder(dir, { preprocessor: false });
  try {
    const config = model.config;
    if (config.kind === 'vision') throw new Error(`${dir}: a vision-only model has no tokenizer or chat template`);
    const tokenizer = model.tokenizer;
    if (!tokenizer) throw new Error(`${dir}: no tokenizer.json`);
    const template = model.chatTemplate ?? new ChatTemplate(LLAVA_CHAT_TEMPLATE, { bos_token: tokenizer.bosToken, eos_token: tokenizer.eosToken }, 'built-in LLaVA template');
    const setup: ModelRenderSetup = {
      template,
      tokenizer,
      contextLength: config.text.maxPositionEmbeddings,
      ...(config.kind === 'llava' ? { image: { tokenId: config.imageTokenIndex, count: config.numImageTokens } } : {}),
    };
    cache.set(dir, { mtime, setup });
    if (cache.size > 8) cache.delete(cache.keys().next().value!);
    return setup;
  } finally {
    model.close();
  }
}
