// A float64 reference evaluator for built graphs, in plain JS, for the gradient rules of ops that ORT CPU has no
// double kernel for (Erf, exact Gelu, fused RotaryEmbedding): gradcheck({ evaluator: 'js' }) runs both the forward
// graph (finite differences) and the autodiff graph here in float64. It covers only the ops those graphs emit and
// throws naming any other op, so a check can never pass by skipping a node. gradcheck also runs every JS-evaluated
// graph once in float32 on ORT and compares, so the JS kernels below are held to ORT's definitions.

import type { Attr, Graph, Value } from '../../src-main/engine/graph/builder';
import { inMemoryData } from '../../src-main/engine/graph/builder';
import { DTYPE_FROM_ONNX } from '../../src-main/engine/graph/dtype';

export interface HostTensor {
  dims: number[];
  data: Float64Array;
}

/** erf(x) to a few ulp: (2/sqrt(pi)) e^(-x^2) sum_n (2x^2)^n x / (2n+1)!!, a series of positive terms (no cancellation). */
export function erf64(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (Math.abs(x) > 6) return Math.sign(x); // 1 - erf(6) < 3e-17
  const x2 = 2 * x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 500; n++) {
    term *= x2 / (2 * n + 1);
    sum += term;
    if (Math.abs(term) <= 1e-17 * Math.abs(sum)) break;
  }
  return (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x) * sum;
}

const size = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);
const strides = (dims: readonly number[]) => {
  const s = new Array<number>(dims.length).fill(1);
  for (let i = dims.length - 2; i >= 0; i--) s[i] = s[i + 1] * dims[i + 1];
  return s;
};

function broadcastDims(shapes: readonly (readonly number[])[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const v = s[s.length - rank + i] ?? 1;
      if (v !== 1) {
        if (d !== 1 && d !== v)
          throw new Error(`js-eval: cannot broadcast [${shapes.map((x) => `[${x}]`).join(', ')}]`);
        d = v;
      }
    }
    out.push(d);
  }
  return out;
}

/** Elementwise n-ary op with numpy broadcasting. */
function nary(ts: readonly HostTensor[], f: (...v: number[]) => number): HostTensor {
  const dims = broadcastDims(ts.map((t) => t.dims));
  const n = size(dims);
  const os = strides(dims);
  const maps = ts.map((t) => {
    const pad = dims.length - t.dims.length;
    const ts_ = strides(t.dims);
    return dims.map((d, i) => (i < pad || t.dims[i - pad] === 1 ? 0 : ts_[i - pad]));
  });
  const data = new Float64Array(n);
  const args = new Array<number>(ts.length);
  for (let k = 0; k < n; k++) {
    for (let j = 0; j < ts.length; j++) {
      let off = 0;
      let r = k;
      for (let i = 0; i < dims.length; i++) {
        const c = Math.floor(r / os[i]);
        r -= c * os[i];
        off += c * maps[j][i];
      }
      args[j] = ts[j].data[off];
    }
    data[k] = f(...args);
  }
  return { dims, data };
}

const unaryOp = (t: HostTensor, f: (v: number) => number): HostTensor => ({ dims: [...t.dims], data: t.data.map(f) });

function attrInt(attrs: Readonly<Record<string, Attr>>, name: string, dflt: number): number {
  const a = attrs[name];
  return a && a.type === 'int' ? Number(a.value) : dflt;
}
function attrString(attrs: Readonly<Record<string, Attr>>, name: string, dflt: string): string {
  const a = attrs[name];
  return a && a.type === 'string' ? a.value : dflt;
}

/** Round to the value's dtype: float32 results are rounded like a float32 kernel would store them. */
function store(v: Value, t: HostTensor): HostTensor {
  if (v.dtype === 'float32') return { dims: t.dims, data: t.data.map(Math.fround) };
  return t;
}

function reduceSum(x: HostTensor, axesIn: number[] | null, keepdims: boolean): HostTensor {
  const rank = x.dims.length;
  const axes = new Set((axesIn && axesIn.length ? axesIn : x.dims.map((_, i) => i)).map((a) => (a < 0 ? a + rank : a)));
  const outDims = x.dims.map((d, i) => (axes.has(i) ? 1 : d));
  const os = strides(outDims);
  const xs = strides(x.dims);
  const out = new Float64Array(size(outDims));
  for (let k = 0; k < x.data.length; k++) {
    let r = k;
    let off = 0;
    for (let i = 0; i < rank; i++) {
      const c = Math.floor(r / xs[i]);
      r -= c * xs[i];
      if (!axes.has(i)) off += c * os[i];
    }
    out[off] += x.data[k];
  }
  return { dims: keepdims ? outDims : x.dims.filter((_, i) => !axes.has(i)), data: out };
}

