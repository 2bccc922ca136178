// Weight-only quantization of frozen weights for inference graphs, in standard ONNX ops that ONNX Runtime's CPU EP
// fuses into its integer kernels (checked in an optimized-model dump, tests/models/quantize.test.ts):
//   int4  DequantizeLinear(int4 [in, out], scales [in/32, out], axis 0, block_size 32) -> MatMul, fused to
//         MatMulNBits (4 bits, block 32; session config session.qdq_matmulnbits_accuracy_level 4: int8 compute with
//         VNNI). The blocks are ggml's Q4_0 exactly (d = max / -8 stored as f16, q = trunc(x / d + 8.5) - 8), so an
//         int4 Lenslab model holds the very weights of its Q4_0 GGUF export.
//   int8  u8 x s8: DynamicQuantizeLinear(x) -> MatMulInteger(x_u8, W_s8 [in, out], x_zp) -> Cast -> Mul by
//         x_scale * w_scale[out], fused to DynamicQuantizeMatMul; symmetric per-output-channel scales (amax / 127).
// Token embeddings are int8 rows with one scale per row (Gather on int8, then Cast and Mul), so a quantized model
// holds no float copy of its vocabulary table; the LM head is a quantized matmul like any other layer.
// Layers whose input size is not a multiple of 32 stay float32 under int4.
//
// Training graphs (a quantized frozen base under float32 LoRA, QLoRA-style) need dX through every frozen matmul, so
// they use another form (frozenMatMulNBits): the weight is stored once, as MatMulNBits' own packed blocks along the
// input axis (int4: Q4_0 blocks as above, stored q + 8; int8: ggml's Q8_0 blocks, d = amax / 127 as f16, stored
// q + 128), and the forward is an explicit com.microsoft MatMulNBits node (ORT's kernel; accuracy level 0, float32
// compute on the unpacked blocks: exact, and on the 0.45B LLaVA's step 4.0 s against 4.2 s at level 4, whose int8
// compute with VNNI does not beat ORT's float GEMM at training's row counts). The DequantizeLinear -> MatMul form is not used there: ORT fuses it only while the int4 initializer has
// no other reader, and the backward must read the same weight (a second DequantizeLinear of it, or one shared with
// the forward, stays unfused: float GEMM plus a dequantization, and a shared one keeps every float weight alive
// until the backward). The backward (engine/ops/quantized.ts) unpacks the same bytes with standard ops (BitwiseAnd,
// BitShift, Concat, a per-axis DequantizeLinear) into the float weight [out, in] and multiplies: dX = dY W. Measured on a 1024x2816
// layer, 426 rows, forward + dX, 2 threads: float32 Gemm 106 ms, DequantizeLinear (unfused) 157 ms, MatMulNBits +
// unpack 73 ms (one-off measurement on a loaded machine: ratios only).
import type { Graph, Value } from '../engine/graph/builder';
import { f16BitsToF32, f32ToF16Bits } from './weights/dtype';

export const QUANT_SCHEMES = ['none', 'int8', 'int4'] as const;
export type QuantScheme = (typeof QUANT_SCHEMES)[number];
/** Bump when the quantized layout or arithmetic changes: cached graphs of an older scheme are rebuilt, never read. */
export const QUANT_SCHEME_VERSION = 1;
/** The version cache keys name: QUANT_SCHEME_VERSION (tests change it to check that older entries are rebuilt). */
export const quantKeyVersion = { current: QUANT_SCHEME_VERSION };

/**
 * What names a quantized frozen base in cache keys (training graphs, cached image features): the scheme and its
 * version, so an entry of another scheme or version is rebuilt, never read. Empty for a float base (keys as before).
 */
export function quantCacheKey(scheme: QuantScheme): { quantizeBase?: QuantScheme; quantVersion?: number } {
  return scheme === 'none' ? {} : { quantizeBase: scheme, quantVersion: quantKeyVersion.current };
}
export const INT4_BLOCK = 32;

/** Session config for graphs with int4 weights: MatMulNBits computes in int8 (accuracy level 4, VNNI on x86). */
export const QUANT_SESSION_CONFIG: Record<string, string> = { 'session.qdq_matmulnbits_accuracy_level': '4' };

