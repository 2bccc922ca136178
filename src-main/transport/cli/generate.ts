// `lenslab generate` (answer a prompt about an image, streamed) and `lenslab score` (mean token loss per sample over
// its assistant tokens), straight on a model folder: no database involved. Compiled graphs are cached in
// <data dir>/cache/graphs.
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { graphCacheDirOf } from '../../storage/data-dir';
import type { CommandContext, CommandGroup } from './command';
import { UsageError, intArg, parse, printJson, table } from './command';
import { ApiError } from '../../contract/errors';
import { loadGenerator, renderSetupOf, type ChatTurn, type Generator, type GenerateOptions, type ScoreSample } from '../../models/generate';
import { parseQuantScheme, type QuantScheme } from '../../models/quantize';
import { itemConversations } from '../../datasets/conversation';
import { parseSource } from '../../datasets/parse';
import { contrastiveScore, isContrastiveFolder, modelArg } from './contrastive';
import { blipGenerate, blipScore, isBlipFolder } from './blip';
import { modelErrorToApi } from '../../services/chat';

const sampling = `  --max-new-tokens N        at most N new tokens (default: the model's generation_config, else 128)
  --temperature T           0 = greedy (default); > 0 samples
  --top-k K, --top-p P      sampling filters (with --temperature > 0)
  --repetition-penalty R    > 1 discourages repeated tokens
  --seed S                  sampling seed (default 0)
  --stop TEXT               stop before TEXT (repeatable)`;

const generateUsage = `lenslab generate --model DIR [--adapter DIR] [--image FILE] --prompt TEXT [options]

Answer PROMPT about the image with the model in DIR (a Hugging Face LLaVA folder), optionally with a PEFT
LoRA adapter. With a BLIP folder: BlipForQuestionAnswering answers one question about --image greedily (single
turn); BlipForConditionalGeneration captions --image, continuing --prompt when given (e.g. "a picture of"); both stop
at 20 tokens in all unless --max-new-tokens, as transformers' generate. The answer is streamed; with --json one JSON object {ids, text, finishReason, promptTokens, timings[, warnings]}.

  --model DIR               model folder (config.json, model.safetensors, tokenizer.json, ...)
  --adapter DIR             adapter folder (adapter_config.json + adapter_model.safetensors)
  --image FILE              image to ask about (omit for a text-only prompt)
  --prompt TEXT             the question / instruction
  --system TEXT             a system message before it
  --quantize none|int8|int4 weight-only quantization of the vision tower and decoder (default none); quantized
                            once into the graph cache (see README, Quantized inference)
${sampling}

Options: --json, --data-dir DIR (compiled-graph cache)`;

const scoreUsage = `lenslab score --model DIR [--adapter DIR] --data FILE [--json]

Mean token loss (negative log-likelihood per assistant token, nats) of each sample in FILE: a LLaVA JSON, a
messages/VQA JSON or JSONL file, a CSV, a parquet file or an image folder with metadata (anything \`lenslab import\`
reads). Captions are scored as answers to "Describe the image." (BLIP-2: to no prompt), QA pairs as a multi-turn chat.
With a BLIP VQA folder: BlipForQuestionAnswering's loss (label-smoothed) per question-answer item.
With a CLIP / SigLIP folder: the contrastive loss of the batch of captioned images (--limit N, 32) and its
logits matrix (text x image).

  --model DIR               model folder
  --adapter DIR             adapter folder
  --data FILE               the samples
  --limit N                 score only the first N samples

Options: --json, --data-dir DIR (compiled-graph cache)`;

function requirePath(value: string | undefined, flag: string, kind: 'file' | 'dir' | 'any'): string {
  if (!value) throw new UsageError(`${flag} is required`);
  const p = resolve(value);
  if (!existsSync(p)) throw new ApiError('not_found', `${value}: not found (${flag})`, flag.replace(/^--/, ''));
  const st = statSync(p);
  if (kind === 'dir' && !st.isDirectory()) throw new ApiError('invalid_request', `${value}: is not a folder (${flag})`, flag.replace(/^--/, ''));
  if (kind === 'file' && !st.isFile()) throw new ApiError('invalid_request', `${value}: is not a file (${flag})`, flag.replace(/^--/, ''));
  return p;
}

function numArg(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new UsageError(`${name} must be a number, got ${v}`);
  return n;
}

const modelOptions = { model: { type: 'string' }, adapter: { type: 'string' } } as const;

