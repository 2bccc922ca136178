// Shared building blocks of the model graphs: how a checkpoint's tensors enter a graph (frozen weights become
// initializers, trainable ones are the step program's parameter inputs), linear layers with optional LoRA, and the
// head split/merge reshapes used by every attention block.
//
// Frozen weight matrices are stored pre-transposed ([in, out], initializer "<name>.T") so a linear layer is one
// MatMul with no Transpose node for ORT to fold (and no second copy of the weight at session start). A trainable
// weight is a graph input in Hugging Face layout ([out, in]); its layer is MatMul(x, Transpose(W)), so the gradient
// arrives in the same layout as the checkpoint and the optimizer state.
//
// Frozen initializers are lazy (engine LazyRef): a tensor is read from the checkpoint (and converted / transposed)
// only when the graph is written, and saveModel writes and drops them one at a time, so compiling a model holds about
// one weight matrix beyond the graph, not a converted copy of every weight (npm run bench:compile). The source must
// stay open until the graph is serialized.
//
// LoRA (PEFT semantics): y = x W^T + b + scaling * (dropout(x) A^T) B^T with A [r, in], B [out, r].
//
// LoRA dropout is counter-based: the keep-mask of a module is a pure function of (the graph input `dropout_seed`,
// the module's name, each element's flat index in x), an integer hash built from standard uint32 ops (Mul/Add wrap
// mod 2^32, BitShift, BitwiseXor). The caller feeds a new seed per step (see dropoutStepSeed), so masks are
// reproducible from a seed and a resumed run draws exactly the masks an uninterrupted run would.

import type { Graph, Value } from '../engine/graph/builder';
import type { DType } from '../engine/graph/dtype';
import type { TensorSource } from './weights/safetensors';
import {
  frozenMatMulNBits,
  quantizeFallbackReason,
  quantizedGather,
  quantizedMatMul,
  type NBitsOptions,
} from './quantize';

/** LoRA matrices of one module, as graph values (parameters or constants). */
export interface LoraBinding {
  /** [r, in] */
  a: Value;
  /** [out, r] */
  b: Value;
  scaling: number;
  /** Dropout probability on the LoRA branch's input (training graphs only; 0 = none). */
  dropout?: number;
}

export interface GraphWeightsOptions {
  /** Graph float type (default float32). Weights are converted on the way in. */
  dtype?: DType;
  /** Trainable tensors by canonical name (graph inputs in HF layout), overriding the source. */
  params?: Readonly<Record<string, Value>>;
  /** Frozen replacements by canonical name (e.g. a projector saved in an adapter), HF layout. */
  overrides?: ReadonlyMap<string, Float32Array>;
  /** LoRA bindings by module name (canonical, without ".weight"). */
  lora?: ReadonlyMap<string, LoraBinding>;
  /**
   * Tensors the caller creates on first use (e.g. an adapter's LoRA matrices and saved tensors as graph inputs,
   * llava.ts AdapterInputs), so a graph only gets the ones its layers read. Consulted after `lora` / `params`.
   */
  lazy?: LazyTensors;
  /**
   * The int64 scalar whose low 32 bits seed the LoRA dropout masks. Default: the graph input `dropout_seed`
   * (DROPOUT_SEED_INPUT), created on the first linear layer that drops (graphs without dropout have no such input).
   */
  dropoutSeed?: Value;
  /**
   * Weight-only quantization of the frozen matrices of linear layers, the token table and the LM head (inference
   * graphs; quantize.ts). Trainable and caller-supplied tensors, and LoRA branches, stay float.
   */
  quantize?: 'int8' | 'int4';
  /**
   * How quantized matrices enter the graph: 'inference' (default: the DequantizeLinear / dynamic-int8 patterns ORT
   * fuses, forward only) or 'training' (MatMulNBits blocks with a gradient for the activations, quantize.ts
   * frozenMatMulNBits), for a frozen quantized base under trainable LoRA.
   */
  quantizeFor?: 'inference' | 'training';
  /** MatMulNBits options of the training form (accuracy level). */
  nbits?: NBitsOptions;
}

/** A frozen matrix that the quantize option left float32, and why. */
export interface QuantFallback {
  name: string;
  shape: number[];
  reason: string;
}

