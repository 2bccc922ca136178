// Scaled dot-product multi-head attention with grouped KV heads, padding masks, causal masking and a KV cache, as the
// standard opset-23 `Attention` op, plus its gradient rule.
//
// Why the fused op (ORT 1.30 CPU, 1 thread, float32, q [1,14,S,64], k/v [1,2,S,64], causal; min of 60 interleaved runs on
// a shared, loaded 2-core machine, so +-20% noise; scratch bench, not committed): forward, S = 512: Attention 8.2-9.8 ms
// vs a primitive composite (grouped MatMul/Softmax/MatMul, no KV repetition) 8.4-8.7 ms; forward+backward: Attention +
// this rule 31-58 ms, with saveProbs 38-45 ms, composite differentiated by autodiff 29-64 ms; S = 1024: 126 / 109 / 110
// ms. Speed is a wash; the op wins on memory (the rule recomputes the probabilities instead of keeping every layer's
// [B, H, S, L] tensor until the backward: ~58 MB per layer for 14 heads at S = 1024 in float32), on the KV cache
// (concat built in) and on graph size. ORT runs it in float32 (a kernel) and float64 (the ONNX function body), with
// GQA (query head h uses KV head floor(h / (n_heads / n_kv_heads)), as transformers' repeat_kv) and past_key/
// past_value (present = concat(past, new) along the sequence; is_causal aligned bottom-right: query t sees keys
// 0..P+t). ORT quirks handled here: the CPU kernel wants the mask's query axis to be S (no broadcast there), and the
// float64 function body fails to load with is_causal plus a mask, so with a padding mask the causal part is folded into
// one additive [B, 1, S, L] mask shared by all layers.
//
// The gradient rule works on the grouped layout [B, n_kv, G*S, d], so KV heads are never repeated and their gradients
// sum over the group inside the MatMuls. With `saveProbs` the forward also outputs the probabilities
// (qk_matmul_output_mode 3) and the rule reuses them (one MatMul + Softmax less, more memory).
//
// Masks are additive and finite (-1e9 in float32/float64, -3e4 in float16), never -inf: a fully padded query row (left
// padding under a causal mask) gives a finite, meaningless row instead of NaN (its loss is ignored anyway).

import type { Dim, Graph, Value } from '../graph/builder';
import type { DType } from '../graph/dtype';
import { aFloat, aInt, registerOp, type GradContext } from './registry';
import { graphOf, knownShape } from './util';

/** The additive value of a masked position for `dtype`. */
export function maskValue(dtype: DType): number {
  return dtype === 'float16' || dtype === 'bfloat16' ? -3e4 : -1e9;
}

const ONNX_FLOAT: Partial<Record<DType, number>> = { float32: 1, float16: 10, float64: 11, bfloat16: 16 };

const paddingMasks = new WeakMap<Value, Map<DType, Value>>();

/**
 * Additive padding mask [B, 1, 1, L] of `dtype` from an attention_mask [B, L] (1 keep, 0 pad; int64, int32, bool or
 * float), L = past + current length. Memoized per mask value and dtype, so all layers share one.
 */
export function paddingMask(attentionMask: Value, dtype: DType): Value {
  let byType = paddingMasks.get(attentionMask);
  if (!byType) paddingMasks.set(attentionMask, (byType = new Map()));
  const hit = byType.get(dtype);
  if (hit) return hit;
  const s = attentionMask.shape;
  if (s && s.length !== 2)
    throw new Error(`paddingMask: attention mask '${attentionMask.name}' must be [B, L] (got [${s}])`);
  const to = ONNX_FLOAT[dtype];
  if (to === undefined) throw new Error(`paddingMask: dtype must be a float type (got ${dtype})`);
  const g = attentionMask.graph;
  const cdt: DType = dtype === 'float64' ? 'float64' : 'float32'; // half types: built in float32, cast at the end
  const m = attentionMask.dtype === cdt ? attentionMask : g.op1('Cast', [attentionMask], { to: ONNX_FLOAT[cdt]! });
  // (1 - m) * maskValue, then [B, 1, 1, L]
  let add = g.op1('Mul', [g.op1('Sub', [g.scalar(1, cdt), m]), g.scalar(maskValue(dtype), cdt)]);
  if (cdt !== dtype) add = g.op1('Cast', [add], { to });
  const out = g.op1('Unsqueeze', [add, g.ints([1, 2])]);
  byType.set(dtype, out);
  return out;
}

