// The VLM trainer: LoRA / projector fine-tuning of a LLaVA model on a run's data snapshot, as a Trainer the job
// driver runs (jobs/driver.ts: progress, eval/save cadence, pause/cancel, resume from the newest checkpoint).
//
//   init      load the model folder (models/program.ts loadVlm), render the training split with the model's chat
//             template (datasets/render.ts), buildTrainableVlm → the engine's StepExecutor (fused step, or grad +
//             apply steps with gradient accumulation; graphs cached on disk), restore a checkpoint when resuming
//   trainStep next planned step (BatchSchedule) → collate each micro-batch → one optimizer step at lrAt(step);
//             micro-batch gradients are weighted by their loss tokens, so the step's loss is the token mean. When
//             nothing in the image path trains up to a layer (featureCacheLayer), the step takes image features at
//             that layer, computed once per image by a separate vision program and cached (feature-cache.ts)
//   evaluate  eval loss through the score program with the current parameters, then greedy generation on the eval
//             split (models/generate.ts with the current adapter) scored by eval/evaluate.ts (exact match for QA,
//             BLEU-4 / CIDEr for captions); predictions go to the runner, which stores them for this step
//   saveState adapter/ (PEFT layout, exactly what exportFinal writes) + optimizer.safetensors (AdamW moments) +
//             state.json {step, optimizer t, data position, hparams hash, data hash}
//
// LoRA dropout masks are a hash of the graph input dropout_seed (models/layers.ts), fed per micro-batch as
// dropoutStepSeed(hp.seed, step, micro): a function of the run's seed and its position only, so they are reproducible
// from the seed and a resumed run draws exactly the masks of an uninterrupted one, whatever the dropout.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { StepExecutor, type Feeds } from '../engine/runtime/step-executor';
import { providerFromEnv, PROVIDER_ENV, type Provider, type SessionOptions } from '../engine/runtime/session';
import { chooseProvider, type ProviderChoice } from '../engine/runtime/provider-choice';
import { openProgram } from '../engine/runtime/device-session';
import { buildScore } from '../engine/programs/score';
import { stepNames } from '../engine/programs/train-step';
import { tensor } from '../engine/runtime/tensor';
import {
  adapterFromValues,
  buildFeatureGraph,
  buildTrainableVlm,
  layerSegment,
  DROPOUT_SEED_INPUT,
  featureCacheLayer,
  featureShape,
  IMAGE_FEATURES_INPUT,
  type FeatureLayer,
  type TrainableVlmOptions,
  dropoutStepSeed,
  loadAdapter,
  loadVlm,
  renderSetupOf,
  saveAdapter,
  type LoadedVlm,
  type LoraOptions,
  type TrainableVlm,
} from '../models/program';
import type { RenderSetup } from '../datasets/render';
import { createGenerator } from '../models/generate';
import { quantCacheKey } from '../models/quantize';
import { BatchSchedule, collate, pack, type Batch, type DataPosition, type RenderedSample } from './batching';
import type { CheckpointFiles, LoadedCheckpoint, StateTensor } from './checkpoints';
import { hparamsHash, lrAt, parseHparams, planRun, type Hparams } from './hparams';
import { evalItems, itemsOfSplit, readSnapshot, subsample, type DataItem, type GenItem } from './data';
import {
  checkVlmConfig,
  graphCacheDir,
  parseVlmConfig,
  renderSamples,
  renderSetupFor,
  type VlmConfig,
} from './vlm-config';
import { runEvaluation } from '../eval/evaluate';
import type { EvalTask } from '../eval/metrics';
import type { EvalResult, LoopPlan, StepResult, Trainer, TrainerContext, TrainerModule } from '../jobs/trainer';
import type { EvalPrediction } from '../jobs/protocol';
import { PhaseTimer, type PhaseTotals } from '../util/phase-timer';
import { FeatureCache, featureCacheDir, type ImageFeatures } from './feature-cache';
import { stableStringify } from '../engine/runtime/cache';
import { weightLayout } from '../models/weights/names';
import type { RunSession } from '../engine/runtime/device-session';

/** Sizes and mtimes of a model folder's files: a changed model never reuses a cached graph. */
function folderIdentity(dir: string): unknown {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json') || f.endsWith('.safetensors'))
    .sort()
    .map((f) => {
      const s = statSync(join(dir, f));
      return [f, s.size, Math.floor(s.mtimeMs)];
    });
}

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

interface SavedState {
  kind: 'lenslab-vlm';
  step: number;
  /** Optimizer steps taken (AdamW bias correction). */
  t: number;
  hparamsHash: string;
  dataHash: string;
  position: DataPosition;
}