/** Tensors supplied by the caller on first use (a graph value per name / module, created at most once). */
export interface LazyTensors {
  /** Whether tensor(name) gives a value (must not create one). */
  has(name: string): boolean;
  /** The tensor in checkpoint (HF) layout, or undefined when this source has no such tensor. */
  tensor(name: string): Value | undefined;
  /** The LoRA binding of a module, or undefined when it has none. */
  lora(module: string): LoraBinding | undefined;
}

/** Bytes of float32 rows read per block when transposing a weight from a source with getRange. */
const TRANSPOSE_BLOCK = 16 * 1024 * 1024;

/** Name of the int64 scalar graph input that seeds LoRA dropout masks in training graphs. */
export const DROPOUT_SEED_INPUT = 'dropout_seed';

/** A checkpoint seen from inside one graph: each tensor becomes one value, created on first use. */
export class GraphWeights {
  readonly dtype: DType;
  private cache = new Map<string, Value>();
  private used = new Set<string>();
  private loraUsed = new Set<string>();
  private seedValue: Value | null = null;
  private flatIndex = new Map<Value, Value>();
  private fallbacks = new Map<string, QuantFallback>();

  constructor(
    readonly g: Graph,
    readonly source: TensorSource,
    readonly opts: GraphWeightsOptions = {},
  ) {
    this.dtype = opts.dtype ?? 'float32';
    if (this.dtype !== 'float32' && this.dtype !== 'float64')
      throw new Error(`GraphWeights: dtype must be float32 or float64 (got ${this.dtype})`);
  }

  has(name: string): boolean {
    return (
      !!this.opts.params?.[name] ||
      !!this.opts.lazy?.has(name) ||
      !!this.opts.overrides?.has(name) ||
      this.source.has(name)
    );
  }

  /** A caller-supplied value for the tensor (a trainable parameter or a lazy tensor), else undefined. */
  private supplied(name: string): Value | undefined {
    const p = this.opts.params?.[name];
    if (p) return p;
    return this.opts.lazy?.has(name) ? this.opts.lazy.tensor(name) : undefined;
  }

  shapeOf(name: string): number[] {
    const p = this.opts.params?.[name]; // a lazy tensor has its source tensor's shape (not created just to ask)
    if (p) return (p.shape ?? []).map(Number);
    return this.source.info(name).shape;
  }

  /** Names of the source's tensors that some layer used (for checks that a builder consumed what it should). */
  usedNames(): string[] {
    return [...this.used];
  }
  /** Frozen matrices the quantize option applied to that stayed float32 (e.g. an input size not a multiple of 32). */
  quantFallbacks(): QuantFallback[] {
    return [...this.fallbacks.values()];
  }
  /** LoRA modules that some linear layer applied. */
  usedLora(): string[] {
    return [...this.loraUsed];
  }

  private data(name: string): Float32Array {
    const o = this.opts.overrides?.get(name);
    if (o) return o;
    if (!this.source.has(name)) throw new Error(`weights: no tensor "${name}" in the model`);
    return this.source.get(name);
  }

  private typed(d: Float32Array): Float32Array | Float64Array {
    return this.dtype === 'float64' ? Float64Array.from(d) : d;
  }

  /** Fails at build time (not when the graph is written) for a tensor neither overridden nor in the source. */
  private check(name: string): void {
    if (!this.opts.overrides?.has(name) && !this.source.has(name))
      throw new Error(`weights: no tensor "${name}" in the model`);
  }

  /** The tensor in checkpoint layout (a parameter input when trainable, else an initializer). */
  tensor(name: string): Value {
    const p = this.supplied(name);
    if (p) {
      this.used.add(name);
      return p;
    }
    const hit = this.cache.get(name);
    if (hit) return hit;
    this.check(name);
    const shape = this.source.has(name) ? this.source.info(name).shape : null;
    const dims = shape ?? [this.data(name).length];
    // read (and converted) only when the graph is written, one tensor at a time (serialize.ts LazyRef)
    const v = this.g.initializer(name, this.dtype, dims, { lazy: { read: () => this.typed(this.data(name)) } });
    this.cache.set(name, v);
    this.used.add(name);
    return v;
  }

