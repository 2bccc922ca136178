// CLI for BLIP folders: the BLIP forms of `lenslab generate` (VQA: one question about one image, the question
// encoded once with the image, the answer decoded greedily; captioning: a caption, optionally continuing --prompt), `lenslab score` (BlipForQuestionAnswering's loss per
// (image, question, answer) item) and `lenslab train` (LoRA, foreground, writes a PEFT adapter to --out).
// generate.ts and train.ts hand over when --model is a BLIP folder. Data: any file or folder `lenslab datasets
// import` reads; every question-answer annotation of an image item is one triple.

import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { CommandContext } from './command';
import { UsageError, intArg, parse, printJson, table } from './command';
import { ApiError } from '../../contract/errors';
import { parseSource } from '../../datasets/parse';
import type { ImageInput } from '../../models/image-processor';
import { loadBlipAdapter, type BlipAdapter } from '../../models/families/blip/adapter';
import { BlipRunner, answerBatch, isBlipFolder, loadBlip, type BlipModel } from '../../models/families/blip/model';
import { BLIP_VQA_RECIPE, BlipTrainError, trainBlipToFolder } from '../../training/blip';
import { graphCacheDirOf } from '../../storage/data-dir';

export { isBlipFolder };

export interface VqaItem {
  ref: string;
  image: ImageInput;
  question: string;
  answer: string;
  split?: string;
}

/** (image, question, answer) triples of a data file or folder, in item order; with `captions`, (image, caption) pairs. */
export async function readVqaItems(path: string, o: { split?: string; limit?: number; captions?: boolean; warn?: (line: string) => void } = {}): Promise<VqaItem[]> {
  let parsed;
  try {
    parsed = await parseSource(resolve(path));
  } catch (e) {
    throw new ApiError('invalid_request', `${path}: ${(e as Error).message}`, 'data');
  }
  try {
    for (const p of parsed.problems) if (p.severity === 'error') o.warn?.(`${p.severity}: ${p.ref}: ${p.message}`);
    const out: VqaItem[] = [];
    for (const it of parsed.items) {
      if (!it.image) continue;
      if (o.split && (it.split ?? 'train') !== o.split) continue;
      const image: ImageInput = 'path' in it.image ? it.image.path : Buffer.from(it.image.bytes);
      if (o.captions) {
        const caps = it.annotations.filter((a) => a.kind === 'caption');
        caps.forEach((a, k) => {
          if (a.kind !== 'caption' || (o.limit !== undefined && out.length >= o.limit)) return;
          out.push({ ref: caps.length > 1 ? `${it.sourcePath}#${k}` : it.sourcePath, image, question: '', answer: a.data.text, split: it.split });
        });
        continue;
      }
      const qas = it.annotations.filter((a) => a.kind === 'qa');
      qas.forEach((a, k) => {
        if (a.kind !== 'qa' || (o.limit !== undefined && out.length >= o.limit)) return;
        out.push({ ref: qas.length > 1 ? `${it.sourcePath}#${k}` : it.sourcePath, image, question: a.data.question, answer: a.data.answer, split: it.split });
      });
    }
    // images are read by path later: copy bytes of archives before cleanup
    for (const p of out) if (typeof p.image === 'string' && parsed.archive) p.image = readFileSync(p.image);
    return out;
  } finally {
    parsed.cleanup();
  }
}

function openModel(model: string | undefined, adapter: string | undefined): { m: BlipModel; ad: BlipAdapter | null } {
  if (!model) throw new UsageError('--model DIR is required');
  let m: BlipModel;
  try {
    m = loadBlip(resolve(model));
  } catch (e) {
    throw new ApiError('invalid_request', (e as Error).message, 'model');
  }
  try {
    if (adapter !== undefined && !existsSync(resolve(adapter))) throw new ApiError('not_found', `${adapter}: not found (--adapter)`, 'adapter');
    return { m, ad: adapter ? loadBlipAdapter(resolve(adapter), m.config) : null };
  } catch (e) {
    m.close();
    if (e instanceof ApiError) throw e;
    throw new ApiError('invalid_request', (e as Error).message, 'adapter');
  }
}

function runnerOf(ctx: CommandContext, m: BlipModel, ad: BlipAdapter | null): BlipRunner {
  // compiled graphs cached per model folder and adapter file contents
  const adKey = ad ? { r: ad.r, alpha: ad.alpha, modules: [...ad.lora.keys()], sum: [...ad.lora.values()].map((e) => e.a.reduce((s, v) => s + v, 0) + e.b.reduce((s, v) => s + v, 0)) } : null;
  const files = readdirSync(m.dir)
    .filter((f) => /\.(safetensors|json)$/.test(f))
    .sort()
    .map((f) => {
      const st = statSync(join(m.dir, f));
      return [f, st.size, st.mtimeMs];
    });
  return new BlipRunner(m, { adapter: ad, cacheDir: graphCacheDirOf(ctx.dataDir), cacheKey: { blip: m.dir, files, adapter: adKey } });
}