/**
 * Training sessions let idle ORT threads sleep instead of spin-waiting (session.ts `spin`): a run shares the cores
 * with the app, its UI and whatever else the user does, and bench:train's demo step ran 1.5-4x faster that way on a
 * loaded machine. LENSLAB_ORT_SPIN=1 brings spinning back.
 */
const TRAIN_SPIN = false;

export function loraOptions(hp: Hparams): LoraOptions {
  return { rank: hp.rank, alpha: hp.alpha, dropout: hp.dropout, targetModules: [...hp.targetModules] };
}

/** int32 ids -> int64 without a BigInt per element: little-endian low word + sign-extended high word. */
function toI64(a: Int32Array): BigInt64Array {
  const out = new BigInt64Array(a.length);
  const w = new Int32Array(out.buffer);
  for (let i = 0; i < a.length; i++) {
    w[2 * i] = a[i];
    w[2 * i + 1] = a[i] < 0 ? -1 : 0;
  }
  return out;
}

/** `f`'s result, or its failure with the image's path in front. */
async function aboutImage<T>(path: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw new Error(`image ${path}: ${(e as Error).message}`);
  }
}

/** An image's pixel values through the model's processor; a failure names the image. */
function imagePixels(model: LoadedVlm, path: string): Promise<Float32Array> {
  return aboutImage(path, async () => (await model.images.process(path)).data);
}

/** A small LRU of preprocessed images (pixel values), bounded in bytes. */
class PixelCache {
  private map = new Map<string, Float32Array>();
  private bytes = 0;
  constructor(
    private readonly model: LoadedVlm,
    private readonly budget = 256 * 1024 * 1024,
  ) {}
  /** The cached pixels, without an await (a step's hits cost no trips through the event loop). */
  peek(path: string): Float32Array | undefined {
    const hit = this.map.get(path);
    if (hit) {
      this.map.delete(path);
      this.map.set(path, hit);
    }
    return hit;
  }
  async get(path: string): Promise<Float32Array> {
    const hit = this.peek(path);
    if (hit) return hit;
    const px = await imagePixels(this.model, path);
    this.map.set(path, px);
    this.bytes += px.byteLength;
    for (const [k, v] of this.map) {
      if (this.bytes <= this.budget || this.map.size <= 1) break;
      this.map.delete(k);
      this.bytes -= v.byteLength;
    }
    return px;
  }
}

class VlmTrainer implements Trainer {
  plan!: LoopPlan;
  private readonly hp: Hparams;
  private warmup = 0;
  private model!: LoadedVlm;
  private tvlm!: TrainableVlm;
  private executor!: StepExecutor;
  private schedule!: BatchSchedule;
  private samples: (RenderedSample & { item: number })[] = [];
  private trainItems: DataItem[] = [];
  private evalSamples: (RenderedSample & { item: number })[] = [];
  private evalData: DataItem[] = [];
  private genItems: GenItem[] = [];
  private task: EvalTask = 'vqa';
  private pixels!: PixelCache;
  private padId = 0;
  private dataHash = '';
  private _step = 0;
  private cacheKey: unknown = null;
  /** Wall time of the training steps' phases outside the executor: 'batch', 'images', 'vision', 'feeds'. */
  private readonly timer = new PhaseTimer();
  /** Where image features are cached (models/program.ts featureCacheLayer), or null: pixels go into the step. */
  private featureLayer: FeatureLayer | null = null;
  private features: FeatureCache | null = null;
  /** The trainable graph's options; the feature program holds the frozen weights the same way (quantizeBase). */
  private vlmOptions: TrainableVlmOptions = {};
  private vision: RunSession | null = null;
  /** Runs of the vision program and the images they computed (features cached). */
  readonly visionCalls = { runs: 0, images: 0 };
  private visionMs = 0;
  private loggedLookups = 0;
  /** Images of the run whose features were not looked up yet; the vision program is released when none is left. */
  private readonly uncached = new Set<string>();
  private visionReleased = false;

  constructor(
    private readonly cfg: VlmConfig,
    private readonly ctx: TrainerContext,
  ) {
    this.hp = parseHparams(cfg.hparams);
  }

  get step(): number {
    return this._step;
  }

  private newSchedule(position?: DataPosition): BatchSchedule {
    const h = this.hp;
    return new BatchSchedule(
      {
        numSamples: this.samples.length,
        batchSize: h.batchSize,
        gradAccum: h.gradAccum,
        seed: h.seed,
        epochs: h.maxSteps === undefined ? h.epochs : undefined,
        maxSteps: h.maxSteps,
      },
      position,
    );
  }