export interface AttentionOptions {
  /** Causal (decoder) masking: query t sees keys 0..P+t. Default false (vision towers). */
  causal?: boolean;
  /**
   * Padding: an attention_mask [B, L] (1 keep, 0 pad; converted with paddingMask), or an additive float mask already
   * broadcastable to [B, n_heads, S, L] (e.g. paddingMask's [B, 1, 1, L]).
   */
  mask?: Value | null;
  /** KV cache [B, n_kv_heads, P, head_dim]; both or neither. The result then has presentKey/presentValue. */
  pastKey?: Value | null;
  pastValue?: Value | null;
  /** Default 1/sqrt(head_dim). */
  scale?: number;
  /**
   * Also output the probabilities [B, n_heads, S, L] (qk_matmul_output_mode 3) so the backward reuses them instead of
   * recomputing: faster training, but every layer's probabilities stay in memory until the backward. Training only.
   */
  saveProbs?: boolean;
}

export interface AttentionResult {
  /** [B, n_heads, S, head_dim] */
  out: Value;
  /** concat(pastKey, k) / concat(pastValue, v) along the sequence axis: [B, n_kv_heads, P + S, head_dim]. */
  presentKey?: Value;
  presentValue?: Value;
}

/**
 * softmax(q k^T * scale + mask) v per head, q [B, n_heads, S, head_dim], k/v [B, n_kv_heads, S, head_dim] with
 * n_kv_heads dividing n_heads (grouped-query attention).
 */
export function attention(q: Value, k: Value, v: Value, o: AttentionOptions = {}): AttentionResult {
  const g = graphOf(q, k, v, o.mask, o.pastKey, o.pastValue);
  const name = `attention('${q.name}')`;
  if (g.opset < 23) throw new Error(`${name}: Attention needs opset >= 23 (graph has ${g.opset})`);
  for (const [what, t] of [
    ['k', k],
    ['v', v],
    ['pastKey', o.pastKey],
    ['pastValue', o.pastValue],
  ] as const)
    if (t && t.dtype !== q.dtype)
      throw new Error(`${name}: ${what} '${t.name}' has dtype ${t.dtype}, expected ${q.dtype}`);
  const qs = knownShape(q, name);
  const ks = knownShape(k, name);
  const vs = knownShape(v, name);
  if (qs.length !== 4 || ks.length !== 4 || vs.length !== 4)
    throw new Error(`${name}: q, k, v must be [B, heads, S, head_dim] (got [${qs}], [${ks}], [${vs}])`);
  const H = qs[1];
  const Hkv = ks[1];
  if (typeof H !== 'number' || typeof Hkv !== 'number')
    throw new Error(`${name}: head counts must be static (got ${H}, ${Hkv})`);
  if (H % Hkv !== 0) throw new Error(`${name}: n_kv_heads ${Hkv} does not divide n_heads ${H}`);
  if (vs[1] !== Hkv) throw new Error(`${name}: v '${v.name}' has ${vs[1]} heads, k has ${Hkv}`);
  const d = qs[3];
  if (typeof d !== 'number' || ks[3] !== d)
    throw new Error(`${name}: head_dim of q [${qs}] and k [${ks}] must be equal and static`);
  if (!!o.pastKey !== !!o.pastValue) throw new Error(`${name}: pastKey and pastValue go together`);

  const past = !!o.pastKey;
  const P = o.pastKey?.shape?.[2] ?? '?';
  const L = past ? (typeof P === 'number' && typeof ks[2] === 'number' ? P + ks[2] : '?') : ks[2];
  let mask: Value | null = o.mask ?? null;
  let isCausal = !!o.causal;
  if (mask) {
    if (mask.shape && mask.shape.length === 2) mask = paddingMask(mask, q.dtype);
    else if (mask.dtype !== q.dtype)
      throw new Error(`${name}: additive mask '${mask.name}' must have dtype ${q.dtype} (got ${mask.dtype})`);
    // ORT's CPU kernel wants the mask's query axis to be S (no broadcast there), and its float64 path (the ONNX
    // function body) fails to load with is_causal plus a mask: fold the causal part into the mask instead.
    if (isCausal || mask.shape?.[mask.shape.length - 2] !== qs[2]) {
      mask = fullMask(mask, q, k, o.pastKey ?? null, isCausal);
      isCausal = false;
    }
  }
  const withPresent = past || !!o.saveProbs;
  const outTypes = [
    { dtype: q.dtype, shape: [qs[0], H, qs[2], vs[3]] },
    ...(withPresent
      ? [
          { dtype: q.dtype, shape: [ks[0], Hkv, L, d] },
          { dtype: q.dtype, shape: [vs[0], Hkv, L, vs[3]] },
        ]
      : []),
    ...(o.saveProbs ? [{ dtype: q.dtype, shape: [qs[0], H, qs[2], L] }] : []),
  ];
  const attrs = {
    is_causal: isCausal ? 1 : undefined,
    scale: o.scale,
    qk_matmul_output_mode: o.saveProbs ? 3 : undefined,
  };
  const outs = g.op('Attention', [q, k, v, mask, o.pastKey, o.pastValue], attrs, {
    outputs: outTypes.length,
    outTypes,
  });
  return past ? { out: outs[0], presentKey: outs[1], presentValue: outs[2] } : { out: outs[0] };
}

