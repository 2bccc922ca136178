// `lenslab train`: check (hyperparameters, data against the model, memory estimate: runs.estimate), then train in a
// job process (runs.start, or runs.resume for a paused run found by runs.find) with a progress bar drawn from the run
// events. Ctrl-C pauses (runs.pause, checkpoint); the same command with the same --out resumes.
import { FolderBusyError, folderEntries, folderLockHolder } from '../../jobs/folder-lock';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import type { CommandContext, CommandGroup } from './command';
import { UsageError, parse, printJson, resolveDataDir, type Call } from './command';
import { ApiError } from '../../contract/errors';
import { createBackend, type Backend } from '../../services/backend';
import { HparamsError, hparamsFromCli, hparamsSchema, cliFlag } from '../../training/hparams';
import { formatBytes } from '../../training/memory';
import type { ForegroundIO } from './foreground';
import { formatDuration, formatEvent, formatProgress } from './progress';
import type { RunnerEvent } from '../../jobs/runner';
import type { RunStatus } from '../../contract/runs';
import type { EventName, EventPayload } from '../../contract/index';
import { contrastiveTrain, modelArg } from './contrastive';
import { TRAIN_PRESET_IDS, presetById, presetFlags, presetProblem } from '../../contract/presets';
import { vlmModelTypes } from '../../models/registry';
import { blipTrain, isBlipFolder } from './blip';

const HP_FIELDS = Object.keys(hparamsSchema.shape);
const HP_FLAGS = [...HP_FIELDS.map((f) => cliFlag(f).slice(2)), 'steps'];

const usage = `lenslab train --model DIR --data PATH_OR_DATASET --out DIR [options]

Fine-tune a LLaVA model folder on a dataset (an imported dataset's id or name, or a path that is imported
first; a path imported before is reused). Hyperparameters, the data against the model and the memory estimate
are checked before anything starts. Ctrl-C pauses after the current step (with a checkpoint); running the same
command with the same --out (or just \`lenslab train --out DIR\`) resumes.

Options:
  --preset ID         a published recipe's hyperparameters as defaults (the flags given win): blip-vqa-lora
                      (LoRA r16 α32 dropout 0.05 on query,key, lr 4e-5, batch 8, 1 epoch) or blip2-caption-lora
                      (LoRA r16 α32 dropout 0.05 on q_proj,v_proj, lr 5e-5); refused, saying why, for a model
                      of another family or where this build does not load the preset's family
  --method M          lora (default), projector or lora+projector; contrastive for a CLIP / SigLIP folder:
                      image-text contrastive loss, writes a PEFT adapter to --out (foreground); its options:
                      --contrastive-method lora|projections --towers text|vision|both --target-modules q_proj,v_proj
                      --batch-size N (>= 2: the other pairs are the negatives; --grad-accum adds none)
                      With a BLIP VQA folder: LoRA in the foreground, a PEFT adapter in --out; defaults are the
                      blip-vqa-lora recipe (--target-modules query,key --rank 16 --alpha 32 --dropout 0.05
                      --lr 4e-5 --batch-size 8 --epochs 1); --limit N trains on the first N questions
  --rank N --alpha X  LoRA rank (8) and alpha (16)
  --lr X              peak learning rate (2e-4)
  --epochs N | --steps N   passes over the training split (3) or optimizer steps instead
  --batch-size N --grad-accum N --seed N   (4, 1, 42)
  --eval-every N      evaluate every N steps (0, the default: at the end only)
  --eval-at-start true  evaluate the base model before the first step too (step 0 on the curves)
  --save-every N      checkpoint every N steps (50; 0: at the end only)
  --quantize-base none|int8|int4   hold the frozen base as int8 / int4 blocks of 32 (QLoRA; less memory, the
                      adapter stays float32 and applies to the float base; default none)
  --packing true      pack each micro-batch's samples end to end instead of padding them (same loss and gradients)
  --gradient-checkpointing true   recompute each layer in the backward instead of keeping its activations (less
                      memory, about a third more compute a step; same loss and gradients)
  also: --dropout --target-modules q_proj,v_proj --weight-decay --warmup-steps|--warmup-ratio --schedule
        cosine|linear|constant --min-lr-ratio --max-seq-len --keep-last-k --clip-norm --betas b1,b2 --eps
  --eval-items N      items of the eval split generated at each evaluation (64)
  --train-split S --eval-split S   (train / val)
  --name NAME         run name
  --json, --data-dir DIR`;