  async init(resume: LoadedCheckpoint | null): Promise<void> {
    const hp = this.hp;
    const t0 = performance.now();
    this.model = loadVlm(this.cfg.model);
    const snap = readSnapshot(this.cfg.data.file);
    this.dataHash = sha256(readFileSync(this.cfg.data.file, 'utf8'));
    this.trainItems = itemsOfSplit(snap, this.cfg.data.trainSplit);
    this.evalData = itemsOfSplit(snap, this.cfg.data.evalSplit);
    const setup = await this.itemSetups([...this.trainItems, ...this.evalData]);
    this.samples = renderSamples(this.trainItems, setup).samples;
    this.evalSamples = renderSamples(this.evalData, setup).samples;
    const ev = evalItems(this.evalData, {
      task: this.cfg.eval.task,
      captionPrompt: renderSetupFor(this.model).captionPrompt,
    });
    this.task = ev.task;
    this.genItems = subsample(ev.items, this.cfg.eval.maxItems);
    const runPlan = planRun(hp, { trainSamples: this.samples.length, evalSamples: this.evalSamples.length });
    this.warmup = runPlan.warmupSteps;
    this.plan = {
      totalSteps: runPlan.totalSteps,
      evalEvery: hp.evalEvery,
      evalAtStart: hp.evalAtStart && this.evalSamples.length > 0,
      saveEvery: hp.saveEvery,
      keepLastK: hp.keepLastK,
    };
    this.schedule = this.newSchedule();
    const tk = this.model.tokenizer;
    this.padId = tk.padTokenId ?? tk.eosTokenId ?? 0;
    this.pixels = new PixelCache(this.model);

    const lora = hp.method === 'projector' ? null : loraOptions(hp);
    this.featureLayer = this.cfg.featureCache ? featureCacheLayer(this.model.config, hp.method, lora) : null;
    this.vlmOptions = {
      maxSeqLen: hp.maxSeqLen,
      batchSize: hp.batchSize,
      imageInput: this.featureLayer ?? 'pixels',
      quantizeBase: hp.quantizeBase,
      packed: hp.packing,
    };
    this.tvlm = buildTrainableVlm(this.model, hp.method, lora, this.vlmOptions);
    const cacheKey = {
      what: 'lenslab-train',
      model: folderIdentity(this.cfg.model),
      method: hp.method,
      lora,
      ...(this.featureLayer ? { imageInput: this.featureLayer } : {}),
      ...(hp.packing ? { packed: true } : {}),
      ...(hp.gradientCheckpointing ? { recompute: 'layers' } : {}),
      // a quantized base names its scheme and version: graphs of another scheme or version are never read
      ...quantCacheKey(hp.quantizeBase),
    };
    if (this.featureLayer) {
      this.features = this.openFeatureCache(this.featureLayer);
      for (const it of [...this.trainItems, ...this.evalData]) if (it.image) this.uncached.add(it.image);
    }
    this.cacheKey = cacheKey;
    this.device = await this.pickDevice();
    this.executor = await this.newExecutor(this.device.provider);
    if (resume) await this.restore(resume);
    const where =
      this.executor.provider === this.device.provider
        ? this.device.reason
        : `${this.device.provider} unavailable, fell back`;
    this.ctx.log(
      `device: ${this.executor.provider} (${where}${this.executor.resident || this.executor.provider === 'webgpu' ? '; parameters and optimizer state stay in GPU memory between steps' : ''})`,
    );
    this.ctx.log(
      `${hp.method} on ${this.samples.length} training samples (${this.trainItems.length} items), ${this.tvlm.params.length} trainable tensors; ` +
        `ready in ${((performance.now() - t0) / 1000).toFixed(1)} s${resume ? `, resumed at step ${this._step}` : ''}`,
    );
    if (hp.quantizeBase !== 'none') {
      const kept = this.tvlm.quantizeFallbacks();
      this.ctx.log(
        `frozen base held as ${hp.quantizeBase} blocks of 32 (LoRA${hp.method === 'lora' ? '' : ' and projector'} in float32)`,
      );
      if (kept.length)
        this.ctx.log(
          `note: ${kept.length} frozen matri${kept.length === 1 ? 'x stays' : 'ces stay'} float32 under ${hp.quantizeBase}: ` +
            kept
              .slice(0, 6)
              .map((k) => `${k.name} [${k.shape.join(', ')}] (${k.reason})`)
              .join('; ') +
            (kept.length > 6 ? `; and ${kept.length - 6} more` : ''),
        );
    }
    // e.g. no chat template in the folder: the run uses a built-in one, which the user must be told
    for (const w of renderSetupFor(this.model).warnings ?? []) this.ctx.log(`warning: ${w}`);
  }

