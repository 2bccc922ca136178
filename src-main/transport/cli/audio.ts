// `lenslab audio`: audio LLMs (Whisper encoder + projector + LLaMA/Qwen2 in Ultravox's layout, models/audio/) from
// the command line, in the foreground: compose one, train it (projector-only, then LoRA) on a JSONL file of clips,
// ask it about a clip. Audio files are decoded as media/audio.ts does (WAV and FLAC in JS, resampled to the model's
// rate); a clip longer than the model's window is cut with a warning.
//
// Data (--data FILE.jsonl): one JSON object per line, {"audio": "clips/a.wav", "question": "...", "answer": "..."} or
// {"audio": "...", "caption": "..."} (asked as "Describe the sound."); "audio" is relative to the JSONL file's folder
// and cannot leave it.

import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import type { CommandContext, CommandGroup } from './command';
import { UsageError, intArg, listArg, numArg, parse, printJson } from './command';
import { ApiError } from '../../contract/errors';
import { decodeAudioFile } from '../../media/audio';
import { composeAudioLlm } from '../../models/audio/compose';
import { clipFeatures, loadAudioLlm, type AudioClip, type LoadedAudioLlm } from '../../models/audio/ultravox';
import { AudioLlmCachedGenerator } from '../../models/audio/generate';
import {
  buildTrainableAudioLlm,
  promptIds,
  trainBatch,
  type AudioExample,
  type AudioTrainMethod,
} from '../../models/audio/train';
import { loadAudioAdapter, mergeAudioAdapter, saveAudioAdapter } from '../../models/audio/adapter';
import { StepExecutor } from '../../engine/runtime/step-executor';
import { lrAt } from '../../engine/optim/schedules';
import { demoRng } from '../../models/demo/rng';
import { LORA_TARGETS, TRAIN_METHODS } from '../../contract/hparams';

const USAGE = `lenslab audio compose --whisper DIR --llm DIR --out DIR [--stack 4] [--projector-hidden N] [--audio-token "<audio>"] [--seed 0]
lenslab audio train   --model DIR --data FILE.jsonl --out ADAPTER_DIR [--method projector|lora|lora+projector]
                      [--init ADAPTER_DIR] [--steps 300] [--batch-size 16] [--lr 1e-2] [--rank 16] [--alpha 32]
                      [--target-modules q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj] [--seed 0]
lenslab audio ask     --model DIR --audio FILE [--adapter DIR] [--question TEXT] [--max-tokens 32]

Audio LLMs: a Whisper encoder, a frame-stacking projector and a LLaMA / Qwen2 decoder (Ultravox layout).
  compose  a Whisper folder + a language model folder + a new projector -> an audio LLM folder ("<audio>" added)
  train    projector-only (e.g. on captions), then --method lora or lora+projector with --init the first adapter;
           writes a PEFT adapter folder. Data: JSONL lines {"audio": PATH, "question": ..., "answer": ...} or
           {"audio": PATH, "caption": ...}, PATH relative to the JSONL file's folder
  ask      greedy answer about one clip (WAV or FLAC), base or with --adapter`;

const CAPTION_QUESTION = 'Describe the sound.';

function bad(message: string, field?: string): never {
  throw new ApiError('invalid_request', message, field);
}

async function readClip(path: string, label: string, rate: number): Promise<AudioClip> {
  try {
    const c = await decodeAudioFile(path, { label, sampleRate: rate });
    return { samples: c.samples, sampleRate: c.sampleRate, name: label };
  } catch (e) {
    return bad((e as Error).message, 'audio');
  }
}

function openModel(dir: string): LoadedAudioLlm {
  try {
    return loadAudioLlm(dir);
  } catch (e) {
    return bad((e as Error).message, 'model');
  }
}

interface Record_ extends AudioExample {
  audio: string;
  ref: string;
}

/** The JSONL records, each with its audio path resolved inside the file's folder. */
export function readAudioJsonl(file: string): Record_[] {
  let text: string;
  try {
    if (!statSync(file).isFile()) throw new Error('not a regular file');
    text = readFileSync(file, 'utf8');
  } catch (e) {
    return bad(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 'data');
  }
  const root = dirname(resolve(file));
  const out: Record_[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    const ref = `${file}:${i + 1}`;
    let r: Record<string, unknown>;
    try {
      r = JSON.parse(line);
    } catch (e) {
      return bad(`${ref}: not valid JSON (${(e as Error).message})`, 'data');
    }
    if (typeof r.audio !== 'string' || !r.audio) bad(`${ref}: field "audio": a path to the clip is required`, 'data');
    const p = resolve(root, r.audio as string);
    const rel = relative(root, p);
    if (isAbsolute(r.audio as string) || rel.startsWith('..') || isAbsolute(rel))
      bad(`${ref}: field "audio": "${String(r.audio)}" leaves the data folder`, 'data');
    if (typeof r.caption === 'string') out.push({ audio: p, ref, question: CAPTION_QUESTION, answer: r.caption });
    else if (typeof r.question === 'string' && typeof r.answer === 'string')
      out.push({ audio: p, ref, question: r.question, answer: r.answer });
    else bad(`${ref}: needs "question" and "answer" strings, or a "caption" string`, 'data');
  });
  if (out.length === 0) bad(`${file}: no records`, 'data');
  return out;
}