export function parseQuantScheme(v: unknown, what = 'quantize'): QuantScheme {
  if (v === undefined || v === null) return 'none';
  if (typeof v === 'string' && (QUANT_SCHEMES as readonly string[]).includes(v)) return v as QuantScheme;
  throw new Error(`${what} must be one of ${QUANT_SCHEMES.join(', ')}, got ${JSON.stringify(v)}`);
}

/**
 * int4 blocks of a weight W [out, in] (checkpoint layout) for the MatMul right operand [in, out]: `packed` holds the
 * int4 values of [in, out] row-major, two per byte (low nibble first), `scales` [in/32, out].
 */
export function quantizeInt4(w: Float32Array, out: number, inn: number): { packed: Uint8Array; scales: Float32Array } {
  if (inn % INT4_BLOCK) throw new Error(`int4 needs an input size that is a multiple of ${INT4_BLOCK}, got ${inn}`);
  const nb = inn / INT4_BLOCK;
  const packed = new Uint8Array(Math.ceil((inn * out) / 2));
  const scales = new Float32Array(nb * out);
  for (let o = 0; o < out; o++) {
    const row = o * inn;
    for (let b = 0; b < nb; b++) {
      let amax = 0;
      let max = 0;
      for (let j = 0; j < INT4_BLOCK; j++) {
        const v = w[row + b * INT4_BLOCK + j];
        if (amax < Math.abs(v)) {
          amax = Math.abs(v);
          max = v;
        }
      }
      const d = Math.fround(max / -8);
      const id = d ? Math.fround(1 / d) : 0;
      scales[b * out + o] = f16BitsToF32(f32ToF16Bits(d));
      for (let j = 0; j < INT4_BLOCK; j++) {
        const k = b * INT4_BLOCK + j;
        const q = Math.min(15, Math.trunc(Math.fround(Math.fround(w[row + k] * id) + 8.5))) - 8;
        const idx = k * out + o;
        const nib = q & 0x0f;
        packed[idx >> 1] |= idx & 1 ? nib << 4 : nib;
      }
    }
  }
  return { packed, scales };
}

/** int8 of W [out, in] as [in, out] with one symmetric scale per output channel (amax / 127). */
export function quantizeInt8(w: Float32Array, out: number, inn: number): { q: Int8Array; scales: Float32Array } {
  const q = new Int8Array(inn * out);
  const scales = new Float32Array(out);
  for (let o = 0; o < out; o++) {
    const row = o * inn;
    let amax = 0;
    for (let k = 0; k < inn; k++) amax = Math.max(amax, Math.abs(w[row + k]));
    const d = amax / 127;
    scales[o] = d;
    const id = d ? 1 / d : 0;
    for (let k = 0; k < inn; k++) q[k * out + o] = Math.max(-127, Math.min(127, Math.round(w[row + k] * id)));
  }
  return { q, scales };
}

/** int8 rows of a table [rows, cols] (no transpose), one scale per row: for Gather. */
export function quantizeRows(w: Float32Array, rows: number, cols: number): { q: Int8Array; scales: Float32Array } {
  const q = new Int8Array(rows * cols);
  const scales = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let amax = 0;
    for (let c = 0; c < cols; c++) amax = Math.max(amax, Math.abs(w[r * cols + c]));
    const d = amax / 127;
    scales[r] = d;
    const id = d ? 1 / d : 0;
    for (let c = 0; c < cols; c++) q[r * cols + c] = Math.round(w[r * cols + c] * id);
  }
  return { q, scales };
}

/**
 * MatMulNBits' blocks of a weight W [out, in] (checkpoint layout): `packed` [out, in/32, 32 * bits / 8] bytes,
 * unsigned (q + 8 for 4 bits, low nibble first; q + 128 for 8 bits), `scales` [out * in/32] (f16-rounded). 4 bits are
 * ggml's Q4_0 values (d = max / -8, q = trunc(x / d + 8.5) - 8), 8 bits Q8_0's (d = amax / 127, q = round(x / d)).
 */