  private async restore(ck: LoadedCheckpoint): Promise<void> {
    const st = ck.json<SavedState>('state.json');
    if (st.kind !== 'lenslab-vlm') throw new Error(`checkpoint ${ck.dir} was not written by the VLM trainer`);
    if (st.hparamsHash !== hparamsHash(this.hp))
      throw new Error(`checkpoint ${ck.dir} was made with other hyperparameters; it cannot be resumed with these`);
    if (st.dataHash !== this.dataHash)
      throw new Error(`checkpoint ${ck.dir} was made with other data; it cannot be resumed with this run's data`);
    const { values } = loadAdapter(join(ck.dir, 'adapter'), this.model);
    const opt = ck.tensors('optimizer.safetensors');
    const m: Record<string, Float32Array> = {};
    const v: Record<string, Float32Array> = {};
    const params: Record<string, Float32Array> = {};
    for (const p of this.tvlm.params) {
      const val = values[p.name];
      const mm = opt.get(`exp_avg.${p.name}`);
      const vv = opt.get(`exp_avg_sq.${p.name}`);
      if (!val || !mm || !vv)
        throw new Error(`checkpoint ${ck.dir}: no saved ${!val ? 'value' : 'optimizer state'} for ${p.name}`);
      params[p.name] = val;
      m[p.name] = Float32Array.from(mm.data);
      v[p.name] = Float32Array.from(vv.data);
    }
    this.executor.loadState({ t: st.t, params, m, v });
    this.schedule = this.newSchedule(st.position);
    this._step = st.step;
  }

  /**
   * Each item's render setup: its image's tile grid decides the tokens one <image> becomes (families whose
   * processor splits images read the image's size; one-frame families share one setup).
   */
  private async itemSetups(items: readonly DataItem[]): Promise<(item: DataItem) => RenderSetup> {
    const images = this.model.images;
    const max = images.maxGrid();
    const base = renderSetupFor(this.model);
    if (max.rows === 0 && max.cols === 0) return () => base;
    const byGrid = new Map<string, RenderSetup>();
    const byPath = new Map<string, RenderSetup>();
    for (const it of items) {
      if (!it.image || byPath.has(it.image)) continue;
      const image = it.image;
      const grid = await aboutImage(image, () => images.gridOf(image));
      const key = `${grid.rows}x${grid.cols}`;
      if (!byGrid.has(key)) byGrid.set(key, renderSetupOf(this.model, grid));
      byPath.set(it.image, byGrid.get(key)!);
    }
    return (it) => (it.image ? byPath.get(it.image)! : base);
  }

  /**
   * The feature cache of this run: keyed by the format version, config.json, the processor's configs, the layer and
   * the bytes of every tensor the features read (the tower, and the connector for 'projected').
   */
  private openFeatureCache(layer: FeatureLayer): FeatureCache {
    const t0 = performance.now();
    const m = this.model;
    const lay = weightLayout(m.config);
    const prefixes = [lay.vision, layer === 'projected' ? lay.projector : null].filter((p): p is string => !!p);
    const h = createHash('sha256');
    for (const name of m.weights
      .names()
      .filter((n) => prefixes.some((p) => n.startsWith(p)))
      .sort()) {
      const d = m.weights.get(name);
      h.update(name).update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    }
    const scope = stableStringify({
      layer,
      quantizeBase: this.vlmOptions.quantizeBase ?? 'none',
      ...quantCacheKey(this.vlmOptions.quantizeBase ?? 'none'),
      nbits: this.vlmOptions.nbits ?? null,
      config: m.json.config,
      preprocessor: m.json.preprocessorConfig ?? null,
      processor: m.json.processorConfig ?? null,
      weights: h.digest('hex'),
    });
    const dir = featureCacheDir();
    this.ctx.log(
      `image features: computed once per image at the ${layer === 'projected' ? "connector's output" : "tower's output (the connector trains)"} and cached in ${dir} (keyed in ${((performance.now() - t0) / 1000).toFixed(1)} s)`,
    );
    return new FeatureCache({ dir, scope, warn: (msg) => this.ctx.log(`warning: ${msg}`, 'warn') });
  }