/**
 * A dataset for --data: an id, a name, or a path (imported into a new dataset unless a dataset was already imported
 * from that path, which is then reused).
 */
export async function resolveDataArg(
  call: Call,
  arg: string,
  note: (line: string) => void,
): Promise<{ datasetId: number; name: string }> {
  if (/^\d+$/.test(arg) && Number(arg) >= 1 && Number.isSafeInteger(Number(arg))) {
    try {
      const d = await call('datasets.get', { id: Number(arg) });
      return { datasetId: d.id, name: d.name };
    } catch (e) {
      if (!(e instanceof ApiError && e.code === 'not_found')) throw e;
    }
  }
  const byName = arg.length <= 200 ? (await call('datasets.find', { name: arg })).dataset : null;
  if (byName) return { datasetId: byName.id, name: byName.name };
  const path = resolve(arg);
  if (!existsSync(path))
    throw new UsageError(`--data: "${arg}" is neither a dataset (id or name) nor an existing file or folder`);
  const prev = (await call('datasets.find', { importedFrom: path })).dataset;
  if (prev) {
    note(`using dataset ${prev.id} "${prev.name}", imported from ${path} before`);
    return { datasetId: prev.id, name: prev.name };
  }
  const base = statSync(path).isFile() ? `${basename(dirname(path))} ${basename(path, extname(path))}` : basename(path);
  let name = base;
  for (let i = 2; (await call('datasets.find', { name })).dataset; i++) name = `${base} (${i})`;
  const rep = await call('datasets.import', { path, dataset: name });
  note(
    `imported ${rep.imported} item(s) from ${path} into dataset ${rep.datasetId} "${rep.datasetName}"${rep.skippedCount ? ` (${rep.skippedCount} record(s) skipped)` : ''}`,
  );
  return { datasetId: rep.datasetId, name: rep.datasetName };
}