export function quantizeNBits(
  w: Float32Array,
  out: number,
  inn: number,
  bits: 4 | 8,
): { packed: Uint8Array; scales: Float32Array } {
  if (inn % INT4_BLOCK)
    throw new Error(`${bits}-bit blocks need an input size that is a multiple of ${INT4_BLOCK}, got ${inn}`);
  const nb = inn / INT4_BLOCK;
  const packed = new Uint8Array((out * inn * bits) / 8);
  const scales = new Float32Array(out * nb);
  for (let o = 0; o < out; o++)
    for (let b = 0; b < nb; b++) {
      const at = o * inn + b * INT4_BLOCK;
      let amax = 0;
      let max = 0;
      for (let j = 0; j < INT4_BLOCK; j++) {
        const v = w[at + j];
        if (amax < Math.abs(v)) {
          amax = Math.abs(v);
          max = v;
        }
      }
      if (bits === 4) {
        const d = Math.fround(max / -8);
        const id = d ? Math.fround(1 / d) : 0;
        scales[o * nb + b] = f16BitsToF32(f32ToF16Bits(d));
        for (let j = 0; j < INT4_BLOCK; j++) {
          const u = Math.min(15, Math.trunc(Math.fround(Math.fround(w[at + j] * id) + 8.5)));
          const idx = at + j;
          packed[idx >> 1] |= idx & 1 ? u << 4 : u;
        }
      } else {
        const d = Math.fround(amax / 127);
        const id = d ? Math.fround(1 / d) : 0;
        scales[o * nb + b] = f16BitsToF32(f32ToF16Bits(d));
        for (let j = 0; j < INT4_BLOCK; j++)
          packed[at + j] = Math.max(-127, Math.min(127, Math.round(w[at + j] * id))) + 128;
      }
    }
  return { packed, scales };
}

/** The float values of quantizeNBits' blocks, [out, in] row-major (what the training graph's backward multiplies by). */
export function dequantizeNBits(
  packed: Uint8Array,
  scales: Float32Array,
  out: number,
  inn: number,
  bits: 4 | 8,
): Float32Array {
  const w = new Float32Array(out * inn);
  const nb = inn / INT4_BLOCK;
  for (let i = 0; i < w.length; i++) {
    const u = bits === 4 ? (i & 1 ? packed[i >> 1] >> 4 : packed[i >> 1] & 0x0f) - 8 : packed[i] - 128;
    w[i] = u * scales[Math.floor(i / inn) * nb + Math.floor((i % inn) / INT4_BLOCK)];
  }
  return w;
}

/** Why a frozen matrix [out, in] keeps float32 under `scheme`, or null when it can be quantized. */
export function quantizeFallbackReason(shape: readonly number[], scheme: QuantScheme): string | null {
  if (scheme === 'none') return null;
  if (shape.length !== 2) return `not a matrix (shape [${shape.join(', ')}])`;
  if (shape[1] % INT4_BLOCK) return `input size ${shape[1]} is not a multiple of ${INT4_BLOCK}`;
  return null;
}

/** MatMulNBits' accuracy level in training graphs: 0 (default) = float32 compute; 4 = int8 compute (VNNI). */
export interface NBitsOptions {
  accuracyLevel?: 0 | 1 | 4;
}

/**
 * x [..., in] @ W^T for a frozen W [out, in] read by `read` when the graph is written, as MatMulNBits with `bits`
 * (int4 / int8 blocks of 32 along `in`) and a gradient for x (engine/ops/quantized.ts). Returns null when the layer
 * cannot take the blocks (in % 32 != 0): the caller uses float32 for that tensor.
 */
export function frozenMatMulNBits(
  g: Graph,
  x: Value,
  name: string,
  out: number,
  inn: number,
  scheme: 'int8' | 'int4',
  read: () => Float32Array,
  o: NBitsOptions = {},
): Value | null {
  if (inn % INT4_BLOCK) return null;
  const bits = scheme === 'int4' ? 4 : 8;
  const nb = inn / INT4_BLOCK;
  const get = shared(() => quantizeNBits(read(), out, inn, bits), 2);
  const b = g.initializer(`${name}.q${bits}`, 'uint8', [out, nb, (INT4_BLOCK * bits) / 8], {
    lazy: { read: () => get('packed') },
  });
  const sc = g.initializer(`${name}.q${bits}_scale`, 'float32', [out * nb], { lazy: { read: () => get('scales') } });
  g.useDomain('com.microsoft', 1);
  const outShape = x.shape ? [...x.shape.slice(0, -1), out] : null;
  return g.op1(
    'MatMulNBits',
    [x, b, sc],
    { K: inn, N: out, bits, block_size: INT4_BLOCK, accuracy_level: o.accuracyLevel ?? 0 },
    { domain: 'com.microsoft', outTypes: [{ dtype: 'float32', shape: outShape }] },
  );
}

