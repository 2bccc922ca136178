// 1-D convolution (torch.nn.Conv1d: weight [out, in, kernel], optional bias, stride, zero padding, no dilation or
// groups) as an unfold + one MatMul: the input is zero-padded along time, the kernel taps are K strided Slices
// concatenated on the channel axis ([B, T', K*C], tap-major), and the weight is viewed as [K*C, out].
//
// It is a composite of Pad / Slice / Concat / Reshape / Transpose / MatMul, whose gradient rules the engine already
// has, so training flows through it with no rule of its own (the backward of the strided Slices is a strided Pad of
// the gradient, summed over taps by autodiff's fan-out). ORT's Conv has no float64 kernel for the gradient checks and
// no standard-op backward (ConvTranspose would need its own rule); the unfold keeps float64 checks and the WebGPU
// lowering on ops they already cover. A strided conv needs a static time length (the Slice backward's rule).

import type { Value } from '../graph/builder';
// the Pad / Slice shape and gradient rules the composite relies on
import './shape';

export interface Conv1dOptions {
  stride?: number;
  /** zero padding on both ends of the time axis (torch's `padding=int`) */
  padding?: number;
}

/**
 * Conv1d on channels-last input: x [B, T, C], weight [O, C, K] (torch layout), bias [O] or null -> [B, T', O] with
 * T' = floor((T + 2 padding - K) / stride) + 1.
 */
export function conv1dChannelsLast(x: Value, weight: Value, bias: Value | null, o: Conv1dOptions = {}): Value {
  const g = x.graph;
  const stride = o.stride ?? 1;
  const pad = o.padding ?? 0;
  const ws = weight.shape;
  if (!ws || ws.length !== 3 || !ws.every((d) => typeof d === 'number'))
    throw new Error(`conv1d: weight '${weight.name}' must have a static shape [out, in, kernel] (got [${ws}])`);
  const [O, C, K] = ws as number[];
  const xs = x.shape;
  if (!xs || xs.length !== 3) throw new Error(`conv1d: input '${x.name}' must be [B, T, ${C}] (got [${xs}])`);
  if (typeof xs[2] === 'number' && xs[2] !== C)
    throw new Error(`conv1d: input '${x.name}' has ${xs[2]} channels, the weight ${C}`);
  if (!Number.isInteger(stride) || stride < 1 || !Number.isInteger(pad) || pad < 0)
    throw new Error(`conv1d: stride ${stride} / padding ${pad} must be integers >= 1 / >= 0`);
  const T = xs[1];
  if (stride > 1 && typeof T !== 'number')
    throw new Error(`conv1d: a strided conv needs a static time length (input '${x.name}' is [${xs}])`);
  const xp = pad > 0 ? g.op1('Pad', [x, g.ints([0, pad, 0, 0, pad, 0])]) : x;
  let taps: Value[];
  if (typeof T === 'number') {
    const Tp = T + 2 * pad;
    const out = Math.floor((Tp - K) / stride) + 1;
    if (out < 1) throw new Error(`conv1d: time length ${T} is shorter than the kernel (${K}) after padding ${pad}`);
    taps = [];
    for (let k = 0; k < K; k++)
      taps.push(g.op1('Slice', [xp, g.ints([k]), g.ints([k + stride * (out - 1) + 1]), g.ints([1]), g.ints([stride])]));
  } else {
    // stride 1, symbolic T: tap k is xp[:, k : k + T + 2 pad - K + 1], written with a negative end
    taps = [];
    for (let k = 0; k < K; k++) {
      const end = k - K + 1;
      taps.push(g.op1('Slice', [xp, g.ints([k]), g.ints([end === 0 ? Number.MAX_SAFE_INTEGER : end]), g.ints([1])]));
    }
  }
  const cols = taps.length === 1 ? taps[0] : g.op1('Concat', taps, { axis: 2 });
  // weight [O, C, K] -> [O, K, C] -> [O, K*C] -> [K*C, O] (tap-major rows, as the columns above)
  const w2 = g.op1(
    'Transpose',
    [g.op1('Reshape', [g.op1('Transpose', [weight], { perm: [0, 2, 1] }), g.ints([O, K * C])])],
    { perm: [1, 0] },
  );
  const y = g.op1('MatMul', [cols, w2]);
  return bias ? g.op1('Add', [y, bias]) : y;
}

/** Conv1d in torch's layout: x [B, C, T] -> [B, O, T']. */
export function conv1d(x: Value, weight: Value, bias: Value | null, o: Conv1dOptions = {}): Value {
  const g = x.graph;
  const C = weight.shape?.[1];
  if (typeof x.shape?.[1] === 'number' && typeof C === 'number' && x.shape[1] !== C)
    throw new Error(`conv1d: input '${x.name}' has ${x.shape[1]} channels, the weight ${C}`);
  const y = conv1dChannelsLast(g.op1('Transpose', [x], { perm: [0, 2, 1] }), weight, bias, o);
  return g.op1('Transpose', [y], { perm: [0, 2, 1] });
}
