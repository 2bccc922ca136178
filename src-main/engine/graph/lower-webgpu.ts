// Lowering of a finished graph (forward + backward + optimizer) to ops that ONNX Runtime 1.30's WebGPU execution
// provider has kernels for. Run on the graph just before it is serialized for a WebGPU session; CPU graphs are never
// touched, so their numerics and speed stay what they are.
//
// Rewrites (each node replaced in place, its output values kept, so consumers, graph outputs and gradient nodes built
// from them are unchanged):
//   Attention (opset 23)         MatMul + Softmax composite with GQA as a grouped reshape (no KV repetition), the
//                                KV-cache concat, an additive mask, a causal mask, and the probabilities output
//   SoftmaxCrossEntropyLoss      ReduceMax / Exp / ReduceSum / Log (log-softmax) + GatherElements of the labels, the
//                                ignore_index as a float weight (LogSoftmax and NegativeLogLikelihoodLoss have no kernel)
//   Sum                          a chain of Add
//   Equal (int vs big constant)  compared in float32 on the device (the loss gradient's one-hot, see lowerEqual)
// Integer bookkeeping (positions, masks, dropout hashes, shape arithmetic) is not lowered here: graph/split.ts moves
// it to a CPU prologue graph, since the WebGPU provider has no int64 / bit kernels for most of it.

import type { Graph, Node, Value } from './builder';
import type { DType } from './dtype';
import { DEVICE_ONLY } from './split';

const ONNX_FLOAT: Partial<Record<DType, number>> = { float32: 1, float16: 10, float64: 11 };

function aInt(n: Node, name: string, dflt: number): number {
  const a = n.attrs[name];
  return a && a.type === 'int' ? Number(a.value) : dflt;
}
function aFloat(n: Node, name: string, dflt: number): number {
  const a = n.attrs[name];
  return a && a.type === 'float' ? a.value : dflt;
}
function aString(n: Node, name: string, dflt: string): string {
  const a = n.attrs[name];
  return a && a.type === 'string' ? a.value : dflt;
}

/** Make `target` (an existing value, e.g. a graph output) the output of an Identity of `src`. */
function bind(g: Graph, src: Value, target: Value): void {
  const node: Node = {
    id: -1,
    opType: 'Identity',
    domain: '',
    name: g.freshName('lowered_Identity'),
    inputs: [src],
    outputs: [target],
    attrs: {},
  };
  g.nodes.push(node);
}

function lowerAttention(g: Graph, n: Node): void {
  const [Q, K, V, M, PK, PV] = n.inputs as (Value | null)[];
  if (n.inputs.length > 6 && n.inputs.slice(6).some(Boolean))
    throw new Error(`lower for webgpu: ${n.name}: nonpad_kv_seqlen is not supported`);
  if (aFloat(n, 'softcap', 0) !== 0) throw new Error(`lower for webgpu: ${n.name}: softcap is not supported`);
  const qs = Q!.shape;
  const ks = K!.shape;
  if (!qs || !ks || qs.length !== 4 || ks.length !== 4)
    throw new Error(`lower for webgpu: ${n.name}: only the 4-D [B, heads, S, head_dim] layout is supported`);
  const H = qs[1];
  const Hkv = ks[1];
  const d = qs[3];
  if (typeof H !== 'number' || typeof Hkv !== 'number' || typeof d !== 'number')
    throw new Error(`lower for webgpu: ${n.name}: head counts and head_dim must be static`);
  const dt = Q!.dtype;
  const scale = aFloat(n, 'scale', 1 / Math.sqrt(d));
  const causal = aInt(n, 'is_causal', 0) === 1;
  const mode = aInt(n, 'qk_matmul_output_mode', 0);
  if (n.outputs.length > 3 && mode !== 3)
    throw new Error(`lower for webgpu: ${n.name}: qk_matmul_output_mode ${mode} is not supported`);
  const Kt = PK ? g.op1('Concat', [PK, K!], { axis: 2 }) : K!;
  const Vt = PV ? g.op1('Concat', [PV, V!], { axis: 2 }) : V!;
  const grouped = (x: Value) => (H === Hkv ? x : g.op1('Reshape', [x, g.ints([0, Hkv, -1, 0])])); // [B,H,S,x] -> [B,Hkv,G*S,x]
  const perHead = (x: Value) => (H === Hkv ? x : g.op1('Reshape', [x, g.ints([0, H, -1, 0])]));
  let s = perHead(
    g.op1('Mul', [
      g.op1('MatMul', [grouped(Q!), g.op1('Transpose', [Kt], { perm: [0, 1, 3, 2] })]),
      g.scalar(scale, dt),
    ]),
  );
  if (M) {
    const add =
      M.dtype === 'bool' ? g.op1('Where', [M, g.scalar(0, dt), g.scalar(dt === 'float16' ? -3e4 : -1e9, dt)]) : M;
    s = g.op1('Add', [s, add]);
  }
  if (causal) {
    // bottom-right aligned: query i sees keys j <= i + L - S (lengths from the run-time shapes; split.ts computes them)
    const len = (v: Value) => g.op1('Squeeze', [g.op1('Shape', [v], { start: 2, end: 3 }), g.ints([0])]);
    const S = len(Q!);
    const L = len(Kt);
    const zero = g.constant(0, 'int64', []);
    const one = g.constant(1, 'int64', []);
    const rows = g.op1('Range', [zero, S, one], {}, { outTypes: [{ dtype: 'int64', shape: ['?'] }] });
    const cols = g.op1('Range', [zero, L, one], {}, { outTypes: [{ dtype: 'int64', shape: ['?'] }] });
    const lim = g.op1('Unsqueeze', [g.op1('Add', [rows, g.op1('Sub', [L, S])]), g.ints([1])]);
    const allowed = g.op1('LessOrEqual', [g.op1('Unsqueeze', [cols, g.ints([0])]), lim]);
    s = g.op1('Add', [s, g.op1('Where', [allowed, g.scalar(0, dt), g.scalar(dt === 'float16' ? -3e4 : -1e9, dt)])]);
  }
  const p = g.op1('Softmax', [s], { axis: -1 });
  const y = perHead(g.op1('MatMul', [grouped(p), Vt]));
  bind(g, y, n.outputs[0]);
  if (n.outputs[1]) bind(g, Kt, n.outputs[1]);
  if (n.outputs[2]) bind(g, Vt, n.outputs[2]);
  if (n.outputs[3]) bind(g, p, n.outputs[3]);
}

