// Generation and scoring with a vision-language model of any family (or a text-only model), optionally with a PEFT adapter.
//
// Graphs, built from llava.ts's pieces and compiled once into the engine's graph cache (runtime/cache.ts
// compileCached, keyed by the model files' identity, the adapter's structure and the graph options):
//   vision   pixel_values [1,3,H,W] → image_features [1, numImageTokens, hidden] (vision tower + projector)
//   decoder  input_ids [1,S], attention_mask [1,P+S], image_features, past_key_values.<i>.key/value [1,n_kv,P,hd]
//            → logits of the last position + present.<i>.key/value [1,n_kv,P+S,hd]
//            Prefill is this graph with P = 0 (empty past) and the prompt's S tokens; each decode step is S = 1.
//            One graph for both keeps one copy of the decoder weights in memory (a separate prefill graph would
//            hold a second copy: +2 GB RSS for a 0.5B model); the tied lm_head is a Gemm on embed_tokens (transB)
//            instead of a transposed copy of the table.
//   score    (built on first score()) llava.ts's full forward + per-token cross-entropy against shifted labels
// Prompts are rendered exactly as for training (chat template → tokenizer with the same special-token rule as
// datasets/render.ts → each <image> placeholder expanded to numImageTokens copies), so a fine-tuned model sees at
// inference the very tokens it was trained on. Token choice and stopping are in sampling.ts.
//
// An adapter is not merged into the weights: its LoRA branches (scaling * x A^T B^T) and its saved tensors
// (modules_to_save, e.g. a trained projector) are graph inputs (llava.ts AdapterInputs), fed at every run from the
// generator's adapter. A graph thus depends on the adapter's structure (rank, scaling, adapted modules, saved
// tensor names; adapterStructure), not its values: every checkpoint of a run, and every adapter of the same shape,
// reuses the same compiled graphs, and the cache holds the base weights once (external data), not once per adapter.
// Generators open at once in a thread whose graphs are the same cache entry share its ORT sessions (one copy of the
// weights in memory), each feeding its own adapter.
import { readFileSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Session, type SessionOptions } from '../engine/runtime/session';
import { openProgram, resolveProvider, type RunSession } from '../engine/runtime/device-session';
import { compileCached, stableStringify } from '../engine/runtime/cache';
import { ort, tensor } from '../engine/runtime/tensor';
import { softmaxCrossEntropy } from '../engine/ops/loss';
import { renderConversation, type RenderSetup } from '../datasets/render';
import type { HfModel } from './hf-folder';
import { loadHfFolder } from './hf-folder';
import type { LensTokenizer } from './tokenizer';
import type { ImageInput } from './image-processor';
import { loadAdapter, type Adapter } from './peft';
import { Graph } from '../engine/graph/builder';
import {
  AdapterInputs,
  IO,
  adapterInputTensors,
  adapterStructure,
  buildForwardGraph,
  decoderNames,
  imageFeatures,
  llavaEmbeddings,
  type ForwardGraphOptions,
} from './llava';
import { GraphWeights } from './layers';
import { parseQuantScheme, quantKeyVersion, QUANT_SESSION_CONFIG, type QuantScheme } from './quantize';
import { decoderFor } from './registry';
import { decoderPositions } from './decoder/llama';
import { Sampler, StopStrings, validateSamplingOptions, type FinishReason, type SamplingOptions } from './sampling';
import { isVlm, type TextModelConfig, type VlmModelConfig } from './config';
import type { ImageFrames, ImageGrid } from './families/types';
import { renderSetupOf as modelRenderSetup } from './program';

export class GenerateError extends Error {}
/** The image given to generate/score cannot be read or decoded. */
export class ImageInputError extends GenerateError {}

export const IMAGE_TAG = '<image>';

export interface ChatTurn {
  role: 'system' | 'user' | 'assistant' | string;
  /** Plain text; "<image>" marks where the image goes (added before the first user turn's text when absent). */
  content: string;
}

export interface GenerateRequest {
  /** An image file path, encoded bytes, or decoded RGB; omit for text only. */
  image?: ImageInput | null;
  messages: ChatTurn[];
}

export interface GenerateOptions extends SamplingOptions {
  /** Default: generation_config.json max_new_tokens, else 128; never past the model's context length. */
  maxNewTokens?: number;
  /** Stop when the text contains one of these (it is cut from the answer and never streamed). */
  stop?: string[];
  /** Checked between tokens: generation ends with finishReason 'cancelled' and the text so far. */
  signal?: AbortSignal;
  /** Called once per generated token (EOS included) with the text it adds (may be '' while held back). */
  onToken?(t: { id: number; text: string }): void;
  /** false: recompute the whole sequence every step instead of using the KV cache (reference path, slow). */
  kvCache?: boolean;
}