// ---- gradient rule ------------------------------------------------------------------------------------------------

function attentionGrad(c: GradContext): (Value | null)[] {
  const g = c.g;
  const [Q, K, V, M, PK, PV] = c.inputs as (Value | null)[];
  if (c.inputs.length > 6 && c.inputs.slice(6).some(Boolean)) throw new Error('nonpad_kv_seqlen is not supported');
  if (c.attrs.softcap && aFloat(c.attrs, 'softcap', 0) !== 0) throw new Error('softcap is not supported');
  if (c.needs[3]) throw new Error('gradients with respect to the attention mask are not supported');
  const qs = knownShape(Q!, 'Attention grad');
  const ks = knownShape(K!, 'Attention grad');
  if (qs.length !== 4 || ks.length !== 4) throw new Error('only the 4-D [B, heads, S, head_dim] layout is supported');
  const H = qs[1] as number;
  const Hkv = ks[1] as number;
  const d = qs[3];
  if (typeof d !== 'number' || typeof H !== 'number' || typeof Hkv !== 'number')
    throw new Error('head counts and head_dim must be static');
  const dt = Q!.dtype;
  if (dt !== 'float32' && dt !== 'float64') throw new Error(`gradient needs float32 or float64 (got ${dt})`);
  // The scale is a FLOAT (32-bit) attribute. ORT runs float64 Attention as the ONNX function body, which multiplies q
  // and k each by a float32 sqrt(scale): use exactly that product so the float64 backward matches its forward.
  const s32 = Math.fround(aFloat(c.attrs, 'scale', 1 / Math.sqrt(d)));
  const sq = Math.fround(Math.sqrt(s32));
  const scale = dt === 'float64' ? sq * sq : s32;
  const causal = aInt(c.attrs, 'is_causal', 0) === 1;
  const [gY, gPK, gPV] = c.gradOutputs;

  const Kt = PK ? c.outputs[1] : K!; // all keys [B, Hkv, L, d]
  const Vt = PV ? c.outputs[2] : V!;
  const grouped = (x: Value) => (H === Hkv ? x : g.op1('Reshape', [x, g.ints([0, Hkv, -1, 0])])); // [B,H,S,x] -> [B,Hkv,G*S,x]
  const perHead = (x: Value) => (H === Hkv ? x : g.op1('Reshape', [x, g.ints([0, H, -1, 0])])); // inverse
  const T = (x: Value) => g.op1('Transpose', [x], { perm: [0, 1, 3, 2] });

  if (c.gradOutputs[3]) throw new Error('gradients through the probabilities output are not supported');
  const Qg = grouped(Q!);
  // P [B, H, S, L]: the forward's probabilities output when it was saved, else recomputed from Q, K and the masks.
  const recompute = (): Value => {
    let s = perHead(g.op1('Mul', [g.op1('MatMul', [Qg, T(Kt)]), g.scalar(scale, dt)]));
    if (M) {
      const add = M.dtype === 'bool' ? g.op1('Where', [M, g.scalar(0, dt), g.scalar(maskValue(dt), dt)]) : M;
      s = g.op1('Add', [s, add]);
    }
    if (causal) {
      const len = (v: Value) => g.op1('Squeeze', [g.op1('Shape', [v], { start: 2, end: 3 }), g.ints([0])]);
      const S = qs[2];
      const L = Kt.shape?.[2] ?? '?';
      s = g.op1('Add', [
        s,
        causalMask(g, typeof S === 'number' ? S : len(Q!), typeof L === 'number' ? L : len(Kt), S, L, dt),
      ]);
    }
    return g.op1('Softmax', [s], { axis: -1 });
  };
  const saved = aInt(c.attrs, 'qk_matmul_output_mode', 0) === 3 && c.outputs[3] ? c.outputs[3] : null;
  const Pg = grouped(saved ?? recompute()); // [B, Hkv, G*S, L]

  let dKt: Value | null = null;
  let dVt: Value | null = null;
  let dQ: Value | null = null;
  const needK = c.needs[1] || c.needs[4];
  const needV = c.needs[2] || c.needs[5];
  if (gY) {
    const gYg = grouped(gY);
    if (needV) dVt = g.op1('MatMul', [T(Pg), gYg]); // [B, Hkv, L, d]
    if (c.needs[0] || needK) {
      const dP = g.op1('MatMul', [gYg, T(Vt)]);
      const dS = g.op1('Mul', [
        Pg,
        g.op1('Sub', [dP, g.op1('ReduceSum', [g.op1('Mul', [dP, Pg]), g.ints([-1])], { keepdims: 1 })]),
      ]);
      const dSs = g.op1('Mul', [dS, g.scalar(scale, dt)]);
      if (c.needs[0]) dQ = perHead(g.op1('MatMul', [dSs, Kt]));
      if (needK) dKt = g.op1('MatMul', [T(dSs), Qg]);
    }
  }
  // gradients arriving through present_key / present_value
  const acc = (a: Value | null, b: Value | null) => (a && b ? g.op1('Add', [a, b]) : (a ?? b));
  if (needK && gPK) dKt = acc(dKt, gPK);
  if (needV && gPV) dVt = acc(dVt, gPV);

  // split the all-keys gradients into the past part [0, P) and the new part [P, L)
  const split = (full: Value | null, pastV: Value | null, which: 'past' | 'new', like: Value): Value | null => {
    if (!full) return null;
    if (!pastV) return which === 'new' ? full : null;
    const P = g.op1('Shape', [pastV], { start: 2, end: 3 });
    const big = g.ints([Number.MAX_SAFE_INTEGER]);
    const ax = g.ints([2]);
    const [st, en] = which === 'past' ? [g.ints([0]), P] : [P, big];
    return g.op1('Slice', [full, st, en, ax], {}, { outTypes: [{ dtype: dt, shape: like.shape }] });
  };
  return [
    dQ,
    c.needs[1] ? split(dKt, PK, 'new', K!) : null,
    c.needs[2] ? split(dVt, PV, 'new', V!) : null,
    null,
    c.needs[4] && PK ? split(dKt, PK, 'past', PK) : null,
    c.needs[5] && PV ? split(dVt, PV, 'past', PV) : null,
  ];
}

