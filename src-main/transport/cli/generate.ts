// `lenslab generate` (answer a prompt about an image, streamed) and `lenslab score` (mean token loss per sample over
// its assistant tokens) on a model folder: the flags become one inference.generate / inference.score call (the
// work runs in the backend's workers; Ctrl-C cancels it through the request's signal). Compiled graphs are cached in
// <data dir>/cache/graphs.
import type { CommandGroup } from './command';
import { UsageError, intArg, modelRefs, parse, printJson, requirePath, table, withBackend } from './command';
import type { Params } from '../../contract/index';
import { parseQuantScheme } from '../../models/quantize';
import { modelArg } from './contrastive';
import { blipGenerateParams, isBlipFolder } from './blip';

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

function numArg(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new UsageError(`${name} must be a number, got ${v}`);
  return n;
}

const modelOptions = { model: { type: 'string' }, adapter: { type: 'string' } } as const;

function generateParams(argv: string[]): Params<'inference.generate'> {
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
  const options = {
    maxNewTokens:
      values['max-new-tokens'] === undefined ? undefined : intArg(values['max-new-tokens'], '--max-new-tokens'),
    temperature: numArg(values.temperature, '--temperature'),
    topK,
    topP: numArg(values['top-p'], '--top-p'),
    repetitionPenalty: numArg(values['repetition-penalty'], '--repetition-penalty'),
    seed: numArg(values.seed, '--seed'),
    stop: values.stop,
  };
  const messages: Params<'inference.generate'>['messages'] = [];
  if (values.system !== undefined) messages.push({ role: 'system', content: values.system });
  messages.push({ role: 'user', content: values.prompt });
  const refs = modelRefs(values.model, values.adapter);
  let quantize;
  try {
    quantize = parseQuantScheme(values.quantize, '--quantize');
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  return {
    ...refs,
    ...(image ? { image: { path: image } } : {}),
    messages,
    options: { ...options, ...(values.quantize !== undefined ? { quantize } : {}) },
  };
}

export const generateCommand: CommandGroup = {
  name: 'generate',
  summary: 'answer a prompt about an image with a model folder (+ adapter)',
  usage: generateUsage,
  async run(argv, ctx) {
    // BLIP takes other flags (greedy only, no quantization): its own flag checks, the same method
    const params = isBlipFolder(modelArg(argv)) ? blipGenerateParams(argv) : generateParams(argv);
    const requestId = `cli-${process.pid}-${Date.now()}`;
    return withBackend(
      ctx,
      async (call, backend) => {
        let line = '';
        const write = ctx.io.write?.bind(ctx.io);
        const off = backend.events.subscribe((event, payload) => {
          if (event !== 'inference.token' || ctx.json) return;
          const { requestId: id, text } = payload as { requestId: string; text: string };
          if (id !== requestId || !text) return;
          if (write) return write(text);
          // no raw stdout: stream whole lines
          line += text;
          const parts = line.split('\n');
          line = parts.pop()!;
          for (const p of parts) ctx.io.out(p);
        });
        let r;
        try {
          r = await call('inference.generate', { ...params, requestId });
        } finally {
          off();
        }
        if (ctx.json)
          printJson(ctx, {
            ids: r.ids,
            text: r.text,
            finishReason: r.finishReason,
            promptTokens: r.promptTokens,
            timings: r.timings,
            ...(r.warnings ? { warnings: r.warnings } : {}),
          });
        else {
          if (write) write('\n');
          else ctx.io.out(line);
          for (const w of r.warnings ?? []) ctx.io.err(`warning: ${w}`);
        }
        return 0;
      },
      { readonly: true, interruptible: true },
    );
  },
};

export const scoreCommand: CommandGroup = {
  name: 'score',
  summary: 'mean token loss per sample of a data file (assistant tokens)',
  usage: scoreUsage,
  async run(argv, ctx) {
    const { values } = parse(argv, { ...modelOptions, data: { type: 'string' }, limit: { type: 'string' } }, false);
    requirePath(values.data, '--data', 'any');
    const limit = values.limit === undefined ? undefined : intArg(values.limit, '--limit');
    const refs = modelRefs(values.model, values.adapter);
    const r = await withBackend(
      ctx,
      (call) => call('inference.score', { ...refs, data: { path: values.data! }, limit }),
      { readonly: true, interruptible: true },
    );
    for (const w of r.warnings) ctx.io.err(w);
    if (r.kind === 'contrastive') {
      if (ctx.json)
        printJson(ctx, {
          model: r.model,
          lossType: r.lossType,
          loss: r.loss,
          items: r.items,
          logitsPerText: r.logitsPerText,
        });
      else {
        ctx.io.out(`batch of ${r.items.length} pairs, ${r.lossType} loss ${r.loss.toFixed(4)}`);
        ctx.io.out(
          table(
            ['TEXT \\ IMAGE', ...r.items.map((_, j) => String(j + 1))],
            r.logitsPerText.map((row, i) => [
              `${i + 1} ${r.items[i].text.slice(0, 30)}`,
              ...row.map((v) => v.toFixed(2)),
            ]),
          ),
        );
      }
      return 0;
    }
    const { samples: rows, meanLoss: mean, tokenWeightedLoss: perToken, tokens, labelSmoothing } = r;
    if (ctx.json)
      printJson(ctx, {
        samples: rows,
        meanLoss: mean,
        tokenWeightedLoss: perToken,
        tokens,
        ...(labelSmoothing !== undefined ? { labelSmoothing } : {}),
      });
    else if (labelSmoothing !== undefined) {
      // BLIP: every item has answer tokens
      ctx.io.out(
        table(
          ['SAMPLE', 'LOSS', 'TOKENS'],
          rows.map((x) => [x.ref, x.loss!.toFixed(4), x.tokens]),
        ),
      );
      ctx.io.out(
        `mean loss ${mean!.toFixed(4)} over ${rows.length} sample(s); ${perToken!.toFixed(4)} per token (label smoothing ${labelSmoothing})`,
      );
    } else {
      const scored = rows.filter((x) => x.loss !== null);
      ctx.io.out(
        table(
          ['SAMPLE', 'KIND', 'TOKENS', 'LOSS'],
          rows.map((x) => [x.ref, x.kind, x.tokens, x.loss === null ? null : x.loss.toFixed(4)]),
        ),
      );
      ctx.io.out(
        `mean loss ${mean === null ? '-' : mean.toFixed(4)} over ${scored.length} sample(s); ${perToken === null ? '-' : perToken.toFixed(4)} per token over ${tokens} token(s)`,
      );
    }
    return 0;
  },
};