export interface GenerateTimings {
  /** Image preprocessing + prompt rendering. */
  prepareMs: number;
  prefillMs: number;
  /** From the generate() call to the first token chosen. */
  firstTokenMs: number;
  /** Decode steps after the first token. */
  decodeMs: number;
  decodeTokens: number;
  /** decodeTokens / decodeMs * 1000 (NaN with no decode step). */
  tokensPerSecond: number;
}

export interface GenerateResult {
  /** Every generated id, EOS included when the model produced it. */
  ids: number[];
  /** The answer: decoded without special tokens, cut at a stop string. */
  text: string;
  finishReason: FinishReason;
  promptTokens: number;
  timings: GenerateTimings;
  /** What the model's setup had to assume (e.g. no chat template: the built-in one was used). */
  warnings?: string[];
  /** Where it ran and why (set by the generator pool, generate-worker.ts). */
  device?: { provider: string; reason: string };
}

export interface ScoreSample {
  image?: ImageInput | null;
  /** A conversation with at least one assistant turn: its tokens are the ones scored. */
  messages: ChatTurn[];
}

export interface ScoreResult {
  /** Mean negative log-likelihood (nats) per assistant token, NaN with none. */
  loss: number;
  /** Number of assistant tokens scored. */
  tokens: number;
}

export interface GeneratorOptions {
  /** Where compiled graphs are cached (default <os tmp>/lenslab-graph-cache). */
  cacheDir?: string;
  session?: SessionOptions;
  /** Called with progress while graphs are compiled / loaded. */
  onStatus?(message: string): void;
  /**
   * Weight-only quantization of the vision and decoder graphs (quantize.ts): int8 (u8 x s8) or int4 (block 32,
   * MatMulNBits). Quantized once, when the graph is compiled into the cache (keyed by the scheme and its version).
   */
  quantize?: QuantScheme;
}

export interface Generator {
  readonly model: HfModel;
  readonly adapter: Adapter | null;
  readonly eosIds: ReadonlySet<number>;
  /** Context length (max_position_embeddings). */
  readonly contextLength: number;
  /** The execution provider its decoder runs on ('cpu', 'webgpu', 'cuda'). */
  readonly provider: string;
  generate(req: GenerateRequest, opts?: GenerateOptions): Promise<GenerateResult>;
  /** Mean token loss per sample over its assistant tokens (the same tokens training puts in the loss). */
  score(
    samples: readonly ScoreSample[],
    opts?: { signal?: AbortSignal; onProgress?(done: number, total: number): void },
  ): Promise<ScoreResult[]>;
  /** The prompt ids generate() would feed for a request (images expanded for `grid`, default the largest). */
  promptIds(messages: ChatTurn[], hasImage: boolean, grid?: ImageGrid): number[];
  dispose(): Promise<void>;
}

type CausalConfig = VlmModelConfig | TextModelConfig;

// ---------------------------------------------------------------- prompt rendering

/** The render setup of a model (program.ts renderSetupOf) for an image of this grid (default: the largest). */
export function renderSetupOf(model: HfModel, grid?: ImageGrid): RenderSetup {
  if (model.config.kind === 'vision') throw new GenerateError(`${model.dir}: a vision-only model cannot generate text`);
  try {
    return modelRenderSetup(model, grid);
  } catch (e) {
    throw new GenerateError((e as Error).message);
  }
}

/**
 * Put the image tag in place: with an image and no "<image>" in any turn, "<image>\n" goes before the first user
 * turn's text (as datasets/conversation.ts does for training). Checks the tag count against the image.
 */
export function placeImage(messages: readonly ChatTurn[], hasImage: boolean): ChatTurn[] {
  if (!Array.isArray(messages) || messages.length === 0)
    throw new GenerateError('messages: at least one message is needed');
  messages.forEach((m, i) => {
    if (!m || typeof m.role !== 'string') throw new GenerateError(`messages[${i}].role must be a string`);
    if (typeof m.content !== 'string') throw new GenerateError(`messages[${i}].content must be a string`);
  });
  const tags = messages.reduce((n, m) => n + m.content.split(IMAGE_TAG).length - 1, 0);
  const out = messages.map((m) => ({ role: m.role, content: m.content }));
  if (hasImage) {
    if (tags > 1) throw new GenerateError(`messages: ${tags} "${IMAGE_TAG}" tags but one image`);
    if (tags === 0) {
      const first = out.findIndex((m) => m.role === 'user');
      if (first === -1) throw new GenerateError('messages: an image needs a user message to attach to');
      out[first].content = `${IMAGE_TAG}\n${out[first].content}`;
    }
  } else if (tags > 0) {
    throw new GenerateError(`messages: "${IMAGE_TAG}" appears ${tags} time(s) but no image was given`);
  }
  return out;
}