/** Progress output: redrawn in place on a terminal, else whole lines to the error stream. */
export function foregroundIO(ctx: CommandContext): ForegroundIO {
  const tty = !!process.stderr.isTTY && !ctx.json && ctx.env.LENSLAB_NO_TTY !== '1';
  let buf = '';
  return {
    isTTY: tty,
    write(text) {
      if (tty) {
        process.stderr.write(text);
        return;
      }
      buf += text;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        ctx.io.err(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    },
  };
}

export const trainCommand: CommandGroup = {
  name: 'train',
  summary: 'fine-tune a model with LoRA / the projector (progress bar; Ctrl-C pauses, rerun resumes)',
  usage,
  async run(argv, ctx) {
    // CLIP / SigLIP contrastive fine-tuning runs in the foreground and writes a PEFT adapter (cli/contrastive.ts)
    if (argv.some((a, i) => a === '--method=contrastive' || (a === '--method' && argv[i + 1] === 'contrastive')))
      return contrastiveTrain(argv, ctx);
    // BLIP VQA: LoRA in the foreground, a PEFT adapter in --out (cli/blip.ts)
    if (isBlipFolder(modelArg(argv))) return blipTrain(argv, ctx);
    const hpOptions = Object.fromEntries(HP_FLAGS.map((f) => [f, { type: 'string' as const }]));
    const { values, positionals } = parse(
      argv,
      {
        ...hpOptions,
        model: { type: 'string' },
        data: { type: 'string' },
        out: { type: 'string' },
        name: { type: 'string' },
        'eval-items': { type: 'string' },
        'train-split': { type: 'string' },
        'eval-split': { type: 'string' },
        preset: { type: 'string' },
      },
      false,
    );
    if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
    if (!values.out)
      throw new UsageError('--out DIR is required (the run folder; the same --out resumes a paused run)');
    const flags: Record<string, string> = {};
    const all = values as Record<string, string | boolean | undefined>;
    for (const f of HP_FLAGS) if (typeof all[f] === 'string') flags[f] = all[f] as string;
    const split = (v: unknown, name: string): 'train' | 'val' | 'test' | undefined => {
      if (v === undefined) return undefined;
      if (v !== 'train' && v !== 'val' && v !== 'test') throw new UsageError(`${name} must be train, val or test`);
      return v;
    };
    const evalItems = values['eval-items'] === undefined ? undefined : Number(values['eval-items']);
    if (evalItems !== undefined && (!Number.isInteger(evalItems) || evalItems < 1))
      throw new UsageError('--eval-items must be a positive integer');
    const outDir = resolve(values.out as string);
    const note = (line: string) => (ctx.json ? ctx.io.err(line) : ctx.io.out(line));

    // runs left 'running' by a dead job become 'interrupted' (resumable) when the backend opens
    const backend = createBackend({ dataDir: ctx.dataDir, host: 'cli' });
    const call: Call = (method, ...args) => backend.dispatcher.call(method, args[0]) as never;
    try {
      // another process works in this folder (a run starting or resuming, or its job): say which, whatever the run
      const holder = folderLockHolder(outDir);
      if (holder && holder.pid !== process.pid)
        throw new ApiError('conflict', new FolderBusyError(outDir, holder).message, 'out');
      const existing = (await call('runs.find', { outDir })).run;
      let runId: number;
      const t0 = Date.now();
      if (existing) {
        if (existing.status === 'running')
          throw new ApiError('conflict', `run ${existing.id} in ${outDir} is running in another process`, 'out');
        if (existing.status !== 'paused' && existing.status !== 'interrupted')
          throw new UsageError(
            `--out ${outDir} already holds run ${existing.id} (${existing.status}); choose another folder`,
          );
        if (Object.keys(flags).length || values.model || values.data)
          note(`resuming run ${existing.id} with the settings it started with (the options given are not used)`);
        else note(`resuming run ${existing.id} from its last checkpoint`);
        runId = existing.id;
        const id = runId;
        const { status } = await followRun(ctx, backend, call, async () => (await call('runs.resume', { id })).id);
        return await finish(ctx, call, runId, status, outDir, t0);
      }
      if (!values.model) throw new UsageError('--model DIR is required');
      if (!values.data) throw new UsageError('--data PATH_OR_DATASET is required');
      if (folderEntries(outDir).length > 0)
        throw new UsageError(
          `--out ${outDir} is not empty and holds no run of this data folder; choose an empty or new folder`,
        );
      if (typeof values.preset === 'string')
        Object.assign(flags, withPreset(values.preset, resolve(values.model as string), flags, note));
      let hparams;
      try {
        hparams = hparamsFromCli(flags);
      } catch (e) {
        if (e instanceof HparamsError) throw new UsageError(e.message);
        throw e;
      }
      const model = { path: resolve(values.model as string) };
      const data = await resolveDataArg(call, values.data as string, note);
      const dataRef = {
        datasetId: data.datasetId,
        trainSplit: split(values['train-split'], '--train-split'),
        evalSplit: split(values['eval-split'], '--eval-split'),
      };
      const est = await call('runs.estimate', { model, data: dataRef, hparams });
      const p = est.plan;
      note(
        `plan: ${p.totalSteps} steps (${p.stepsPerEpoch}/epoch, batch ${p.effectiveBatch}) on ${p.trainSamples} training samples, ${p.evalSamples} eval samples; longest sample ${p.longestSample} tokens`,
      );
      note(
        `memory: ${est.memory.summary} (weights ${formatBytes(est.memory.breakdown.weights)}, activations ${formatBytes(est.memory.breakdown.activations)})`,
      );
      if (est.refusal) {
        ctx.io.err(`error: ${est.refusal}`);
        return 1;
      }
      const followed = await followRun(ctx, backend, call, async () => {
        const started = await call('runs.start', {
          name: values.name as string | undefined,
          model,
          data: dataRef,
          hparams,
          evalMaxItems: evalItems,
          outDir,
        });
        note(`run ${started.run.id} started in ${outDir}`);
        return started.run.id;
      });
      runId = followed.runId;
      const status = followed.status;
      return await finish(ctx, call, runId, status, outDir, t0);
    } finally {
      backend.close();
    }
  },
};

const TERMINAL = new Set(['completed', 'failed', 'cancelled', 'paused', 'interrupted']);

/**
 * Start (or resume) a run with `begin` and follow it through the backend's run events to the end of its job,
 * printing what runInForeground prints for a job it runs; Ctrl-C pauses the run (runs.pause) after the current step.
 */
async function followRun(
  ctx: CommandContext,
  backend: Backend,
  call: Call,
  begin: () => Promise<number>,
): Promise<{ runId: number; status: RunStatus }> {
  const io = foregroundIO(ctx);
  let runId: number | null = null;
  let totalSteps = 0;
  let barShown = false;
  const clearBar = () => {
    if (barShown) io.write('\r\x1b[2K');
    barShown = false;
  };
  const line = (text: string | null) => {
    if (!text) return;
    clearBar();
    io.write(`${text}\n`);
  };
  let settle!: (status: RunStatus) => void;
  const ended = new Promise<RunStatus>((r) => (settle = r));
  const early: Array<[EventName, unknown]> = [];
  const handle = (event: EventName, payload: unknown) => {
    const n = NaN;
    switch (event) {
      case 'runs.started': {
        const e = payload as EventPayload<'runs.started'>;
        totalSteps = e.totalSteps;
        return line(
          formatEvent({
            runId: e.runId,
            type: 'started',
            step: e.resumedFrom ?? 0,
            totalSteps: e.totalSteps,
            resumedFrom: e.resumedFrom,
            pid: 0,
          }),
        );
      }
      case 'runs.progress': {
        const e = payload as EventPayload<'runs.progress'>;
        const total = e.totalSteps ?? totalSteps;
        const every = Math.max(1, Math.round(total / 20));
        for (const pt of io.isTTY ? e.points.slice(-1) : e.points) {
          const m = pt.metrics;
          const text = formatProgress({
            type: 'progress',
            step: pt.step,
            totalSteps: total,
            loss: m.loss ?? n,
            lr: m.lr ?? n,
            gradNorm: m.grad_norm ?? n,
            samplesPerSec: m.samples_per_sec ?? n,
            tokensPerSec: m.tokens_per_sec ?? n,
            etaSec: m.eta_sec ?? n,
          });
          if (io.isTTY) {
            io.write(`\r\x1b[2K${text}`);
            barShown = true;
          } else if (pt.step % every === 0 || pt.step === total) io.write(`${text}\n`);
        }
        return;
      }
      case 'runs.eval': {
        const e = payload as EventPayload<'runs.eval'>;
        return line(
          formatEvent({ runId: e.runId, type: 'eval', step: e.step, metrics: finiteOnly(e.metrics) } as RunnerEvent),
        );
      }
      case 'runs.checkpoint': {
        const e = payload as EventPayload<'runs.checkpoint'>;
        return line(
          formatEvent({
            runId: e.runId,
            type: 'checkpoint',
            step: e.step,
            path: e.path,
            bytes: e.bytes,
            pruned: e.pruned,
            metrics: {},
          }),
        );
      }
      case 'runs.log': {
        const e = payload as EventPayload<'runs.log'>;
        return line(formatEvent({ runId: e.runId, type: 'log', level: e.level, message: e.message }));
      }
      case 'runs.ended': {
        const e = payload as EventPayload<'runs.ended'>;
        if (e.kind === 'done')
          return line(
            formatEvent({
              runId: e.runId,
              type: 'done',
              step: e.step,
              metrics: finiteOnly(e.metrics ?? {}),
              outputDir: e.outputDir ?? '',
            }),
          );
        return line(formatEvent({ runId: e.runId, type: e.kind, step: e.step }));
      }
      case 'runs.status': {
        const e = payload as EventPayload<'runs.status'>;
        if (TERMINAL.has(e.status)) {
          clearBar();
          settle(e.status);
        }
        return;
      }
    }
  };
  const off = backend.events.subscribe((event, payload) => {
    if (!event.startsWith('runs.')) return;
    const id = (payload as { runId?: number }).runId;
    if (runId === null) early.push([event, payload]);
    else if (id === runId) handle(event, payload);
  });
  const onSigint = () => {
    const id = runId;
    if (id === null) return;
    void call('runs.get', { id })
      .then((r) => {
        if (r.status !== 'running') return;
        clearBar();
        io.write('pausing after the current step...\n');
        return call('runs.pause', { id });
      })
      .catch(() => undefined);
  };
  // the first Ctrl-C pauses; a second one kills the process as usual
  process.once('SIGINT', onSigint);
  try {
    const id = await begin();
    runId = id;
    for (const [event, payload] of early.splice(0))
      if ((payload as { runId?: number }).runId === id) handle(event, payload);
    return { runId: id, status: await ended };
  } finally {
    process.removeListener('SIGINT', onSigint);
    off();
  }
}

/** Metrics as the job sent them (nulls stood for non-finite values). */
function finiteOnly(m: Record<string, number | null>): Record<string, number> {
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, v ?? NaN]));
}