/** `lenslab generate` with a BLIP VQA folder: the answer to --prompt about --image. */
export async function blipGenerate(argv: string[], ctx: CommandContext): Promise<number> {
  const { values } = parse(
    argv,
    {
      model: { type: 'string' }, adapter: { type: 'string' }, image: { type: 'string' }, prompt: { type: 'string' }, system: { type: 'string' },
      'max-new-tokens': { type: 'string' }, temperature: { type: 'string' }, quantize: { type: 'string' },
    },
    false,
  );
  if (values.image === undefined) throw new UsageError('--image FILE is required: BLIP answers a question about an image or captions it');
  if (values.temperature !== undefined && Number(values.temperature) !== 0) throw new UsageError('BLIP VQA answers greedily (as transformers\' generate for BlipForQuestionAnswering): --temperature must be 0');
  if (values.quantize !== undefined && values.quantize !== 'none') throw new UsageError('--quantize is not supported for BLIP models');
  const image = resolve(values.image);
  if (!existsSync(image)) throw new ApiError('not_found', `${values.image}: not found (--image)`, 'image');
  // transformers' default max_length 20 counts the whole sequence (bos and any caption prompt)
  const maxNew = values['max-new-tokens'] === undefined ? null : intArg(values['max-new-tokens'], '--max-new-tokens');
  const { m, ad } = openModel(values.model, values.adapter);
  try {
    const captioning = m.config.architecture === 'BlipForConditionalGeneration';
    if (!captioning && values.prompt === undefined) throw new UsageError('--prompt is required (the question)');
    const runner = runnerOf(ctx, m, ad);
    const t0 = performance.now();
    let r;
    try {
      if (captioning) {
        const start = values.prompt ? m.tokenizer.encode(values.prompt).length - 1 : 1;
        const [c] = await runner.caption([image], values.prompt ?? '', { maxLength: maxNew === null ? 20 : start + maxNew });
        r = c;
      } else [r] = await runner.answer([image], [values.prompt!], { maxLength: maxNew === null ? 20 : 1 + maxNew });
    } catch (e) {
      throw new ApiError('invalid_request', (e as Error).message, 'image');
    } finally {
      await runner.release();
    }
    const ms = performance.now() - t0;
    const finishReason = r.tokens.at(-1) === m.config.text.sepTokenId ? 'stop' : 'length';
    const warnings = [...(values.system !== undefined ? ['BLIP VQA has no system message: --system was ignored'] : [])];
    if (ctx.json)
      printJson(ctx, {
        ids: r.tokens, text: r.answer, finishReason, promptTokens: values.prompt === undefined ? 1 : m.tokenizer.encode(values.prompt).length,
        timings: { totalMs: ms, decodeTokens: r.tokens.length }, ...(warnings.length ? { warnings } : {}),
      });
    else {
      ctx.io.out(r.answer);
      for (const w of warnings) ctx.io.err(`warning: ${w}`);
    }
    return 0;
  } finally {
    m.close();
  }
}

/** `lenslab score` with a BLIP VQA folder: BlipForQuestionAnswering's loss per item (mean over its answer tokens). */
export async function blipScore(argv: string[], ctx: CommandContext): Promise<number> {
  const { values } = parse(argv, { model: { type: 'string' }, adapter: { type: 'string' }, data: { type: 'string' }, limit: { type: 'string' } }, false);
  if (!values.data) throw new UsageError('--data FILE is required');
  const limit = values.limit === undefined ? undefined : intArg(values.limit, '--limit');
  const { m, ad } = openModel(values.model, values.adapter);
  try {
    const captioning = m.config.architecture === 'BlipForConditionalGeneration';
    const items = await readVqaItems(values.data, { limit, captions: captioning, warn: (l) => ctx.io.err(l) });
    if (!items.length) throw new ApiError('invalid_request', `${values.data}: no image items with ${captioning ? 'a caption' : 'a question and answer'} to score`, 'data');
    const runner = runnerOf(ctx, m, ad);
    const rows: Array<{ ref: string; kind: string; loss: number; tokens: number }> = [];
    let sum = 0;
    let count = 0;
    try {
      for (let i = 0; i < items.length; i += 8) {
        const b = items.slice(i, i + 8);
        const r = captioning ? await runner.captionLoss(b.map((x) => x.image), b.map((x) => x.answer)) : await runner.loss(b.map((x) => x.image), b.map((x) => x.question), b.map((x) => x.answer));
        const ab = answerBatch(m, b.map((x) => x.answer));
        b.forEach((x, k) => {
          let n = 0;
          for (let t = 1; t < ab.length; t++) if (ab.labels[k * ab.length + t] !== -100n) n++;
          rows.push({ ref: x.ref, kind: captioning ? 'caption' : 'qa', loss: r.items[k], tokens: n });
        });
        sum += r.sum;
        count += r.count;
      }
    } catch (e) {
      throw new ApiError('invalid_request', (e as Error).message, 'data');
    } finally {
      await runner.release();
    }
    const meanLoss = rows.reduce((a, r) => a + r.loss, 0) / rows.length;
    const tokenWeightedLoss = sum / Math.max(count, 1);
    if (ctx.json) printJson(ctx, { samples: rows, meanLoss, tokenWeightedLoss, tokens: count, labelSmoothing: m.config.text.labelSmoothing });
    else {
      ctx.io.out(table(['SAMPLE', 'LOSS', 'TOKENS'], rows.map((r) => [r.ref, r.loss.toFixed(4), r.tokens])));
      ctx.io.out(`mean loss ${meanLoss.toFixed(4)} over ${rows.length} sample(s); ${tokenWeightedLoss.toFixed(4)} per token (label smoothing ${m.config.text.labelSmoothing})`);
    }
    return 0;
  } finally {
    m.close();
  }
}