/**
 * The generation prompt's ids: the template with the generation prompt, tokenized with datasets/render.ts's rule
 * (the tokenizer's special tokens unless the text already starts with the bos token), images expanded.
 */
export function renderPromptIds(setup: RenderSetup, messages: readonly ChatTurn[]): number[] {
  let text: string;
  try {
    text = setup.template.render(messages as ChatTurn[] as never, { addGenerationPrompt: true });
  } catch (e) {
    throw new GenerateError(`chat template failed: ${(e as Error).message}`);
  }
  const bos = setup.tokenizer.bosToken;
  const special = (setup.addSpecialTokens ?? true) && !(bos && text.startsWith(bos));
  const ids = setup.tokenizer.encode(text, { addSpecialTokens: special });
  if (!setup.image) return ids;
  const img = setup.image;
  const tags = messages.reduce(
    (n, m) => n + (typeof m.content === 'string' ? m.content.split(IMAGE_TAG).length - 1 : 0),
    0,
  );
  const found = ids.reduce((n, id) => n + (id === img.tokenId ? 1 : 0), 0);
  if (tags > 0 && found !== tags) {
    throw new GenerateError(
      `${setup.template.origin ?? 'the chat template'}: the prompt has ${tags} image(s) but the rendered text holds ${found} image token(s) (id ${img.tokenId}); ` +
        (found === 0
          ? 'the template writes no image placeholder, so the model would not see the image'
          : 'the template places images differently than the messages do'),
    );
  }
  const expansion = img.ids ?? new Array<number>(img.count).fill(img.tokenId);
  return ids.flatMap((id) => (id === img.tokenId ? [...expansion] : [id]));
}

// ---------------------------------------------------------------- graph compilation

function fileIdentity(dir: string): unknown {
  const files = ['config.json', 'model.safetensors', 'model.safetensors.index.json'].filter((f) =>
    existsSync(join(dir, f)),
  );
  const idx = join(dir, 'model.safetensors.index.json');
  if (existsSync(idx)) {
    try {
      const map = (JSON.parse(readFileSync(idx, 'utf8')) as { weight_map?: Record<string, string> }).weight_map ?? {};
      for (const f of new Set(Object.values(map))) files.push(f);
    } catch {
      /* loadHfFolder already validated it */
    }
  }
  return files.sort().map((f) => {
    const st = statSync(join(dir, f));
    return [f, st.size, Math.round(st.mtimeMs)];
  });
}

/** Bump when the graphs built here change for the same model (invalidates cached generate/score graphs). */
export const GENERATE_GRAPH_VERSION = 5; // 5: vision graph takes N frames, decoder graph N frames' features

export type GraphKind = 'vision' | 'decoder' | 'score-image' | 'score-text';

const SCORE_LOSS = 'token_loss';
const SCORE_LABELS = 'labels';
const FEATURES = 'image_features';

function scoreOptions(kind: 'score-image' | 'score-text', adapter: Adapter | null): ForwardGraphOptions {
  return {
    batch: 1,
    adapter,
    adapterMode: 'inputs',
    positions: 'mask',
    mode: 'full',
    image: kind === 'score-image',
    logits: 'all',
  };
}

/** The model's weights inside g, with the adapter's tensors as graph inputs (AdapterInputs). */
function graphWeights(g: Graph, model: HfModel, adapter: Adapter | null, quantize: QuantScheme = 'none'): GraphWeights {
  return new GraphWeights(g, model.weights, {
    ...(adapter ? { lazy: new AdapterInputs(g, adapter, model.weights) } : {}),
    ...(quantize !== 'none' ? { quantize } : {}),
  });
}