/** config.json's model_type of a model folder (null when it cannot be read: the backend's check then says why). */
function modelTypeOf(dir: string): string | null {
  try {
    const file = join(dir, 'config.json');
    if (statSync(file).size > 4 * 1024 * 1024) return null;
    const v = (JSON.parse(readFileSync(file, 'utf8')) as { model_type?: unknown }).model_type;
    return typeof v === 'string' ? v : null;
  } catch {
    return null;
  }
}

/** The flags of --preset ID under the user's own flags; a preset that cannot train this model is a usage error saying why. */
export function withPreset(
  id: string,
  modelDir: string,
  flags: Record<string, string>,
  note: (line: string) => void,
): Record<string, string> {
  const preset = presetById(id);
  if (!preset) throw new UsageError(`--preset: unknown preset "${id}" (one of ${TRAIN_PRESET_IDS.join(', ')})`);
  const problem = presetProblem(preset, {
    loadedModelTypes: vlmModelTypes(),
    modelType: modelTypeOf(modelDir),
    modelLabel: modelDir,
  });
  if (problem) throw new UsageError(problem);
  const base = presetFlags(preset);
  // the user's duration replaces the preset's
  if ('steps' in flags || 'max-steps' in flags) delete base.epochs;
  const given = Object.keys(flags);
  note(
    `preset ${preset.id}: ${preset.description}${given.length ? ` Given: ${given.map((k) => `--${k}`).join(' ')}.` : ''}`,
  );
  return { ...base, ...flags };
}