/** ONNX RotaryEmbedding (opset 23), 4-D x [B, heads, S, head] with cos/sin [B, S, rd/2], rotate_half pairing. */
function rotary(x: HostTensor, cos: HostTensor, sin: HostTensor, attrs: Readonly<Record<string, Attr>>): HostTensor {
  if (attrInt(attrs, 'interleaved', 0) !== 0)
    throw new Error('js-eval: RotaryEmbedding interleaved=1 is not implemented');
  if (x.dims.length !== 4) throw new Error(`js-eval: RotaryEmbedding wants a 4-D input (got [${x.dims}])`);
  const [B, H, S, D] = x.dims;
  const rd = attrInt(attrs, 'rotary_embedding_dim', 0) || D;
  const h = rd / 2;
  if (cos.dims.length !== 3 || cos.dims[0] !== B || cos.dims[1] !== S || cos.dims[2] !== h)
    throw new Error(`js-eval: RotaryEmbedding cos [${cos.dims}] does not match x [${x.dims}] (rotary dim ${rd})`);
  const out = Float64Array.from(x.data);
  for (let b = 0; b < B; b++)
    for (let hh = 0; hh < H; hh++)
      for (let s = 0; s < S; s++) {
        const base = ((b * H + hh) * S + s) * D;
        const cb = (b * S + s) * h;
        for (let i = 0; i < h; i++) {
          const c = cos.data[cb + i];
          const sn = sin.data[cb + i];
          const a = x.data[base + i];
          const z = x.data[base + i + h];
          out[base + i] = a * c - z * sn;
          out[base + i + h] = z * c + a * sn;
        }
      }
  return { dims: [...x.dims], data: out };
}

function castTo(to: number, t: HostTensor): HostTensor {
  const dt = DTYPE_FROM_ONNX[to];
  if (dt === 'float64') return t;
  if (dt === 'float32') return unaryOp(t, Math.fround);
  if (dt === 'int64' || dt === 'int32') return unaryOp(t, Math.trunc);
  if (dt === 'uint8') return unaryOp(t, (v) => Math.trunc(v) & 0xff);
  throw new Error(`js-eval: Cast to ${dt ?? to} is not implemented`);
}

/** a [..., M, K] @ b [K, N] (a right operand of rank 2, the only form the checked rules emit). */
function matmul2(a: HostTensor, b: HostTensor): HostTensor {
  if (b.dims.length !== 2) throw new Error('js-eval: MatMul with a right operand of rank != 2 is not implemented');
  const [K, N] = b.dims;
  if (a.dims[a.dims.length - 1] !== K) throw new Error(`js-eval: MatMul inner dims ${a.dims.at(-1)} vs ${K}`);
  const rows = a.data.length / K;
  const out = new Float64Array(rows * N);
  for (let r = 0; r < rows; r++)
    for (let k = 0; k < K; k++) {
      const av = a.data[r * K + k];
      for (let n = 0; n < N; n++) out[r * N + n] += av * b.data[k * N + n];
    }
  return { dims: [...a.dims.slice(0, -1), N], data: out };
}

function concat(ts: readonly HostTensor[], axisIn: number): HostTensor {
  const rank = ts[0].dims.length;
  const axis = axisIn < 0 ? axisIn + rank : axisIn;
  const outer = size(ts[0].dims.slice(0, axis));
  const inner = size(ts[0].dims.slice(axis + 1));
  const dims = [...ts[0].dims];
  dims[axis] = ts.reduce((a, t) => a + t.dims[axis], 0);
  const out = new Float64Array(size(dims));
  let at = 0;
  for (let o = 0; o < outer; o++)
    for (const t of ts) {
      const n = t.dims[axis] * inner;
      out.set(t.data.subarray(o * n, (o + 1) * n), at);
      at += n;
    }
  return { dims, data: out };
}

/** com.microsoft MatMulNBits without zero points: A [..., K] @ W^T, W [N, K] from unsigned blocks and scales. */
function matMulNBits(
  a: HostTensor,
  b: HostTensor,
  scales: HostTensor,
  attrs: Readonly<Record<string, Attr>>,
): HostTensor {
  const K = attrInt(attrs, 'K', 0);
  const N = attrInt(attrs, 'N', 0);
  const bits = attrInt(attrs, 'bits', 4);
  const bs = attrInt(attrs, 'block_size', 32);
  const nb = K / bs;
  const w = new Float64Array(K * N); // [K, N], the MatMul right operand
  for (let n = 0; n < N; n++)
    for (let k = 0; k < K; k++) {
      const i = n * K + k;
      const u = bits === 4 ? (i & 1 ? b.data[i >> 1] >> 4 : b.data[i >> 1] & 0x0f) - 8 : b.data[i] - 128;
      w[k * N + n] = u * scales.data[n * nb + Math.floor(k / bs)];
    }
  return matmul2(a, { dims: [K, N], data: w });
}