/** The vision tower + connector alone: pixel_values [N frames, 3, S, S] → image_features [N, tokens per frame, D]. */
function buildVisionGraph(model: HfModel, adapter: Adapter | null, quantize: QuantScheme): Graph {
  const cfg = model.config;
  if (!isVlm(cfg)) throw new GenerateError(`${model.dir}: a ${cfg.modelType} model has no vision tower and connector`);
  const g = new Graph('lenslab_vision');
  const w = graphWeights(g, model, adapter, quantize);
  const v = cfg.vision;
  const pv = g.input(IO.pixelValues, 'float32', ['N', v.numChannels, v.imageSize, v.imageSize]);
  g.output(imageFeatures(w, cfg, pv), FEATURES);
  return g;
}

/** The decoder with a KV cache, for prefill (empty past) and decode; image features are an input. */
function buildDecoderGraph(model: HfModel, adapter: Adapter | null, quantize: QuantScheme): Graph {
  const cfg = model.config as CausalConfig;
  const t = cfg.text;
  const g = new Graph('lenslab_decoder');
  const w = graphWeights(g, model, adapter, quantize);
  const ids = g.input(IO.inputIds, 'int64', [1, 'S']);
  const mask = g.input(IO.attentionMask, 'int64', [1, 'L']);
  const feats = isVlm(cfg) ? g.input(FEATURES, 'float32', ['N', cfg.numImageTokens, t.hiddenSize]) : null;
  const past = [];
  for (let i = 0; i < t.numHiddenLayers; i++)
    past.push({
      key: g.input(IO.pastKey(i), 'float32', [1, t.numKeyValueHeads, 'P', t.headDim]),
      value: g.input(IO.pastValue(i), 'float32', [1, t.numKeyValueHeads, 'P', t.headDim]),
    });
  const embeds = llavaEmbeddings(w, cfg, ids, feats);
  const positions = g.scope('positions', () => decoderPositions(ids, mask, 'mask'));
  const names = decoderNames(cfg);
  const r = decoderFor(t)(
    w,
    t,
    names,
    { embeds, attentionMask: mask, positions, past },
    { logits: 'none', present: true },
  );
  // logits of the last position: [1, D] x [V, D]^T with Gemm(transB), so the table is used in checkpoint layout
  const last = g.op1('Slice', [r.hidden, g.ints([-1]), g.ints([Number.MAX_SAFE_INTEGER]), g.ints([1])]);
  const h2 = g.op1('Reshape', [last, g.ints([1, t.hiddenSize])]);
  const logits = w.head(h2, t.tieWordEmbeddings ? `${names.prefix}embed_tokens.weight` : names.lmHead, t.vocabSize);
  g.output(g.op1('Reshape', [logits, g.ints([1, 1, t.vocabSize])]), IO.logits);
  r.present!.forEach((p, i) => {
    g.output(p.key, IO.presentKey(i));
    g.output(p.value, IO.presentValue(i));
  });
  return g;
}

function buildScoreGraph(model: HfModel, kind: 'score-image' | 'score-text', adapter: Adapter | null): Graph {
  const g = buildForwardGraph(model, { ...scoreOptions(kind, adapter), name: `lenslab_${kind}` });
  // per-token cross-entropy against labels (-100 = not scored) instead of the [1, T, V] logits
  const logits = g.outputs.find((v) => v.name === IO.logits);
  if (!logits) throw new Error('score graph: no logits output');
  g.outputs.length = 0;
  const V = (model.config as CausalConfig).text.vocabSize;
  const labels = g.input(SCORE_LABELS, 'int64', [1, 'T']);
  const flat = g.op1('Reshape', [logits, g.ints([-1, V])]);
  const flatLabels = g.op1('Reshape', [labels, g.ints([-1])]);
  const { loss } = softmaxCrossEntropy(flat, flatLabels, { reduction: 'none', ignoreIndex: -100 });
  g.output(loss, SCORE_LOSS);
  return g;
}

/** One generation graph of `model` (what compileCached builds on a miss; exported for bench:compile). */
export function buildGraph(
  model: HfModel,
  kind: GraphKind,
  adapter: Adapter | null,
  quantize: QuantScheme = 'none',
): Graph {
  if (kind === 'vision') return buildVisionGraph(model, adapter, quantize);
  if (kind === 'decoder') return buildDecoderGraph(model, adapter, quantize);
  return buildScoreGraph(model, kind, adapter);
}

// ---------------------------------------------------------------- shared sessions

/**
 * ORT sessions open in this thread, by graph file and session options. Generators whose graphs are the same cache
 * entry (one model with no adapter, or with adapters of one structure: the adapter's tensors are feeds, never part
 * of the session) share one session and so one copy of the weights in memory; the last release disposes it.
 */
const openSessions = new Map<string, { session: Promise<Session>; refs: number }>();