async function finish(
  ctx: CommandContext,
  call: Call,
  runId: number,
  status: string,
  outDir: string,
  t0: number,
): Promise<number> {
  const run = await call('runs.get', { id: runId });
  const ck = await call('runs.checkpoints', { id: runId });
  const last = ck.checkpoints.at(-1);
  if (ctx.json) {
    printJson(ctx, { run, finalDir: ck.finalDir, checkpoints: ck.checkpoints });
    return status === 'completed' ? 0 : status === 'paused' ? 0 : 1;
  }
  const took = formatDuration((Date.now() - t0) / 1000);
  if (status === 'completed') {
    ctx.io.out(`run ${runId} completed: ${run.step} steps in ${took}; adapter in ${ck.finalDir}`);
    if (last)
      ctx.io.out(
        `final metrics: ${Object.entries(last.metrics)
          .map(([k, v]) => `${k} ${v === null ? 'n/a' : Number(v.toPrecision(4))}`)
          .join(', ')}`,
      );
    return 0;
  }
  if (status === 'paused') {
    const dirFlag = ctx.dataDir === resolveDataDir(undefined, ctx.env) ? '' : ` --data-dir ${ctx.dataDir}`;
    ctx.io.out(
      `run ${runId} paused at step ${run.step}/${run.totalSteps}; resume with: lenslab train --out ${outDir}${dirFlag}`,
    );
    return 0;
  }
  ctx.io.err(`run ${runId} ${status}${run.error ? `: ${run.error}` : ''}`);
  return 1;
}