  /** Features of these images at the cache's layer: cached ones read, the others computed in one vision run. */
  private async imageFeatures(paths: string[]): Promise<ImageFeatures[]> {
    const cache = this.features!;
    const keys = paths.map((p) => {
      try {
        return cache.keyOf(p);
      } catch (e) {
        throw new Error(`image ${p}: ${(e as Error).message}`);
      }
    });
    const out: (ImageFeatures | null)[] = keys.map((k) => cache.lookup(k));
    const missing = [...new Set(keys.filter((_, i) => !out[i]))];
    if (missing.length) {
      // pixels of a cached image are not needed again: processed here (concurrently), not kept in the pixel cache
      const pxs = await Promise.all(missing.map((k) => imagePixels(this.model, paths[keys.indexOf(k)])));
      const computed = await this.runVision(pxs);
      missing.forEach((k, i) => cache.store(k, computed[i]));
      for (let i = 0; i < out.length; i++) out[i] ??= computed[missing.indexOf(keys[i])];
    }
    for (const p of paths) this.uncached.delete(p);
    if (this.uncached.size === 0 && this.vision && !this.visionReleased) {
      // every image of the run has its features: the tower's weights need not stay in memory (a miss after an
      // eviction opens the program again, from the graph cache)
      this.visionReleased = true;
      await this.vision.dispose();
      this.vision = null;
      this.ctx.log('image features: every image of the run is cached; the vision program is released');
    }
    return out as ImageFeatures[];
  }

  /** The vision program (pixels -> features at the cache's layer) over these images' frames, split per image. */
  private async runVision(pxs: Float32Array[]): Promise<ImageFeatures[]> {
    const v = this.model.config.vision;
    const size = v.numChannels * v.imageSize * v.imageSize;
    const layer = this.featureLayer!;
    const quant = { quantizeBase: this.vlmOptions.quantizeBase, nbits: this.vlmOptions.nbits };
    this.vision ??= await openProgram(() => buildFeatureGraph(this.model, layer, quant), {
      cacheDir: graphCacheDir(),
      key: {
        kind: 'features',
        layer,
        model: folderIdentity(this.cfg.model),
        ...quant,
        ...quantCacheKey(quant.quantizeBase ?? 'none'),
      },
      session: this.sessionOptions(),
    });
    const frames = pxs.map((p) => p.length / size);
    const all = new Float32Array(frames.reduce((a, f) => a + f, 0) * size);
    let at = 0;
    for (const p of pxs) {
      all.set(p, at);
      at += p.length;
    }
    const tv = performance.now();
    const r = await this.vision.run({
      pixel_values: tensor('float32', [all.length / size, v.numChannels, v.imageSize, v.imageSize], all),
    });
    this.visionMs += performance.now() - tv;
    this.visionCalls.runs++;
    this.visionCalls.images += pxs.length;
    const f = r[IMAGE_FEATURES_INPUT];
    const [, tokens, dim] = f.dims as number[];
    const data = f.data as Float32Array;
    let off = 0;
    return frames.map((n) => {
      const d = data.slice(off, off + n * tokens * dim);
      off += n * tokens * dim;
      return { dims: [n, tokens, dim], data: d };
    });
  }

  /** Feeds of one collated batch: ids, mask, labels as int64, the batch's images (frames or cached features) in row order. */
  private async feeds(b: Batch, items: DataItem[], sampleList: (RenderedSample & { item: number })[]): Promise<Feeds> {
    const cfg = this.model.config.vision;
    const size = cfg.numChannels * cfg.imageSize * cfg.imageSize;
    const images: Float32Array[] = [];
    const paths: string[] = [];
    const ti = performance.now();
    // samples in row order (several a row when packed); each brings its image
    for (const i of b.sampleIndices) {
      if (sampleList[i].imageCount === 0) continue;
      const item = items[sampleList[i].item];
      if (!item.image) throw new Error(`item ${item.key}: has <image> but no image file`);
      paths.push(item.image);
    }
    if (this.featureLayer) return this.featureFeeds(b, paths, ti);
    // the batch's new images are processed concurrently: their file reads (and sharp's decodes, for what is not a
    // plain PNG) run in libuv's pool and overlap
    const got = new Map<string, Float32Array>();
    const misses: string[] = [];
    for (const p of paths) {
      const hit = got.get(p) ?? this.pixels.peek(p);
      if (hit) got.set(p, hit);
      else if (!misses.includes(p)) misses.push(p);
    }
    const decoded = await Promise.all(misses.map((p) => this.pixels.get(p)));
    misses.forEach((p, i) => got.set(p, decoded[i]));
    for (const p of paths) images.push(got.get(p)!);
    const tf = performance.now();
    this.timer.add('images', tf - ti);
    // every image is one or more frames of `size` values (tiles + global image for families that split images)
    const frames = images.reduce((a, im) => a + im.length / size, 0);
    const n = Math.max(1, frames); // the graph needs N >= 1; an unused zero image when no row has one
    const px = new Float32Array(n * size);
    let at = 0;
    for (const im of images) {
      if (im.length === 0 || im.length % size !== 0)
        throw new Error(`image has ${im.length} values, the model takes frames of ${size}`);
      px.set(im, at);
      at += im.length;
    }
    const dims = [b.batchSize, b.seqLen];
    const feeds = {
      input_ids: tensor('int64', dims, toI64(b.inputIds)),
      attention_mask: tensor('int64', dims, toI64(b.attentionMask)),
      labels: tensor('int64', dims, toI64(b.labels)),
      pixel_values: tensor('float32', [n, cfg.numChannels, cfg.imageSize, cfg.imageSize], px),
    };
    this.timer.add('feeds', performance.now() - tf);
    return feeds;
  }