function acquireSession(
  path: string,
  opts: SessionOptions | undefined,
): { session: Promise<Session>; release(): Promise<void> } {
  const key = `${resolve(path)}\u0000${stableStringify(opts ?? {})}`;
  let rec = openSessions.get(key);
  if (!rec) {
    const created = { session: Session.create(path, opts), refs: 0 };
    openSessions.set(key, created);
    created.session.catch(() => {
      if (openSessions.get(key) === created) openSessions.delete(key);
    });
    rec = created;
  }
  rec.refs++;
  const held = rec;
  let released = false;
  return {
    session: held.session,
    async release() {
      if (released) return;
      released = true;
      if (--held.refs > 0) return;
      if (openSessions.get(key) === held) openSessions.delete(key);
      try {
        await (await held.session).dispose();
      } catch {
        /* a session that failed to load has nothing to release */
      }
    },
  };
}

/** How many generation / scoring ORT sessions this thread holds open (shared ones count once). */
export function openGenerateSessions(): number {
  return openSessions.size;
}

// ---------------------------------------------------------------- generator

function eosIdsOf(model: HfModel): Set<number> {
  const ids = new Set<number>();
  const cfg = model.config as CausalConfig;
  for (const id of cfg.text.eosTokenIds) ids.add(id);
  if (model.tokenizer?.eosTokenId != null) ids.add(model.tokenizer.eosTokenId);
  const gen = model.json.generationConfig?.eos_token_id;
  for (const id of Array.isArray(gen) ? gen : [gen]) if (typeof id === 'number' && Number.isInteger(id)) ids.add(id);
  return ids;
}

function defaultMaxNewTokens(model: HfModel): number {
  const v = model.json.generationConfig?.max_new_tokens;
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : 128;
}

function lastRow(t: ort.Tensor): Float32Array {
  const d = t.data as Float32Array;
  const V = t.dims[t.dims.length - 1];
  return d.subarray(d.length - V);
}

function i64(ids: readonly number[]): ort.Tensor {
  return tensor(
    'int64',
    [1, ids.length],
    BigInt64Array.from(ids, (x) => BigInt(x)),
  );
}
function ones(n: number): ort.Tensor {
  return tensor('int64', [1, n], new BigInt64Array(n).fill(1n));
}

/**
 * A generator for a loaded model (loadHfFolder) and optional adapter (peft.ts loadAdapter). Compiles (or reuses) the
 * prefill and decode graphs and opens their ORT sessions; call dispose() to release them (the model stays open).
 */