/** Values computed once from one read of the weight and handed out piece by piece (then dropped). */
function shared<T extends Record<string, ArrayBufferView>>(
  compute: () => T,
  parts: number,
): (k: keyof T) => T[keyof T] {
  let cache: T | null = null;
  let left = parts;
  return (k) => {
    cache ??= compute();
    const v = cache[k];
    if (--left === 0) cache = null;
    return v;
  };
}

/**
 * x [..., in] @ W^T for a frozen W [out, in] read by `read` when the graph is written, quantized by `scheme`.
 * Returns null when the layer cannot take the scheme (int4 with in % 32 != 0): the caller uses float32.
 */
export function quantizedMatMul(
  g: Graph,
  x: Value,
  name: string,
  out: number,
  inn: number,
  scheme: 'int8' | 'int4',
  read: () => Float32Array,
): Value | null {
  const outShape = x.shape ? [...x.shape.slice(0, -1), out] : null;
  if (scheme === 'int4') {
    if (inn % INT4_BLOCK) return null;
    const get = shared(() => quantizeInt4(read(), out, inn), 2);
    const wq = g.initializer(`${name}.int4`, 'int4', [inn, out], { lazy: { read: () => get('packed') } });
    const sc = g.initializer(`${name}.int4_scale`, 'float32', [inn / INT4_BLOCK, out], {
      lazy: { read: () => get('scales') },
    });
    const w = g.op1(
      'DequantizeLinear',
      [wq, sc],
      { axis: 0, block_size: INT4_BLOCK },
      { outTypes: [{ dtype: 'float32', shape: [inn, out] }] },
    );
    return g.op1('MatMul', [x, w], {}, { outTypes: [{ dtype: 'float32', shape: outShape }] });
  }
  const get = shared(() => quantizeInt8(read(), out, inn), 2);
  const wq = g.initializer(`${name}.int8`, 'int8', [inn, out], { lazy: { read: () => get('q') } });
  const sc = g.initializer(`${name}.int8_scale`, 'float32', [out], { lazy: { read: () => get('scales') } });
  const [xq, xs, xz] = g.op(
    'DynamicQuantizeLinear',
    [x],
    {},
    {
      outputs: 3,
      outTypes: [
        { dtype: 'uint8', shape: x.shape },
        { dtype: 'float32', shape: [] },
        { dtype: 'uint8', shape: [] },
      ],
    },
  );
  const acc = g.op1('MatMulInteger', [xq, wq, xz], {}, { outTypes: [{ dtype: 'int32', shape: outShape }] });
  const f = g.op1('Cast', [acc], { to: 1 }, { outTypes: [{ dtype: 'float32', shape: outShape }] });
  return g.op1('Mul', [f, g.op1('Mul', [xs, sc])]);
}

/** Gather rows of a frozen table [rows, cols] stored as int8 rows + per-row scales. */
export function quantizedGather(
  g: Graph,
  name: string,
  rows: number,
  cols: number,
  ids: Value,
  read: () => Float32Array,
): Value {
  const get = shared(() => quantizeRows(read(), rows, cols), 2);
  const tq = g.initializer(`${name}.rows_int8`, 'int8', [rows, cols], { lazy: { read: () => get('q') } });
  const sc = g.initializer(`${name}.rows_scale`, 'float32', [rows, 1], { lazy: { read: () => get('scales') } });
  const outShape = ids.shape ? [...ids.shape, cols] : null;
  const q = g.op1('Gather', [tq, ids], { axis: 0 }, { outTypes: [{ dtype: 'int8', shape: outShape }] });
  const s = g.op1(
    'Gather',
    [sc, ids],
    { axis: 0 },
    { outTypes: [{ dtype: 'float32', shape: ids.shape ? [...ids.shape, 1] : null }] },
  );
  return g.op1('Mul', [g.op1('Cast', [q], { to: 1 }, { outTypes: [{ dtype: 'float32', shape: outShape }] }), s]);
}