  private async featureFeeds(b: Batch, paths: string[], ti: number): Promise<Feeds> {
    const v0 = this.visionMs;
    const feats = await this.imageFeatures(paths);
    const tf = performance.now();
    // 'images': decoding, hashing, cache reads and writes; 'vision': the vision program's runs
    this.timer.add('vision', this.visionMs - v0);
    this.timer.add('images', tf - ti - (this.visionMs - v0));
    const { tokens, dim } = featureShape(this.model.config, this.featureLayer!);
    const frames = Math.max(
      1,
      feats.reduce((a, f) => a + f.dims[0], 0),
    ); // N >= 1: an unused zero frame when no row has an image
    const x = new Float32Array(frames * tokens * dim);
    let at = 0;
    for (const f of feats) {
      if (f.dims[1] !== tokens || f.dims[2] !== dim)
        throw new Error(`image features of shape [${f.dims.join(', ')}], the model takes [frames, ${tokens}, ${dim}]`);
      x.set(f.data, at);
      at += f.data.length;
    }
    const dims = [b.batchSize, b.seqLen];
    const feeds = {
      input_ids: tensor('int64', dims, toI64(b.inputIds)),
      attention_mask: tensor('int64', dims, toI64(b.attentionMask)),
      labels: tensor('int64', dims, toI64(b.labels)),
      [IMAGE_FEATURES_INPUT]: tensor('float32', [frames, tokens, dim], x),
    };
    this.timer.add('feeds', performance.now() - tf);
    return feeds;
  }

  /** Summed wall time of the training steps so far by phase (the trainer's and the step executor's). */
  phases(): PhaseTotals {
    const all = new PhaseTimer();
    all.merge(this.timer.totals());
    if (this.executor) all.merge(this.executor.phases.totals());
    return all.totals();
  }

  async trainStep(): Promise<StepResult> {
    const t0 = performance.now();
    const planned = this.schedule.nextStep();
    const batches = planned.microBatches.map((idx) =>
      this.hp.packing
        ? pack(this.samples, idx, { padId: this.padId })
        : collate(this.samples, idx, { padId: this.padId }),
    );
    this.timer.add('batch', performance.now() - t0);
    const feeds: Feeds[] = [];
    for (const b of batches) feeds.push(await this.feeds(b, this.trainItems, this.samples));
    if (this.executor.dataInputs.includes(DROPOUT_SEED_INPUT))
      feeds.forEach(
        (f, i) =>
          (f[DROPOUT_SEED_INPUT] = tensor('int64', [], [BigInt(dropoutStepSeed(this.hp.seed, planned.step, i))])),
      );
    const lossTokens = batches.map((b) => b.lossTokens);
    const total = lossTokens.reduce((a, c) => a + c, 0);
    const scales =
      this.executor.accumulation === 1
        ? undefined
        : lossTokens.map((c) => (total > 0 ? c / total : 1 / batches.length));
    const lr = lrAt(planned.step, this.hp, this.plan.totalSteps, this.warmup);
    const r = await this.executor.step(feeds, lr, scales);
    this._step = planned.step;
    if (this.cfg.debug.stepDelayMs > 0) await new Promise((res) => setTimeout(res, this.cfg.debug.stepDelayMs));
    return {
      step: planned.step,
      epoch: planned.epoch,
      loss: r.loss,
      lr,
      gradNorm: r.gradNorm,
      samples: batches.reduce((a, b) => a + b.sampleIndices.length, 0),
      tokens: batches.reduce((a, b) => a + b.tokens, 0),
    };
  }

  /** Where the run's programs run and why (pickDevice). */
  device: ProviderChoice = { provider: 'cpu', reason: 'not chosen yet', measured: {}, cached: false };

  private newExecutor(provider: Provider): Promise<StepExecutor> {
    const hp = this.hp;
    return StepExecutor.create(
      {
        params: this.tvlm.params,
        forward: this.tvlm.forward,
        ...(hp.gradientCheckpointing ? { recompute: layerSegment } : {}),
        adamw: { beta1: hp.betas[0], beta2: hp.betas[1], eps: hp.eps, weightDecay: hp.weightDecay },
        clipNorm: hp.clipNorm > 0 ? hp.clipNorm : null,
        accumulation: hp.gradAccum,
        cacheDir: graphCacheDir(),
        cacheKey: this.cacheKey,
        // no memory pattern: ORT's pattern for a training step reserved about 1 GiB more than the arena needs on the
        // 0.45B LLaVA (peak 2.7 vs 1.7 GiB with an int4 base, 5.2 vs 4.3 GiB float32) and did not make it faster
        session: { provider, spin: TRAIN_SPIN, memPattern: false },
      },
      this.tvlm.initialValues(hp.seed),
    );
  }