async function compose(argv: string[], ctx: CommandContext): Promise<number> {
  const { values } = parse(
    argv,
    {
      whisper: { type: 'string' },
      llm: { type: 'string' },
      out: { type: 'string' },
      stack: { type: 'string' },
      'projector-hidden': { type: 'string' },
      'audio-token': { type: 'string' },
      seed: { type: 'string' },
    },
    false,
  );
  if (!values.whisper || !values.llm || !values.out)
    throw new UsageError('--whisper DIR, --llm DIR and --out DIR are required');
  let r;
  try {
    r = composeAudioLlm({
      audioDir: values.whisper,
      textDir: values.llm,
      outDir: values.out,
      stackFactor: values.stack === undefined ? undefined : intArg(values.stack, '--stack'),
      projectorHidden:
        values['projector-hidden'] === undefined ? undefined : intArg(values['projector-hidden'], '--projector-hidden'),
      audioToken: values['audio-token'],
      seed: numArg(values.seed, '--seed') ?? 0,
    });
  } catch (e) {
    if (e instanceof UsageError) throw e;
    return bad((e as Error).message);
  }
  if (ctx.json)
    printJson(ctx, {
      out: values.out,
      audioTokenId: r.audioTokenId,
      addedAudioToken: r.addedAudioToken,
      files: r.files,
    });
  else
    ctx.io.out(
      `wrote ${values.out}: ${r.config.audio.numLayers}x${r.config.audio.dModel} Whisper encoder + stack-${r.config.projector.stackFactor} projector + ${r.config.text.modelType} ${r.config.text.numHiddenLayers}x${r.config.text.hiddenSize}; audio token id ${r.audioTokenId}${r.addedAudioToken ? ' (added)' : ''}`,
    );
  return 0;
}