  /** A 2-D weight [out, in] as the MatMul right operand [in, out]. */
  weightT(name: string): Value {
    const p = this.supplied(name);
    if (p) {
      this.used.add(name);
      return this.g.op1('Transpose', [p], { perm: [1, 0] });
    }
    const key = `${name}.T`;
    const hit = this.cache.get(key);
    if (hit) return hit;
    this.check(name);
    const info = this.source.has(name) ? this.source.info(name) : null;
    const shape = info?.shape;
    if (!shape || shape.length !== 2)
      throw new Error(`weights: "${name}" is not a matrix (shape ${JSON.stringify(shape)})`);
    const [o, i] = shape;
    // read and transposed only when the graph is written; the source copy is garbage once transposed, the
    // transposed one once written (serialize.ts LazyRef)
    const src = this.source;
    const read = () => {
      if (!this.opts.overrides?.has(name) && src.getRange) {
        // from the file a block of rows at a time: the whole untransposed matrix is never in memory
        const t = new Float32Array(o * i);
        const rowsPer = Math.max(1, Math.floor(TRANSPOSE_BLOCK / (i * 4)));
        for (let r0 = 0; r0 < o; r0 += rowsPer) {
          const nr = Math.min(rowsPer, o - r0);
          const blk = src.getRange(name, r0 * i, nr * i);
          for (let r = 0; r < nr; r++) for (let c = 0; c < i; c++) t[c * o + r0 + r] = blk[r * i + c];
        }
        return this.typed(t);
      }
      const d = this.data(name);
      if (d.length !== o * i) throw new Error(`weights: "${name}" has ${d.length} values for shape [${o},${i}]`);
      const t = new Float32Array(o * i);
      for (let r = 0; r < o; r++) for (let c = 0; c < i; c++) t[c * o + r] = d[r * i + c];
      return this.typed(t);
    };
    const v = this.g.initializer(key, this.dtype, [i, o], { lazy: { read } });
    this.cache.set(key, v);
    this.used.add(name);
    return v;
  }

  /** x [..., in] -> [..., out] through module `<module>.weight` (+ `<module>.bias` when present), plus its LoRA. */
  linear(x: Value, module: string, o: { bias?: boolean } = {}): Value {
    const g = this.g;
    const wname = `${module}.weight`;
    let y = this.quantized(x, wname) ?? g.op1('MatMul', [x, this.weightT(wname)]);
    const bname = `${module}.bias`;
    const wantBias = o.bias ?? this.has(bname);
    if (wantBias) y = g.op1('Add', [y, this.tensor(bname)]);
    const l = this.opts.lora?.get(module) ?? this.opts.lazy?.lora(module);
    if (l) {
      this.loraUsed.add(module);
      let xin = x;
      if (l.dropout && l.dropout > 0)
        xin = g.op1('Mul', [
          x,
          loraDropoutMask(g, x, l.dropout, this.dropoutSeedValue(), module, this.dtype, this.flatIndexOf(x)),
        ]);
      const at = g.op1('Transpose', [l.a], { perm: [1, 0] });
      const bt = g.op1('Transpose', [l.b], { perm: [1, 0] });
      let z = g.op1('MatMul', [g.op1('MatMul', [xin, at]), bt]);
      if (l.scaling !== 1) z = g.op1('Mul', [z, g.scalar(l.scaling, this.dtype)]);
      y = g.op1('Add', [y, z]);
    }
    return y;
  }

  /** Whether `name` is a frozen checkpoint matrix that the quantize option applies to. */
  private quantizable(name: string): boolean {
    return (
      !!this.opts.quantize &&
      this.dtype === 'float32' &&
      !this.supplied(name) &&
      (this.opts.overrides?.has(name) || this.source.has(name))
    );
  }