const fullMasks = new WeakMap<Value, Map<string, Value>>();

/** mask (broadcastable to [B, 1, S, L]) + causal part when asked, with an explicit S axis. Shared across layers. */
function fullMask(mask: Value, q: Value, k: Value, pastKey: Value | null, causal: boolean): Value {
  const g = mask.graph;
  const S = q.shape![2];
  const Snew = k.shape![2];
  const P = pastKey ? (pastKey.shape?.[2] ?? '?') : 0;
  const key = [S, Snew, P, causal].join('|');
  const memo = !key.includes('?');
  let byKey = fullMasks.get(mask);
  if (!byKey) fullMasks.set(mask, (byKey = new Map()));
  const hit = memo ? byKey.get(key) : undefined;
  if (hit) return hit;
  let out: Value;
  if (causal) {
    const len = (v: Value) => g.op1('Squeeze', [g.op1('Shape', [v], { start: 2, end: 3 }), g.ints([0])]);
    const sN = typeof S === 'number' ? S : len(q);
    let lN: Value | number;
    if (typeof Snew === 'number' && typeof P === 'number') lN = Snew + P;
    else lN = pastKey ? g.op1('Add', [len(pastKey), len(k)]) : len(k);
    out = g.op1('Add', [mask, causalMask(g, sN, lN, S, typeof lN === 'number' ? lN : '?', q.dtype)]);
  } else {
    const shape = g.op1('Concat', [g.ints([1, 1]), g.op1('Shape', [q], { start: 2, end: 3 }), g.ints([1])], {
      axis: 0,
    });
    out = g.op1('Expand', [mask, shape]);
  }
  if (memo) byKey.set(key, out);
  return out;
}