async function openGenerator(ctx: CommandContext, model: string | undefined, adapter: string | undefined, quantize?: string): Promise<Generator> {
  const modelDir = requirePath(model, '--model', 'dir');
  const adapterDir = adapter === undefined ? null : requirePath(adapter, '--adapter', 'dir');
  let scheme: QuantScheme;
  try {
    scheme = parseQuantScheme(quantize, '--quantize');
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  try {
    return await loadGenerator(modelDir, adapterDir, { cacheDir: graphCacheDirOf(ctx.dataDir), quantize: scheme });
  } catch (e) {
    throw modelErrorToApi(e);
  }
}

export const generateCommand: CommandGroup = {
  name: 'generate',
  summary: 'answer a prompt about an image with a model folder (+ adapter)',
  usage: generateUsage,
  async run(argv, ctx) {
    if (isBlipFolder(modelArg(argv))) return blipGenerate(argv, ctx);
    const { values } = parse(
      argv,
      {
        ...modelOptions,
        image: { type: 'string' },
        prompt: { type: 'string' },
        system: { type: 'string' },
        quantize: { type: 'string' },
        'max-new-tokens': { type: 'string' },
        temperature: { type: 'string' },
        'top-k': { type: 'string' },
        'top-p': { type: 'string' },
        'repetition-penalty': { type: 'string' },
        seed: { type: 'string' },
        stop: { type: 'string', multiple: true },
      },
      false,
    );
    if (values.prompt === undefined) throw new UsageError('--prompt is required');
    const image = values.image === undefined ? null : requirePath(values.image, '--image', 'file');
    const topK = values['top-k'] === undefined ? undefined : intArg(values['top-k'], '--top-k');
    const opts: GenerateOptions = {
      maxNewTokens: values['max-new-tokens'] === undefined ? undefined : intArg(values['max-new-tokens'], '--max-new-tokens'),
      temperature: numArg(values.temperature, '--temperature'),
      topK,
      topP: numArg(values['top-p'], '--top-p'),
      repetitionPenalty: numArg(values['repetition-penalty'], '--repetition-penalty'),
      seed: numArg(values.seed, '--seed'),
      stop: values.stop,
    };
    const messages: ChatTurn[] = [];
    if (values.system !== undefined) messages.push({ role: 'system', content: values.system });
    messages.push({ role: 'user', content: values.prompt });
    const g = await openGenerator(ctx, values.model, values.adapter, values.quantize);
    try {
      let line = '';
      const write = ctx.io.write?.bind(ctx.io);
      if (!ctx.json)
        opts.onToken = ({ text }) => {
          if (!text) return;
          if (write) return write(text);
          // no raw stdout: stream whole lines
          line += text;
          const parts = line.split('\n');
          line = parts.pop()!;
          for (const p of parts) ctx.io.out(p);
        };
      let r;
      try {
        r = await g.generate({ image, messages }, opts);
      } catch (e) {
        throw modelErrorToApi(e, image ? 'image' : undefined);
      }
      if (ctx.json) printJson(ctx, { ids: r.ids, text: r.text, finishReason: r.finishReason, promptTokens: r.promptTokens, timings: r.timings, ...(r.warnings ? { warnings: r.warnings } : {}) });
      else {
        if (write) write('\n');
        else ctx.io.out(line);
        for (const w of r.warnings ?? []) ctx.io.err(`warning: ${w}`);
      }
      return 0;
    } finally {
      await g.dispose();
    }
  },
};

export const scoreCommand: CommandGroup = {
  name: 'score',
  summary: 'mean token loss per sample of a data file (assistant tokens)',
  usage: scoreUsage,
  async run(argv, ctx) {
    if (isContrastiveFolder(modelArg(argv))) return contrastiveScore(argv, ctx);
    if (isBlipFolder(modelArg(argv))) return blipScore(argv, ctx);
    const { values } = parse(argv, { ...modelOptions, data: { type: 'string' }, limit: { type: 'string' } }, false);
    const dataPath = requirePath(values.data, '--data', 'any');
    const limit = values.limit === undefined ? Infinity : intArg(values.limit, '--limit');
    let parsed;
    try {
      parsed = await parseSource(dataPath);
    } catch (e) {
      throw new ApiError('invalid_request', `${values.data}: ${(e as Error).message}`, 'data');
    }
    try {
      for (const p of parsed.problems) ctx.io.err(`${p.severity}: ${p.ref}${p.field ? ` (${p.field})` : ''}: ${p.message}`);
      const g = await openGenerator(ctx, values.model, values.adapter);
      // captions are scored with the model's own caption prompt (BLIP-2: none)
      const captionPrompt = renderSetupOf(g.model).captionPrompt;
      const samples: Array<ScoreSample & { ref: string; kind: string }> = [];
      for (const item of parsed.items) {
        const image = item.image ? ('path' in item.image ? item.image.path : Buffer.from(item.image.bytes)) : null;
        itemConversations(item.annotations, !!item.image, { captionPrompt }).forEach((c, k, all) => {
          if (samples.length < limit) samples.push({ image, messages: c.messages, ref: all.length > 1 ? `${item.sourcePath}#${k}` : item.sourcePath, kind: c.kind });
        });
      }
      let results;
      try {
        if (samples.length === 0) throw new ApiError('invalid_request', `${values.data}: no samples with annotations to score`, 'data');
        results = await g.score(samples);
      } catch (e) {
        throw modelErrorToApi(e, 'data');
      } finally {
        await g.dispose();
      }
      const rows = samples.map((s, i) => ({ ref: s.ref, kind: s.kind, loss: Number.isNaN(results[i].loss) ? null : results[i].loss, tokens: results[i].tokens }));
      const tokens = rows.reduce((a, r) => a + r.tokens, 0);
      const scored = rows.filter((r) => r.loss !== null);
      const mean = scored.length ? scored.reduce((a, r) => a + r.loss!, 0) / scored.length : null;
      const perToken = tokens ? scored.reduce((a, r) => a + r.loss! * r.tokens, 0) / tokens : null;
      if (ctx.json) printJson(ctx, { samples: rows, meanLoss: mean, tokenWeightedLoss: perToken, tokens });
      else {
        ctx.io.out(table(['SAMPLE', 'KIND', 'TOKENS', 'LOSS'], rows.map((r) => [r.ref, r.kind, r.tokens, r.loss === null ? null : r.loss.toFixed(4)])));
        ctx.io.out(`mean loss ${mean === null ? '-' : mean.toFixed(4)} over ${scored.length} sample(s); ${perToken === null ? '-' : perToken.toFixed(4)} per token over ${tokens} token(s)`);
      }
      return 0;
    } finally {
      parsed.cleanup();
    }
  },
};