/** Evaluate the graph's outputs (or `fetch`, by output name) from `feeds` (by input name). */
export function evalGraph(
  g: Graph,
  feeds: Record<string, HostTensor>,
  fetch?: readonly string[],
): Record<string, HostTensor> {
  const vals = new Map<Value, HostTensor>();
  for (const v of g.inputs) {
    const f = feeds[v.name];
    if (!f) throw new Error(`js-eval: missing input '${v.name}'`);
    vals.set(v, f);
  }
  for (const [v, td] of g.initData) {
    const d = inMemoryData(td);
    if (!d) throw new Error(`js-eval: initializer '${v.name}' has no in-memory data`);
    vals.set(v, { dims: [...td.dims], data: Float64Array.from(d as ArrayLike<number | bigint>, Number) });
  }
  const get = (v: Value | null, what: string): HostTensor => {
    const t = v && vals.get(v);
    if (!t) throw new Error(`js-eval: ${what} has no value`);
    return t;
  };
  for (const n of g.nodes) {
    const ins = n.inputs.map((v, i) => (v ? get(v, `input ${i} of ${n.opType} '${n.name}'`) : null));
    const x = ins[0]!;
    let out: HostTensor;
    switch (n.opType) {
      case 'Add':
        out = nary([x, ins[1]!], (a, b) => a + b);
        break;
      case 'Sub':
        out = nary([x, ins[1]!], (a, b) => a - b);
        break;
      case 'Mul':
        out = nary([x, ins[1]!], (a, b) => a * b);
        break;
      case 'Div':
        out = nary([x, ins[1]!], (a, b) => a / b);
        break;
      case 'Sum':
        out = nary(ins as HostTensor[], (...v) => v.reduce((a, b) => a + b, 0));
        break;
      case 'Neg':
        out = unaryOp(x, (v) => -v);
        break;
      case 'Exp':
        out = unaryOp(x, Math.exp);
        break;
      case 'Identity':
        out = x;
        break;
      case 'Erf':
        out = unaryOp(x, erf64);
        break;
      case 'Gelu': {
        if (attrString(n.attrs, 'approximate', 'none') !== 'none')
          throw new Error('js-eval: only exact Gelu is implemented');
        out = unaryOp(x, (v) => 0.5 * v * (1 + erf64(v * Math.SQRT1_2)));
        break;
      }
      case 'RotaryEmbedding':
        if (ins[3]) throw new Error('js-eval: RotaryEmbedding with position_ids is not implemented');
        out = rotary(x, ins[1]!, ins[2]!, n.attrs);
        break;
      case 'ReduceSum': {
        if (attrInt(n.attrs, 'noop_with_empty_axes', 0))
          throw new Error('js-eval: ReduceSum noop_with_empty_axes is not implemented');
        out = reduceSum(x, ins[1] ? Array.from(ins[1].data) : null, attrInt(n.attrs, 'keepdims', 1) === 1);
        break;
      }
      case 'Reshape': {
        const want = Array.from(ins[1]!.data);
        const known = want.reduce((a, d, i) => a * (d === -1 ? 1 : d === 0 ? x.dims[i] : d), 1);
        out = { dims: want.map((d, i) => (d === -1 ? x.data.length / known : d === 0 ? x.dims[i] : d)), data: x.data };
        break;
      }
      case 'Cast':
        out = castTo(attrInt(n.attrs, 'to', 0), x);
        break;
      case 'MatMul':
        out = matmul2(x, ins[1]!);
        break;
      case 'MatMulNBits':
        if (ins.length > 3 && ins.slice(3).some(Boolean))
          throw new Error('js-eval: MatMulNBits with zero points / g_idx / bias is not implemented');
        out = matMulNBits(x, ins[1]!, ins[2]!, n.attrs);
        break;
      case 'BitwiseAnd':
        out = nary([x, ins[1]!], (a, b) => a & b);
        break;
      case 'BitwiseOr':
        out = nary([x, ins[1]!], (a, b) => a | b);
        break;
      case 'Shape': {
        if (n.attrs.start || n.attrs.end) throw new Error('js-eval: Shape with start / end is not implemented');
        out = { dims: [x.dims.length], data: Float64Array.from(x.dims) };
        break;
      }
      case 'ReduceMin': {
        if (ins[1] || attrInt(n.attrs, 'keepdims', 1) !== 0)
          throw new Error('js-eval: only ReduceMin over all axes without keepdims is implemented');
        out = { dims: [], data: Float64Array.of(Math.min(...x.data)) };
        break;
      }
      case 'BitShift':
        out = nary(
          [x, ins[1]!],
          attrString(n.attrs, 'direction', '') === 'RIGHT' ? (a, b) => a >>> b : (a, b) => (a << b) & 0xff,
        );
        break;
      case 'Unsqueeze': {
        const axes = Array.from(ins[1]!.data)
          .map((a) => (a < 0 ? a + x.dims.length + 1 : a))
          .sort((p, q) => p - q);
        const dims = [...x.dims];
        for (const a of axes) dims.splice(a, 0, 1);
        out = { dims, data: x.data };
        break;
      }
      case 'Concat':
        out = concat(ins as HostTensor[], attrInt(n.attrs, 'axis', 0));
        break;
      case 'Slice': {
        if (ins[4]) throw new Error('js-eval: Slice with steps is not implemented');
        const axes = ins[3] ? Array.from(ins[3].data) : Array.from(ins[1]!.data, (_, i) => i);
        let cur = x;
        axes.forEach((a0, i) => {
          const a = a0 < 0 ? a0 + cur.dims.length : a0;
          const d = cur.dims[a];
          const clamp = (v: number) => Math.max(0, Math.min(d, v < 0 ? v + d : v));
          const s0 = clamp(ins[1]!.data[i]);
          const e0 = Math.max(s0, clamp(ins[2]!.data[i]));
          const outer = size(cur.dims.slice(0, a));
          const inner = size(cur.dims.slice(a + 1));
          const dims = [...cur.dims];
          dims[a] = e0 - s0;
          const data = new Float64Array(size(dims));
          for (let o = 0; o < outer; o++)
            data.set(cur.data.subarray((o * d + s0) * inner, (o * d + e0) * inner), o * (e0 - s0) * inner);
          cur = { dims, data };
        });
        out = cur;
        break;
      }
      case 'Expand': {
        const dims = broadcastDims([x.dims, Array.from(ins[1]!.data)]);
        out = nary([x, { dims, data: new Float64Array(size(dims)) }], (a) => a);
        break;
      }
      case 'DequantizeLinear': {
        // per axis (a 1-D scale and zero point along `axis`) or blocked along the last axis (scale and zero point:
        // x's shape with that axis divided by block_size)
        const axis = attrInt(n.attrs, 'axis', 1);
        const bs = attrInt(n.attrs, 'block_size', 0);
        const [sc, zp] = [ins[1]!, ins[2]];
        if (!bs && sc.dims.length === 1) {
          const a = axis < 0 ? axis + x.dims.length : axis;
          const inner = x.dims.slice(a + 1).reduce((p, q) => p * q, 1);
          const len = x.dims[a];
          out = {
            dims: [...x.dims],
            data: x.data.map((v, i) => {
              const j = Math.floor(i / inner) % len;
              return (v - (zp ? zp.data[j] : 0)) * sc.data[j];
            }),
          };
          break;
        }
        if (!bs || axis !== x.dims.length - 1)
          throw new Error('js-eval: DequantizeLinear is implemented per axis or blocked along the last axis');
        const last = x.dims[axis];
        const nbl = sc.dims[axis];
        out = {
          dims: [...x.dims],
          data: x.data.map((v, i) => {
            const j = Math.floor(i / last) * nbl + Math.floor((i % last) / bs);
            return (v - (zp ? zp.data[j] : 0)) * sc.data[j];
          }),
        };
        break;
      }
      case 'CastLike': {
        const target = n.inputs[1]!.dtype;
        out =
          target === 'float64'
            ? x
            : target === 'float32'
              ? unaryOp(x, Math.fround)
              : (() => {
                  throw new Error(`js-eval: CastLike to ${target} is not implemented`);
                })();
        break;
      }
      default:
        throw new Error(`js-eval: op '${n.opType}' (node '${n.name}') has no float64 JS kernel`);
    }
    if (n.outputs.length !== 1)
      throw new Error(`js-eval: ${n.opType} with ${n.outputs.length} outputs is not implemented`);
    vals.set(n.outputs[0], store(n.outputs[0], out));
  }
  const res: Record<string, HostTensor> = {};
  for (const o of g.outputs) if (!fetch || fetch.includes(o.name)) res[o.name] = get(o, `output '${o.name}'`);
  return res;
}