  /**
   * The run's provider: config.provider, else LENSLAB_PROVIDER, else 'auto', which times one step of this very
   * program on the CPU and on each usable GPU provider (first batch, after a warm-up step) and keeps the fastest
   * (engine/runtime/provider-choice.ts; the verdict is cached per machine and model next to the graph cache).
   */
  private async pickDevice(): Promise<ProviderChoice> {
    const asked = this.cfg.provider ?? providerFromEnv() ?? 'auto';
    if (asked !== 'auto')
      return {
        provider: asked,
        reason: this.cfg.provider ? 'chosen for this run' : `${PROVIDER_ENV}=${asked}`,
        measured: {},
        cached: false,
      };
    const n = Math.min(this.hp.batchSize, this.samples.length);
    const probeBatches = Array.from({ length: this.hp.gradAccum }, () =>
      collate(
        this.samples,
        Array.from({ length: n }, (_, i) => i),
        { padId: this.padId },
      ),
    );
    const choice = await chooseProvider({
      key: {
        ...(this.cacheKey as object),
        batchSize: this.hp.batchSize,
        gradAccum: this.hp.gradAccum,
        maxSeqLen: this.hp.maxSeqLen,
      },
      cacheDir: graphCacheDir(),
      probe: async (p) => {
        const ex = await this.newExecutor(p);
        try {
          const feeds: Feeds[] = [];
          for (const b of probeBatches) feeds.push(await this.feeds(b, this.trainItems, this.samples));
          if (ex.dataInputs.includes(DROPOUT_SEED_INPUT))
            feeds.forEach((f) => (f[DROPOUT_SEED_INPUT] = tensor('int64', [], [0n])));
          const one = () => ex.step(ex.accumulation === 1 ? feeds[0] : feeds, 0);
          await one(); // warm-up: kernel / shader compilation
          let best = Infinity;
          for (let i = 0; i < 2; i++) {
            const t = performance.now();
            await one();
            best = Math.min(best, performance.now() - t);
          }
          return best;
        } finally {
          await ex.dispose();
        }
      },
    });
    if (!choice.cached) this.ctx.log(`device probe: ${choice.reason}`);
    return choice;
  }

  /** Session options of the run's other programs (evaluation scoring, generation): the run's device. */
  private sessionOptions(): SessionOptions {
    return {
      provider:
        this.executor?.provider === 'webgpu' || this.executor?.provider === 'cuda' ? this.executor.provider : 'cpu',
      spin: TRAIN_SPIN,
    };
  }

  /** Current trained values by parameter name (call after `await this.executor.sync()`). */
  values(): Record<string, Float32Array> {
    const s = this.executor.state();
    return Object.fromEntries(Object.entries(s.params).map(([k, v]) => [k, Float32Array.from(v)]));
  }

  /**
   * Mean token loss over the eval split with the current parameters (the score program: no dropout). Its session
   * holds another copy of the frozen weights, so it is loaded for the evaluation only (from the graph cache).
   */
  async evalLoss(): Promise<number> {
    const scorer = await openProgram(() => buildScore({ params: this.tvlm.params, forward: this.tvlm.score }).graph, {
      cacheDir: graphCacheDir(),
      key: { kind: 'score', key: this.cacheKey, params: this.tvlm.params },
      session: this.sessionOptions(),
    });
    try {
      const params: Feeds = {};
      for (const [name, t] of Object.entries(this.executor.paramTensors())) params[stepNames.param(name)] = t;
      let sum = 0;
      let count = 0;
      const bs = this.hp.batchSize;
      for (let i = 0; i < this.evalSamples.length; i += bs) {
        const idx = Array.from({ length: Math.min(bs, this.evalSamples.length - i) }, (_, k) => i + k);
        const b = collate(this.evalSamples, idx, { padId: this.padId });
        const r = await scorer.run({ ...(await this.feeds(b, this.evalData, this.evalSamples)), ...params });
        const s = r.token_loss_sum.data as Float32Array;
        const c = r.token_count.data as Float32Array;
        for (let k = 0; k < s.length; k++) {
          sum += s[k];
          count += c[k];
        }
      }
      return count > 0 ? sum / count : Number.NaN;
    } finally {
      await scorer.dispose();
    }
  }