export async function createGenerator(
  model: HfModel,
  adapter: Adapter | null = null,
  options: GeneratorOptions = {},
): Promise<Generator> {
  if (model.config.kind === 'vision') throw new GenerateError(`${model.dir}: a vision-only model cannot generate text`);
  const cfg: CausalConfig = model.config;
  const setup = renderSetupOf(model);
  const tokenizer = model.tokenizer as LensTokenizer;
  const cacheDir = options.cacheDir ?? join(tmpdir(), 'lenslab-graph-cache');
  const quantize = parseQuantScheme(options.quantize ?? 'none');
  // a quantized graph's key names the scheme and its version: an older scheme's cache entry is never read
  const identity = {
    model: fileIdentity(model.dir),
    adapter: adapter ? adapterStructure(adapter) : null,
    ...(quantize !== 'none' ? { quantize, quantVersion: quantKeyVersion.current } : {}),
  };
  const sessionOptions: SessionOptions | undefined =
    quantize === 'int4'
      ? { ...options.session, config: { ...QUANT_SESSION_CONFIG, ...options.session?.config } }
      : options.session;
  // the adapter's tensors, fed to every run of a graph that has them as inputs (ort tensors over the adapter's arrays)
  const adapterFeeds = new Map<string, ort.Tensor>();
  if (adapter)
    for (const x of adapterInputTensors(adapter, model.weights))
      adapterFeeds.set(x.name, tensor('float32', x.dims, x.data));
  const run = async (s: RunSession, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> => {
    if (adapterFeeds.size)
      for (const n of s.inputNames) {
        const x = adapterFeeds.get(n);
        if (x) feeds[n] = x;
      }
    return s.run(feeds);
  };
  const status = options.onStatus ?? (() => {});
  const sessions = new Map<GraphKind, Promise<RunSession>>();
  const releases: (() => Promise<void>)[] = [];
  let disposed = false;

  const session = (kind: GraphKind): Promise<RunSession> => {
    if (disposed) return Promise.reject(new GenerateError('the generator was disposed'));
    let s = sessions.get(kind);
    if (!s) {
      s = (async () => {
        status(`compiling the ${kind} graph`);
        const key = { what: 'lenslab-generate', version: GENERATE_GRAPH_VERSION, kind, ...identity };
        // score graphs (losses) stay float32
        const q = kind === 'vision' || kind === 'decoder' ? quantize : 'none';
        if (resolveProvider(options.session) === 'webgpu') {
          // the KV cache and the image features stay in device memory between runs; only the logits come back
          const deviceOutputs = [FEATURES];
          for (let i = 0; i < cfg.text.numHiddenLayers; i++) deviceOutputs.push(IO.presentKey(i), IO.presentValue(i));
          const s = await openProgram(() => buildGraph(model, kind, adapter, q), {
            cacheDir,
            key,
            session: sessionOptions,
            deviceOutputs,
          });
          releases.push(() => s.dispose());
          return s;
        }
        const entry = compileCached(cacheDir, key, () => buildGraph(model, kind, adapter, q));
        status(`loading the ${kind} graph${entry.hit ? ' (cached)' : ''}`);
        const shared = acquireSession(entry.path, sessionOptions);
        try {
          const s = await shared.session;
          // the cache keeps the entry (no eviction) and the session stays open until dispose()
          releases.push(async () => {
            await shared.release();
            entry.release();
          });
          return s;
        } catch (e) {
          await shared.release();
          entry.release();
          throw e;
        }
      })();
      sessions.set(kind, s);
      s.catch(() => sessions.delete(kind));
    }
    return s;
  };

  const hasVision = isVlm(cfg);
  const provider = (await session('decoder')).provider;
  if (hasVision) await session('vision');

  const eosIds = eosIdsOf(model);
  const contextLength = cfg.text.maxPositionEmbeddings;
  const t = cfg.text;
  const emptyPast = () => {
    const out: ort.Tensor[] = [];
    for (let i = 0; i < 2 * t.numHiddenLayers; i++)
      out.push(tensor('float32', [1, t.numKeyValueHeads, 0, t.headDim], new Float32Array(0)));
    return out;
  };

  /** The image's frames as pixel_values [frames, 3, H, W] and the grid its tokens follow. */
  async function pixels(image: ImageInput): Promise<{ pv: ort.Tensor; grid: ImageGrid }> {
    if (!isVlm(cfg)) throw new GenerateError(`${model.dir}: a text-only model cannot take an image`);
    if (!model.images) throw new GenerateError(`${model.dir}: no preprocessor_config.json`);
    let f: ImageFrames;
    try {
      f = await model.images.process(image);
    } catch (e) {
      throw new ImageInputError((e as Error).message);
    }
    return { pv: tensor('float32', [f.frames, 3, f.height, f.width], f.data), grid: { rows: f.rows, cols: f.cols } };
  }
  const setups = new Map<string, RenderSetup>();
  /** The render setup for an image of this grid (one per grid, built once). */
  const setupFor = (grid: ImageGrid | null): RenderSetup => {
    if (!grid) return setup;
    const key = `${grid.rows}x${grid.cols}`;
    let s = setups.get(key);
    if (!s) setups.set(key, (s = renderSetupOf(model, grid)));
    return s;
  };

  /** Image features of the pixels, or zeros when there is no image (no position reads them then). */
  async function features(pv: ort.Tensor | null): Promise<ort.Tensor | null> {
    if (!isVlm(cfg)) return null;
    if (!pv) return tensor('float32', [1, cfg.numImageTokens, t.hiddenSize]);
    const out = await run(await session('vision'), { [IO.pixelValues]: pv });
    return out[FEATURES];
  }

  /** One decoder run over `ids` (new tokens) after `past` (past.length = 2 * layers; length 0 along P = prefill). */
  async function step(
    ids: readonly number[],
    past: ort.Tensor[],
    pastLen: number,
    feats: ort.Tensor | null,
  ): Promise<{ logits: Float32Array; past: ort.Tensor[] }> {
    const s = await session('decoder');
    const feeds: Record<string, ort.Tensor> = {
      [IO.inputIds]: i64(ids),
      [IO.attentionMask]: ones(pastLen + ids.length),
    };
    if (feats) feeds[FEATURES] = feats;
    for (let i = 0; i < t.numHiddenLayers; i++) {
      feeds[IO.pastKey(i)] = past[2 * i];
      feeds[IO.pastValue(i)] = past[2 * i + 1];
    }
    const out = await run(s, feeds);
    const next: ort.Tensor[] = [];
    for (let i = 0; i < t.numHiddenLayers; i++) next.push(out[IO.presentKey(i)], out[IO.presentValue(i)]);
    for (const x of past) x.dispose?.();
    return { logits: lastRow(out[IO.logits]), past: next };
  }

  function promptIds(messages: ChatTurn[], hasImage: boolean, grid?: ImageGrid): number[] {
    return renderPromptIds(setupFor(grid ?? null), placeImage(messages, hasImage));
  }

  async function generate(req: GenerateRequest, opts: GenerateOptions = {}): Promise<GenerateResult> {
    if (disposed) throw new GenerateError('the generator was disposed');
    const t0 = performance.now();
    validateSamplingOptions(opts);
    const maxNew = opts.maxNewTokens ?? defaultMaxNewTokens(model);
    if (!Number.isInteger(maxNew) || maxNew < 1)
      throw new GenerateError(`maxNewTokens must be a positive integer, got ${maxNew}`);
    const sampler = new Sampler(opts);
    const stops = new StopStrings(opts.stop ?? []);
    const hasImage = req.image !== undefined && req.image !== null;
    placeImage(req.messages, hasImage); // message errors before the image is decoded
    const img = hasImage ? await pixels(req.image as ImageInput) : null;
    const pv = img?.pv ?? null;
    const ids = promptIds(req.messages, hasImage, img?.grid);
    if (ids.length >= contextLength)
      throw new GenerateError(`the prompt is ${ids.length} tokens; the model's context is ${contextLength}`);
    const budget = Math.min(maxNew, contextLength - ids.length);
    const tPrep = performance.now();

    const seq = ids.slice();
    const gen: number[] = [];
    const dec = tokenizer.streamDecoder({ skipSpecialTokens: true });
    let shown = 0;
    let streamed = '';
    let finish: FinishReason = 'length';
    // ids past the tokenizer's vocabulary (embedding tables are often padded, e.g. Qwen2's 151,936 rows for 151,665
    // tokens) have no text, as in transformers' decode
    const hasText = (x: number) => !eosIds.has(x) && x < tokenizer.vocabSize;
    const answerText = (all: number[]) => tokenizer.decode(all.filter(hasText), { skipSpecialTokens: true });
    let prefillMs = 0;
    let firstTokenMs = 0;
    let tDecode0 = 0;
    let past: ort.Tensor[] | null = null;
    let feats: ort.Tensor | null = null;
    const useCache = opts.kvCache ?? true;

    try {
      for (let i = 0; i < budget; i++) {
        if (opts.signal?.aborted) {
          finish = 'cancelled';
          break;
        }
        let logits: Float32Array;
        if (i === 0 || !useCache) {
          const tp = performance.now();
          if (i === 0) feats = await features(pv);
          const r = await step(seq, emptyPast(), 0, feats);
          if (i === 0) prefillMs = performance.now() - tp;
          logits = r.logits;
          if (useCache) past = r.past;
          else for (const x of r.past) x.dispose?.();
        } else {
          const r = await step([seq[seq.length - 1]], past!, seq.length - 1, feats);
          logits = r.logits;
          past = r.past;
        }
        const id = sampler.next(logits, seq);
        if (i === 0) {
          firstTokenMs = performance.now() - t0;
          tDecode0 = performance.now();
        }
        seq.push(id);
        gen.push(id);
        const isEos = eosIds.has(id);
        if (hasText(id)) dec.push(id);
        const last = isEos || i === budget - 1;
        // mid-stream: the streaming decoder's text (complete characters only); at the end: the full decode
        const text = last ? answerText(gen) : dec.text;
        const st = stops.check(text);
        let emitTo: number;
        if (st.stopped) {
          finish = 'stop';
          emitTo = st.end;
        } else {
          if (isEos) finish = 'eos';
          emitTo = last ? text.length : st.end; // at the end nothing follows: flush what was held back
        }
        let delta = '';
        if (emitTo > shown && text.startsWith(streamed)) {
          delta = text.slice(shown, emitTo);
          shown = emitTo;
          streamed = text.slice(0, shown);
        }
        opts.onToken?.({ id, text: delta });
        if (st.stopped || isEos) break;
      }
    } finally {
      if (past) for (const t of past) t.dispose?.();
      if (feats && feats.location !== 'cpu') feats.dispose();
    }
    const full = answerText(gen);
    const st = stops.check(full);
    const text = st.stopped ? full.slice(0, st.end) : full;
    const decodeMs = gen.length > 1 ? performance.now() - tDecode0 : 0;
    const decodeTokens = Math.max(0, gen.length - 1);
    return {
      ids: gen,
      text,
      finishReason: finish,
      promptTokens: ids.length,
      ...(setup.warnings?.length ? { warnings: [...setup.warnings] } : {}),
      timings: {
        prepareMs: tPrep - t0,
        prefillMs,
        firstTokenMs,
        decodeMs,
        decodeTokens,
        tokensPerSecond: decodeTokens > 0 ? (decodeTokens / decodeMs) * 1000 : NaN,
      },
    };
  }

  async function score(
    samples: readonly ScoreSample[],
    o: { signal?: AbortSignal; onProgress?(done: number, total: number): void } = {},
  ): Promise<ScoreResult[]> {
    if (disposed) throw new GenerateError('the generator was disposed');
    const out: ScoreResult[] = [];
    for (let k = 0; k < samples.length; k++) {
      if (o.signal?.aborted) throw new GenerateError('scoring cancelled');
      const s = samples[k];
      const hasImage = s.image !== undefined && s.image !== null;
      let r;
      let img: { pv: ort.Tensor; grid: ImageGrid } | null = null;
      try {
        const msgs = placeImage(s.messages, hasImage) as Parameters<typeof renderConversation>[0];
        if (hasImage) img = await pixels(s.image as ImageInput);
        r = renderConversation(msgs, setupFor(img?.grid ?? null));
      } catch (e) {
        if (e instanceof ImageInputError) throw e;
        throw new GenerateError(`sample ${k}: ${(e as Error).message}`);
      }
      if (r.ids.length > contextLength)
        throw new GenerateError(
          `sample ${k}: ${r.ids.length} tokens, more than the model's context of ${contextLength}`,
        );
      // labels[t] = ids[t + 1] where that token is in the loss (the logits at t predict token t + 1)
      const labels = new BigInt64Array(r.ids.length).fill(-100n);
      let n = 0;
      for (let t = 0; t + 1 < r.ids.length; t++)
        if (r.lossMask[t + 1]) {
          labels[t] = BigInt(r.ids[t + 1]);
          n++;
        }
      if (n === 0) {
        out.push({ loss: NaN, tokens: 0 });
        o.onProgress?.(k + 1, samples.length);
        continue;
      }
      const pv = img?.pv ?? null;
      const sess = await session(pv ? 'score-image' : 'score-text');
      const feeds: Record<string, ort.Tensor> = {
        [IO.inputIds]: i64(r.ids),
        [IO.attentionMask]: ones(r.ids.length),
        [SCORE_LABELS]: tensor('int64', [1, r.ids.length], labels),
      };
      if (pv) feeds[IO.pixelValues] = pv;
      const res = await run(sess, feeds);
      const losses = res[SCORE_LOSS].data as Float32Array;
      let sum = 0;
      for (let t = 0; t < losses.length; t++) if (labels[t] !== -100n) sum += losses[t];
      out.push({ loss: sum / n, tokens: n });
      o.onProgress?.(k + 1, samples.length);
    }
    return out;
  }

  async function dispose(): Promise<void> {
    if (disposed) return;
    disposed = true;
    const all = [...sessions.values()];
    sessions.clear();
    for (const p of all) await p.catch(() => {}); // loads in flight register their release when they finish
    for (const r of releases.splice(0)) await r();
  }

  return { model, adapter, eosIds, contextLength, provider, generate, score, promptIds, dispose };
}

/** Open a model folder (and adapter folder) and create its generator; dispose() also closes the model. */
export async function loadGenerator(
  modelDir: string,
  adapterDir?: string | null,
  options: GeneratorOptions = {},
): Promise<Generator> {
  if (!existsSync(modelDir)) throw new GenerateError(`${modelDir}: model folder not found`);
  if (adapterDir && !existsSync(adapterDir)) throw new GenerateError(`${adapterDir}: adapter folder not found`);
  const model = loadHfFolder(modelDir);
  try {
    if (model.config.kind === 'vision')
      throw new GenerateError(`${modelDir}: a vision-only model cannot generate text`);
    const adapter = adapterDir ? loadAdapter(adapterDir, model.config) : null;
    const g = await createGenerator(model, adapter, options);
    const inner = g.dispose;
    return {
      ...g,
      async dispose() {
        await inner();
        model.close();
      },
    };
  } catch (e) {
    model.close();
    throw e;
  }
}
