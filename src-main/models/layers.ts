// Shared building blocks of the model graphs: how a checkpoint's tensors enter a graph (frozen weights become
// initializers, trainable ones are the step program's parameter inputs), linear layers with optional LoRA, and the
// head split/merge reshapes used by every attention block.
//
// Frozen weight matrices are stored pre-transposed ([in, out], initializer "<name>.T") so a linear layer is one
// MatMul with no Transpose node for ORT to fold (and no second copy of the weight at session start). A trainable
// weight is a graph input in Hugging Face layout ([out, in]); its layer is MatMul(x, Transpose(W)), so the gradient
// arrives in the same layout as the checkpoint and the optimizer state.
//
// LoRA (PEFT semantics): y = x W^T + b + scaling * (dropout(x) A^T) B^T with A [r, in], B [out, r].

import { attr, type Graph, type Value } from '../engine/graph/builder';
import type { DType } from '../engine/graph/dtype';
import type { TensorSource } from './weights/safetensors';

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
  /** Seed for LoRA dropout masks (Dropout op seed); default 0. */
  dropoutSeed?: number;
}

/** A checkpoint seen from inside one graph: each tensor becomes one value, created on first use. */
export class GraphWeights {
  readonly dtype: DType;
  private cache = new Map<string, Value>();
  private used = new Set<string>();
  private loraUsed = new Set<string>();
  private dropoutCounter = 0;

  constructor(
    readonly g: Graph,
    readonly source: TensorSource,
    readonly opts: GraphWeightsOptions = {},
  ) {
    this.dtype = opts.dtype ?? 'float32';
    if (this.dtype !== 'float32' && this.dtype !== 'float64') throw new Error(`GraphWeights: dtype must be float32 or float64 (got ${this.dtype})`);
  }

  has(name: string): boolean {
    return !!this.opts.params?.[name] || !!this.opts.overrides?.has(name) || this.source.has(name);
  }

  shapeOf(name: string): number[] {
    const p = this.opts.params?.[name];
    if (p) return (p.shape ?? []).map(Number);
    return this.source.info(name).shape;
  }

  /** Names of the source's tensors that some layer used (for checks that a builder consumed what it should). */
  usedNames(): string[] {
    return [...this.used];
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

  /** The tensor in checkpoint layout (a parameter input when trainable, else an initializer). */
  tensor(name: string): Value {
    const p = this.opts.params?.[name];
    if (p) {
      this.used.add(name);
      return p;
    }
    const hit = this.cache.get(name);
    if (hit) return hit;
    const shape = this.source.has(name) ? this.source.info(name).shape : null;
    const d = this.data(name);
    const dims = shape ?? [d.length];
    const v = this.g.initializer(name, this.dtype, dims, this.typed(d));
    this.cache.set(name, v);
    this.used.add(name);
    return v;
  }

  /** A 2-D weight [out, in] as the MatMul right operand [in, out]. */
  weightT(name: string): Value {
    const p = this.opts.params?.[name];
    if (p) {
      this.used.add(name);
      return this.g.op1('Transpose', [p], { perm: [1, 0] });
    }
    const key = `${name}.T`;
    const hit = this.cache.get(key);
    if (hit) return hit;
    const info = this.source.has(name) ? this.source.info(name) : null;
    const d = this.data(name);
    const shape = info?.shape;
    if (!shape || shape.length !== 2) throw new Error(`weights: "${name}" is not a matrix (shape ${JSON.stringify(shape)})`);
    const [o, i] = shape;
    const t = new Float32Array(o * i);
    for (let r = 0; r < o; r++) for (let c = 0; c < i; c++) t[c * o + r] = d[r * i + c];
    const v = this.g.initializer(key, this.dtype, [i, o], this.typed(t));
    this.cache.set(key, v);
    this.used.add(name);
    return v;
  }

  /** x [..., in] -> [..., out] through module `<module>.weight` (+ `<module>.bias` when present), plus its LoRA. */
  linear(x: Value, module: string, o: { bias?: boolean } = {}): Value {
    const g = this.g;
    const wname = `${module}.weight`;
    let y = g.op1('MatMul', [x, this.weightT(wname)]);
    const bname = `${module}.bias`;
    const wantBias = o.bias ?? this.has(bname);
    if (wantBias) y = g.op1('Add', [y, this.tensor(bname)]);
    const l = this.opts.lora?.get(module);
    if (l) {
      this.loraUsed.add(module);
      let xin = x;
      if (l.dropout && l.dropout > 0) xin = this.dropout(x, l.dropout);
      const at = g.op1('Transpose', [l.a], { perm: [1, 0] });
      const bt = g.op1('Transpose', [l.b], { perm: [1, 0] });
      let z = g.op1('MatMul', [g.op1('MatMul', [xin, at]), bt]);
      if (l.scaling !== 1) z = g.op1('Mul', [z, g.scalar(l.scaling, this.dtype)]);
      y = g.op1('Add', [y, z]);
    }
    return y;
  }

  /**
   * Inverted dropout x * mask / (1 - p). The mask is the second output of the standard Dropout op (training_mode =
   * true) applied to a ones tensor built from Shape(x), so the random branch never depends on a differentiated value
   * and needs no gradient rule. Measured on ORT 1.30 CPU: there are no opset-22 RandomUniform* / Bernoulli kernels,
   * and with optimization 'all' a Dropout whose mask output is unused is removed even in training mode, hence the
   * mask output. ORT advances the generator on every run: masks differ per step, not reproducible across sessions.
   */
  private dropout(x: Value, p: number): Value {
    const g = this.g;
    const one = this.dtype === 'float64' ? new Float64Array([1]) : new Float32Array([1]);
    const ones = g.op1('ConstantOfShape', [g.op1('Shape', [x])], { value: { dtype: this.dtype, dims: [1], data: one } }, { outTypes: [{ dtype: this.dtype, shape: x.shape }] });
    const seed = (this.opts.dropoutSeed ?? 0) * 1009 + this.dropoutCounter++;
    const [, keep] = g.op('Dropout', [ones, g.scalar(p, this.dtype), g.constant(true, 'bool', [])], { seed: attr.int(seed) }, { outputs: 2, outTypes: [{ dtype: this.dtype, shape: x.shape }, { dtype: 'bool', shape: x.shape }] });
    const scaled = g.op1('Mul', [g.op1('Cast', [keep], { to: this.dtype === 'float64' ? 11 : 1 }), g.scalar(1 / (1 - p), this.dtype)]);
    return g.op1('Mul', [x, scaled]);
  }
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