function lowerSoftmaxCrossEntropy(g: Graph, n: Node): void {
  const [x, labels, weights] = n.inputs as (Value | null)[];
  if (weights) throw new Error(`lower for webgpu: ${n.name}: class weights are not supported`);
  const dt = x!.dtype;
  const to = ONNX_FLOAT[dt];
  if (to === undefined) throw new Error(`lower for webgpu: ${n.name}: scores must be float (got ${dt})`);
  const red = aString(n, 'reduction', 'mean');
  const ignore = n.attrs.ignore_index ? aInt(n, 'ignore_index', -100) : null;
  const axis1 = g.ints([1]);
  const z = g.op1('Sub', [x!, g.op1('ReduceMax', [x!, axis1], { keepdims: 1 })]);
  const logp = g.op1('Sub', [z, g.op1('Log', [g.op1('ReduceSum', [g.op1('Exp', [z]), axis1], { keepdims: 1 })])]);
  let lab = labels!;
  let valid: Value | null = null;
  if (ignore !== null) {
    const isIgnored = g.op1('Equal', [labels!, g.constant(ignore, labels!.dtype, [])]);
    lab = g.op1('Where', [isIgnored, g.constant(0, labels!.dtype, []), labels!]);
    valid = g.op1('Cast', [g.op1('Not', [isIgnored])], { to });
  }
  const picked = g.op1('Squeeze', [
    g.op1('GatherElements', [logp, g.op1('Unsqueeze', [lab, axis1])], { axis: 1 }),
    axis1,
  ]);
  let nll = g.op1('Neg', [picked]);
  if (valid) nll = g.op1('Mul', [nll, valid]);
  let loss: Value;
  if (red === 'none') loss = nll;
  else if (red === 'sum') loss = g.op1('ReduceSum', [nll], { keepdims: 0 });
  else {
    const count = valid
      ? g.op1('ReduceSum', [valid], { keepdims: 0 })
      : g.op1('Cast', [g.op1('Size', [labels!])], { to });
    loss = g.op1('Div', [g.op1('ReduceSum', [nll], { keepdims: 0 }), count]);
  }
  bind(g, loss, n.outputs[0]);
  if (n.outputs[1]) bind(g, logp, n.outputs[1]);
}

function lowerSum(g: Graph, n: Node): void {
  const ins = n.inputs.filter((x): x is Value => !!x);
  let acc = ins[0];
  for (const x of ins.slice(1)) acc = g.op1('Add', [acc, x]);
  bind(g, acc, n.outputs[0]);
}

/**
 * Equal of integers against a large integer constant (the loss gradient's one-hot: labels [N, 1] vs classes [1, V])
 * compared in float32 on the device (exact below 2^24) instead of on the CPU prologue, which would upload an [N, V]
 * result every step. Other Equals are left alone (split.ts runs them on the CPU).
 */
function lowerEqual(g: Graph, n: Node): boolean {
  const [a, b] = n.inputs as Value[];
  const big = (v: Value) =>
    v.kind === 'initializer' && !!v.constValue && v.constValue.dims.reduce((x, y) => x * y, 1) > 64;
  if (!a || !b || (a.dtype !== 'int64' && a.dtype !== 'int32') || a.dtype !== b.dtype || (!big(a) && !big(b)))
    return false;
  const f = (v: Value) => {
    if (!big(v)) return g.op1('Cast', [v], { to: 1 });
    const c = g.constant(
      Float32Array.from(v.constValue!.data as ArrayLike<number | bigint>, Number),
      'float32',
      v.constValue!.dims,
    );
    DEVICE_ONLY.add(c);
    return c;
  };
  bind(g, g.op1('Equal', [f(a), f(b)]), n.outputs[0]);
  return true;
}

const RULES: Record<string, (g: Graph, n: Node) => void | boolean> = {
  Equal: lowerEqual,
  Attention: lowerAttention,
  SoftmaxCrossEntropyLoss: lowerSoftmaxCrossEntropy,
  Sum: lowerSum,
};

/**
 * Rewrite `g` in place for the WebGPU provider (see the header). Returns the number of nodes replaced. Subgraphs
 * (If/Loop bodies) are not visited: the model graphs have none.
 */
export function lowerForWebGpu(g: Graph): number {
  if (g.parent) throw new Error('lowerForWebGpu: pass the root graph');
  const old = g.nodes.splice(0);
  let count = 0;
  for (const n of old) {
    const rule = n.domain === '' ? RULES[n.opType] : undefined;
    if (!rule) {
      g.nodes.push(n);
      continue;
    }
    if (rule(g, n) === false)
      g.nodes.push(n); // a rule may decline; else its nodes are appended at this node's place
    else count++;
  }
  return count;
}