async function train(argv: string[], ctx: CommandContext): Promise<number> {
  const { values } = parse(
    argv,
    {
      model: { type: 'string' },
      data: { type: 'string' },
      out: { type: 'string' },
      method: { type: 'string' },
      init: { type: 'string' },
      steps: { type: 'string' },
      'batch-size': { type: 'string' },
      lr: { type: 'string' },
      rank: { type: 'string' },
      alpha: { type: 'string' },
      'target-modules': { type: 'string' },
      seed: { type: 'string' },
    },
    false,
  );
  if (!values.model || !values.data || !values.out)
    throw new UsageError('--model DIR, --data FILE.jsonl and --out ADAPTER_DIR are required');
  const method = (values.method ?? 'projector') as AudioTrainMethod;
  if (!(TRAIN_METHODS as readonly string[]).includes(method))
    throw new UsageError(`--method ${method}: projector, lora or lora+projector`);
  const steps = intArg(values.steps ?? '300', '--steps');
  const batch = intArg(values['batch-size'] ?? '16', '--batch-size');
  const lr = Number(values.lr ?? '1e-2');
  if (!(lr > 0)) throw new UsageError(`--lr must be a positive number, got ${values.lr}`);
  const rank = intArg(values.rank ?? '16', '--rank');
  const alpha = numArg(values.alpha, '--alpha') ?? 2 * rank;
  const targets = listArg(values['target-modules']) ?? [...LORA_TARGETS];
  const seed = numArg(values.seed, '--seed') ?? 0;
  const records = readAudioJsonl(values.data);
  const m = openModel(values.model);
  try {
    const clips: AudioClip[] = [];
    for (const r of records) clips.push(await readClip(r.audio, r.ref, m.features.config.samplingRate));
    const f = clipFeatures(m.features, clips);
    for (const w of f.warnings) ctx.io.err(`warning: ${w}`);
    const lora = method === 'projector' ? null : { rank, alpha, targetModules: targets };
    let t;
    try {
      t = buildTrainableAudioLlm(m, method, lora, m.features.config.nbMaxFrames);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const init = t.initialValues(seed);
    if (values.init) {
      let prev;
      try {
        prev = loadAudioAdapter(values.init, m);
      } catch (e) {
        return bad((e as Error).message, 'init');
      }
      // a projector trained before carries over; LoRA matrices too when their shapes match
      for (const [k, v] of Object.entries(prev.values)) if (init[k] && init[k].length === v.length) init[k] = v;
    }
    const ex = await StepExecutor.create(
      { params: t.params, forward: t.forward, adamw: { weightDecay: 0 }, clipNorm: 1.0, session: { threads: 2 } },
      init,
    );
    const per = f.dims[1] * f.dims[2];
    const rng = demoRng(seed + 1);
    const sched = {
      kind: 'cosine' as const,
      baseLr: lr,
      warmupSteps: Math.round(steps * 0.05),
      totalSteps: steps,
      minRatio: 0.1,
    };
    let avg = 0;
    for (let s = 0; s < steps; s++) {
      const idx = Array.from({ length: Math.min(batch, records.length) }, () =>
        Math.floor(rng.next() * records.length),
      );
      const data = new Float32Array(idx.length * per);
      idx.forEach((j, k) => data.set(f.data.subarray(j * per, (j + 1) * per), k * per));
      const r = await ex.step(
        trainBatch(
          m,
          idx.map((j) => records[j]),
          { data, dims: [idx.length, f.dims[1], f.dims[2]] },
        ) as never,
        lrAt(sched, s),
      );
      avg = s === 0 ? r.loss : 0.9 * avg + 0.1 * r.loss;
      if (!ctx.json && ((s + 1) % 25 === 0 || s === steps - 1))
        ctx.io.out(`step ${s + 1}/${steps}  loss ${avg.toFixed(4)}`);
    }
    const trained: Record<string, Float32Array> = {};
    for (const [k, v] of Object.entries(ex.paramTensors())) trained[k] = Float32Array.from(v.data as Float32Array);
    const files = saveAudioAdapter(values.out, m, method, lora, trained, values.model);
    if (ctx.json) printJson(ctx, { out: values.out, method, steps, loss: avg, files });
    else
      ctx.io.out(
        `wrote ${join(values.out, files[0])} (${method}, ${records.length} clips, final loss ${avg.toFixed(4)})`,
      );
    return 0;
  } finally {
    m.close();
  }
}

async function ask(argv: string[], ctx: CommandContext): Promise<number> {
  const { values } = parse(
    argv,
    {
      model: { type: 'string' },
      audio: { type: 'string' },
      adapter: { type: 'string' },
      question: { type: 'string' },
      'max-tokens': { type: 'string' },
    },
    false,
  );
  if (!values.model || !values.audio) throw new UsageError('--model DIR and --audio FILE are required');
  const maxNew = intArg(values['max-tokens'] ?? '32', '--max-tokens');
  const m = openModel(values.model);
  try {
    const clip = await readClip(values.audio, values.audio, m.features.config.samplingRate);
    const f = clipFeatures(m.features, [clip]);
    for (const w of f.warnings) ctx.io.err(`warning: ${w}`);
    let weights = m.weights as import('../../models/weights/safetensors').TensorSource;
    if (values.adapter) {
      try {
        const a = loadAudioAdapter(values.adapter, m);
        weights = mergeAudioAdapter(m, a.method, a.lora, a.values);
      } catch (e) {
        return bad((e as Error).message, 'adapter');
      }
    }
    const question = values.question ?? CAPTION_QUESTION;
    const gen = await AudioLlmCachedGenerator.create({ config: m.config, weights }, m.features.config.nbMaxFrames);
    try {
      const r = await gen.greedy(promptIds(m, question), f, maxNew, { stopAtEos: true });
      const eos = new Set(m.config.text.eosTokenIds);
      const answer = m.tokenizer
        .decode(
          r.ids.filter((id) => !eos.has(id)),
          { skipSpecialTokens: true },
        )
        .trim();
      if (ctx.json) printJson(ctx, { question, answer, tokens: r.ids.length });
      else ctx.io.out(answer);
    } finally {
      await gen.dispose();
    }
    return 0;
  } finally {
    m.close();
  }
}

export const audioCommand: CommandGroup = {
  name: 'audio',
  summary: 'audio LLMs: compose (Whisper + LLM), train on clips, ask about a clip',
  usage: USAGE,
  async run(argv, ctx) {
    const [sub, ...rest] = argv;
    if (sub === 'compose') return compose(rest, ctx);
    if (sub === 'train') return train(rest, ctx);
    if (sub === 'ask') return ask(rest, ctx);
    throw new UsageError(
      sub
        ? `unknown audio command "${sub}" (compose, train, ask)`
        : 'an audio command is required (compose, train, ask)',
    );
  },
};