/** `lenslab train` with a BLIP VQA folder: LoRA in the foreground, a PEFT adapter in --out. */
export async function blipTrain(argv: string[], ctx: CommandContext): Promise<number> {
  const { values } = parse(
    argv,
    {
      method: { type: 'string' }, model: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' }, 'train-split': { type: 'string' }, preset: { type: 'string' },
      'target-modules': { type: 'string' }, rank: { type: 'string' }, alpha: { type: 'string' }, dropout: { type: 'string' },
      lr: { type: 'string' }, epochs: { type: 'string' }, 'batch-size': { type: 'string' }, 'grad-accum': { type: 'string' }, seed: { type: 'string' }, 'weight-decay': { type: 'string' },
      limit: { type: 'string' }, schedule: { type: 'string' }, 'clip-norm': { type: 'string' },
    },
    false,
  );
  if (values.schedule !== undefined && values.schedule !== 'constant') throw new UsageError(`--schedule ${values.schedule}: BLIP training runs the recipe's constant learning rate`);
  if (values.method !== undefined && values.method !== 'lora') throw new UsageError(`--method ${values.method}: BLIP models train with lora`);
  if (values.preset !== undefined && values.preset !== 'blip-vqa-lora') throw new UsageError(`--preset ${values.preset}: a BLIP VQA folder takes the blip-vqa-lora preset (its defaults apply without --preset too)`);
  if (!values.data) throw new UsageError('--data PATH is required');
  if (!values.out) throw new UsageError('--out DIR is required (the adapter folder)');
  const out = resolve(values.out);
  if (existsSync(out) && readdirSync(out).length) throw new UsageError(`--out ${out} is not empty; choose an empty or new folder`);
  const num = (v: string | undefined, name: string) => {
    if (v === undefined) return undefined;
    const x = Number(v);
    if (v.trim() === '' || !Number.isFinite(x)) throw new UsageError(`${name} must be a number (got "${v}")`);
    return x;
  };
  const split = values['train-split'] ?? 'train';
  const limit = values.limit === undefined ? undefined : intArg(values.limit, '--limit');
  const { m } = openModel(values.model, undefined);
  try {
    const captioning = m.config.architecture === 'BlipForConditionalGeneration';
    const items = await readVqaItems(values.data, { split, limit, captions: captioning, warn: (l) => ctx.io.err(l) });
    const note = (l: string) => (ctx.json ? ctx.io.err(l) : ctx.io.out(l));
    const R = BLIP_VQA_RECIPE;
    const targets = values['target-modules']?.split(',').map((s) => s.trim()).filter(Boolean);
    note(`BLIP ${captioning ? 'captioning' : 'VQA'}: ${items.length} ${captioning ? 'caption' : 'question'}(s) from split "${split}"; LoRA r=${values.rank ?? R.rank} alpha=${values.alpha ?? R.alpha} dropout=${values.dropout ?? R.dropout} on ${(targets ?? R.targets).join(', ')}`);
    const t0 = Date.now();
    let res;
    try {
      res = await trainBlipToFolder(
        m,
        items,
        {
          targets, rank: num(values.rank, '--rank'), alpha: num(values.alpha, '--alpha'), dropout: num(values.dropout, '--dropout'), lr: num(values.lr, '--lr'),
          epochs: num(values.epochs, '--epochs'), batchSize: num(values['batch-size'], '--batch-size'), gradAccum: num(values['grad-accum'], '--grad-accum'),
          seed: num(values.seed, '--seed'), weightDecay: num(values['weight-decay'], '--weight-decay'), clipNorm: num(values['clip-norm'], '--clip-norm'),
          onStep: (s) => {
            if (s.step === 1 || s.step === s.total || s.step % 10 === 0) ctx.io.err(`step ${s.step}/${s.total} loss ${s.loss.toFixed(4)}`);
          },
        },
        out,
      );
    } catch (e) {
      if (e instanceof BlipTrainError) throw new ApiError('invalid_request', e.message, 'hparams');
      throw e;
    }
    const summary = { out, steps: res.steps, firstLoss: res.losses[0] ?? null, lastLoss: res.losses.at(-1) ?? null, seconds: (Date.now() - t0) / 1000 };
    if (ctx.json) printJson(ctx, summary);
    else note(`wrote a PEFT adapter to ${out} after ${res.steps} steps (loss ${summary.firstLoss?.toFixed(4)} -> ${summary.lastLoss?.toFixed(4)}, ${summary.seconds.toFixed(1)} s)`);
    return 0;
  } finally {
    m.close();
  }
}