/**
 * Additive causal mask [S, L] aligned to the bottom right (0 where key j <= query i + L - S, maskValue elsewhere);
 * a constant when both lengths are static, else built from the run-time lengths (int64 scalars).
 */
function causalMask(g: Graph, sN: Value | number, lN: Value | number, S: Dim, L: Dim, dt: DType): Value {
  if (typeof sN === 'number' && typeof lN === 'number') {
    const m = new Float64Array(sN * lN);
    for (let i = 0; i < sN; i++) for (let j = 0; j < lN; j++) if (j > i + lN - sN) m[i * lN + j] = maskValue(dt);
    if (dt === 'float64') return g.constant(m, dt, [sN, lN]);
    const c = g.constant(new Float32Array(m), 'float32', [sN, lN]);
    return dt === 'float32' ? c : g.op1('Cast', [c], { to: ONNX_FLOAT[dt]! });
  }
  const asV = (x: Value | number) => (typeof x === 'number' ? g.constant(x, 'int64', []) : x);
  const s = asV(sN);
  const l = asV(lN);
  const zero = g.constant(0, 'int64', []);
  const one = g.constant(1, 'int64', []);
  const rows = g.op1('Range', [zero, s, one], {}, { outTypes: [{ dtype: 'int64', shape: [S] }] });
  const cols = g.op1('Range', [zero, l, one], {}, { outTypes: [{ dtype: 'int64', shape: [L] }] });
  const lim = g.op1('Unsqueeze', [g.op1('Add', [rows, g.op1('Sub', [l, s])]), g.ints([1])]); // [S, 1]
  const allowed = g.op1('LessOrEqual', [g.op1('Unsqueeze', [cols, g.ints([0])]), lim]); // [S, L]
  const cdt: DType = dt === 'float64' ? 'float64' : 'float32';
  const m = g.op1('Where', [allowed, g.scalar(0, cdt), g.scalar(maskValue(dt), cdt)]);
  return cdt === dt ? m : g.op1('Cast', [m], { to: ONNX_FLOAT[dt]! });
}

registerOp('Attention', { grad: attentionGrad });