  /** x [..., in] @ W^T with W quantized, or null (not quantizing, or the layer cannot take the scheme). */
  private quantized(x: Value, name: string): Value | null {
    if (!this.quantizable(name)) return null;
    const shape = this.opts.overrides?.has(name) ? null : this.source.info(name).shape;
    if (!shape || shape.length !== 2) return null;
    const y =
      this.opts.quantizeFor === 'training'
        ? frozenMatMulNBits(
            this.g,
            x,
            name,
            shape[0],
            shape[1],
            this.opts.quantize!,
            () => this.data(name),
            this.opts.nbits,
          )
        : quantizedMatMul(this.g, x, name, shape[0], shape[1], this.opts.quantize!, () => this.data(name));
    if (y) this.used.add(name);
    else
      this.fallbacks.set(name, {
        name,
        shape: [...shape],
        reason: quantizeFallbackReason(shape, this.opts.quantize!) ?? 'not quantizable',
      });
    return y;
  }

  /** Rows `ids` of a table [rows, cols] (token embeddings): int8 rows when quantizing, else Gather on the float table. */
  embedding(name: string, ids: Value): Value {
    if (this.quantizable(name) && !this.opts.overrides?.has(name)) {
      const [rows, cols] = this.source.info(name).shape;
      this.used.add(name);
      return quantizedGather(this.g, name, rows, cols, ids, () => this.data(name));
    }
    return this.g.op1('Gather', [this.tensor(name), ids], { axis: 0 });
  }

  /** h [N, in] @ W^T for a [out, in] table in checkpoint layout (the LM head, tied or not): Gemm(transB) or quantized. */
  head(h: Value, name: string, out: number): Value {
    const q = this.quantized(h, name);
    if (q) return q;
    return this.g.op1(
      'Gemm',
      [h, this.tensor(name)],
      { transB: 1 },
      { outTypes: [{ dtype: this.dtype, shape: [h.shape?.[0] ?? '?', out] }] },
    );
  }

  private dropoutSeedValue(): Value {
    if (!this.seedValue) this.seedValue = this.opts.dropoutSeed ?? this.g.input(DROPOUT_SEED_INPUT, 'int64', []);
    return this.seedValue;
  }
  /** q/k/v (and gate/up) read the same x: one index tensor for all their masks. */
  private flatIndexOf(x: Value): Value {
    let v = this.flatIndex.get(x);
    if (!v) this.flatIndex.set(x, (v = flatIndexU32(this.g, x)));
    return v;
  }
}

// ---- counter-based LoRA dropout ------------------------------------------------------------------------------------
//
// key(seed, module)  = mix(uint32(seed) ^ fnv1a(module))
// h(i)               = mix(i * 0x9E3779B9 + key)          (i = flat element index of x, uint32 arithmetic)
// keep(i)            = h(i) >= round(p * 2^32)             (P(keep) = 1 - p up to 2^-32)
// mask(i)            = keep(i) / (1 - p)
// mix is Wellons' lowbias32 (second constant set, both multipliers below 2^31). Everything comes from the seed and
// the shape of x, never from a differentiated value, so autodiff sees a constant mask (integer ops stop its walk).
// The same functions in JS (mix32, dropoutMaskReference) are the reference the tests compare against.

const MIX_M1 = 0x21f0aaad;
const MIX_M2 = 0x735a2d97;
const GOLDEN = 0x9e3779b9;

/** lowbias32: a bijective uint32 mixer. */
export function mix32(x: number): number {
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, MIX_M1) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, MIX_M2) >>> 0;
  return (x ^ (x >>> 15)) >>> 0;
}

/** FNV-1a of a module name (uint32): the per-module stream id. */
export function moduleHash(name: string): number {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(name)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}

/** The `dropout_seed` of one micro-batch: a hash of the run's seed, the optimizer step and the micro-batch index. */
export function dropoutStepSeed(runSeed: number, step: number, micro = 0): number {
  const base = mix32((runSeed >>> 0) ^ mix32(Math.floor(runSeed / 2 ** 32) >>> 0));
  return mix32((base + Math.imul(step >>> 0, GOLDEN) + Math.imul(micro >>> 0, 0x85ebca6b)) >>> 0);
}

function keepThreshold(p: number): number {
  if (!(p > 0 && p < 1)) throw new Error(`LoRA dropout must be in (0, 1) (got ${p})`);
  return Math.min(0xffffffff, Math.round(p * 2 ** 32));
}