  async evaluate(): Promise<EvalResult> {
    await this.executor.sync();
    const metrics: Record<string, number> = {};
    if (this.evalSamples.length) metrics.loss = await this.evalLoss();
    const fs = this.features?.stats;
    if (fs && fs.misses + fs.memoryHits + fs.diskHits > this.loggedLookups) {
      this.loggedLookups = fs.misses + fs.memoryHits + fs.diskHits;
      this.ctx.log(
        `image features so far: ${fs.misses} computed, ${fs.memoryHits + fs.diskHits} reused (${fs.diskHits} from disk)${fs.rebuilt ? `, ${fs.rebuilt} unreadable cache files rebuilt` : ''}`,
      );
    }
    if (this.genItems.length === 0) return { metrics };
    const hp = this.hp;
    const adapter = adapterFromValues(
      this.model,
      hp.method,
      hp.method === 'projector' ? null : loraOptions(hp),
      this.values(),
    );
    // the generation graphs take the adapter as inputs: every evaluation of the run reuses the same cached graphs
    // generation reads the base as the run trains it (int4 / int8 inference graphs of the same blocks' scheme)
    const gen = await createGenerator(this.model, adapter, {
      cacheDir: graphCacheDir(),
      session: this.sessionOptions(),
      quantize: hp.quantizeBase,
    });
    try {
      const r = await runEvaluation({
        task: this.task,
        items: this.genItems,
        generate: async (item) => {
          const g = item as GenItem;
          const out = await gen.generate(
            { image: g.image, messages: g.messages },
            { maxNewTokens: this.cfg.eval.maxNewTokens },
          );
          return out.text.trim();
        },
      });
      Object.assign(metrics, r.metrics);
      const predictions: EvalPrediction[] = r.predictions.map((p) => ({
        key: p.item.key,
        itemId: p.item.itemId ?? null,
        prompt: p.item.prompt,
        output: p.output,
        references: p.item.references,
        scores: p.scores,
      }));
      return { metrics, task: this.task, split: this.cfg.data.evalSplit, predictions };
    } finally {
      await gen.dispose();
    }
  }

  private adapterFiles(): Record<string, Buffer> {
    const dir = mkdtempSync(join(tmpdir(), 'lenslab-adapter-'));
    try {
      const hp = this.hp;
      saveAdapter(
        dir,
        this.model,
        hp.method,
        hp.method === 'projector' ? null : loraOptions(hp),
        this.values(),
        this.cfg.model,
      );
      return Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f))]));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  async saveState(): Promise<CheckpointFiles> {
    await this.executor.sync();
    const s = this.executor.state();
    const opt: Record<string, StateTensor> = {};
    for (const p of this.tvlm.params) {
      opt[`exp_avg.${p.name}`] = { shape: [...p.shape], data: Float32Array.from(s.m[p.name]) };
      opt[`exp_avg_sq.${p.name}`] = { shape: [...p.shape], data: Float32Array.from(s.v[p.name]) };
    }
    const state: SavedState = {
      kind: 'lenslab-vlm',
      step: this._step,
      t: s.t,
      hparamsHash: hparamsHash(this.hp),
      dataHash: this.dataHash,
      position: this.schedule.position(),
    };
    const files: CheckpointFiles = {
      'optimizer.safetensors': { kind: 'safetensors', tensors: opt, metadata: { format: 'pt', t: String(s.t) } },
      'state.json': { kind: 'json', value: state },
    };
    for (const [f, data] of Object.entries(this.adapterFiles())) files[`adapter/${f}`] = { kind: 'bytes', data };
    return files;
  }

  async exportFinal(dir: string): Promise<void> {
    await this.executor.sync();
    const hp = this.hp;
    saveAdapter(
      dir,
      this.model,
      hp.method,
      hp.method === 'projector' ? null : loraOptions(hp),
      this.values(),
      this.cfg.model,
    );
  }

  /** The feature cache's counters (hits, misses, rebuilt files), or null when features are not cached. */
  featureStats(): (FeatureCache['stats'] & { layer: FeatureLayer }) | null {
    return this.features && this.featureLayer ? { ...this.features.stats, layer: this.featureLayer } : null;
  }

  async dispose(): Promise<void> {
    await this.vision?.dispose();
    this.vision = null;
    await this.executor?.dispose();
    this.model?.close();
  }
}

export const vlmTrainerModule: TrainerModule = {
  validateConfig(config) {
    const cfg = parseVlmConfig(config);
    if (!existsSync(cfg.data.file)) throw new Error(`VLM trainer config: data.file ${cfg.data.file} does not exist`);
    const check = checkVlmConfig(cfg);
    return { totalSteps: check.plan.totalSteps, memory: check.memory };
  },
  createTrainer(config, ctx) {
    return new VlmTrainer(parseVlmConfig(config), ctx);
  },
};