/** JS reference of the graph's mask: n values (0 or 1/(1-p)) for flat indices 0..n-1. */
export function dropoutMaskReference(seed: number | bigint, module: string, n: number, p: number): Float64Array {
  const s = Number(BigInt.asUintN(32, BigInt(seed)));
  const key = mix32((s ^ moduleHash(module)) >>> 0);
  const thr = keepThreshold(p);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = mix32((Math.imul(i, GOLDEN) + key) >>> 0) >= thr ? 1 / (1 - p) : 0;
  return out;
}

function graphMix(g: Graph, x: Value): Value {
  const u = (v: number) => g.constant(new Uint32Array([v]), 'uint32', []);
  const t = { outTypes: [{ dtype: 'uint32' as DType, shape: x.shape }] };
  const xorShift = (v: Value, k: number) =>
    g.op1('BitwiseXor', [v, g.op1('BitShift', [v, u(k)], { direction: 'RIGHT' }, t)], {}, t);
  let h = xorShift(x, 16);
  h = g.op1('Mul', [h, u(MIX_M1)], {}, t);
  h = xorShift(h, 15);
  h = g.op1('Mul', [h, u(MIX_M2)], {}, t);
  return xorShift(h, 15);
}

/**
 * The inverted-dropout mask of x (same shape, `dtype`): 0 or 1/(1-p) per element, from `seed` (int64 scalar, low 32
 * bits used), the module name and each element's flat index (`index`: flatIndexU32(g, x), to share between
 * modules that read the same x). Multiply it into x.
 */
/** uint32 flat element indices of x, in x's shape (0, 1, ..., size - 1). */
export function flatIndexU32(g: Graph, x: Value): Value {
  const flat = g.op1(
    'Range',
    [g.constant(0, 'int64', []), g.op1('Size', [x]), g.constant(1, 'int64', [])],
    {},
    { outTypes: [{ dtype: 'int64', shape: ['?'] }] },
  );
  return g.op1(
    'Reshape',
    [g.op1('Cast', [flat], { to: 12 }, { outTypes: [{ dtype: 'uint32', shape: ['?'] }] }), g.op1('Shape', [x])],
    {},
    { outTypes: [{ dtype: 'uint32', shape: x.shape }] },
  );
}

export function loraDropoutMask(
  g: Graph,
  x: Value,
  p: number,
  seed: Value,
  module: string,
  dtype: DType,
  index?: Value,
): Value {
  const thr = keepThreshold(p);
  const u = (v: number) => g.constant(new Uint32Array([v]), 'uint32', []);
  const scalarU32 = { outTypes: [{ dtype: 'uint32' as DType, shape: [] }] };
  const seed32 = g.op1('Cast', [seed], { to: 12 }, scalarU32);
  const key = graphMix(g, g.op1('BitwiseXor', [seed32, u(moduleHash(module))], {}, scalarU32));
  const idx = index ?? flatIndexU32(g, x);
  const t = { outTypes: [{ dtype: 'uint32' as DType, shape: x.shape }] };
  const h = graphMix(g, g.op1('Add', [g.op1('Mul', [idx, u(GOLDEN)], {}, t), key], {}, t));
  const keep = g.op1('GreaterOrEqual', [h, u(thr)], {}, { outTypes: [{ dtype: 'bool', shape: x.shape }] });
  return g.op1('Mul', [g.op1('Cast', [keep], { to: onnxFloat(dtype) }), g.scalar(1 / (1 - p), dtype)]);
}

/** [B, S, H*d] -> [B, H, S, d] */
export function splitHeads(g: Graph, x: Value, heads: number, headDim: number): Value {
  const r = g.op1('Reshape', [x, g.ints([0, 0, heads, headDim])]);
  return g.op1('Transpose', [r], { perm: [0, 2, 1, 3] });
}

/** [B, H, S, d] -> [B, S, H*d] */
export function mergeHeads(g: Graph, x: Value, heads: number, headDim: number): Value {
  const t = g.op1('Transpose', [x], { perm: [0, 2, 1, 3] });
  return g.op1('Reshape', [t, g.ints([0, 0, heads * headDim])]);
}

/** ONNX TensorProto type code of a float dtype. */
export function onnxFloat(dtype: DType): number {
  return dtype === 'float64' ? 11 : dtype === 'float16' ? 10 : 1;
}
