// Elementwise ops: forward emitters and gradient rules side by side.
// Binary ops broadcast (numpy rules); their gradients are reduced back to each input's shape.

import type { Value } from '../graph/builder';
import { registerOp, type GradContext } from './registry';
import { Operand, dtypeOf, graphOf, lift, unbroadcast } from './util';

function binary(opType: string, a: Operand, b: Operand): Value {
  const g = graphOf(a, b);
  const dt = dtypeOf(a, b);
  return g.op1(opType, [lift(g, a, dt), lift(g, b, dt)]);
}
function unary(opType: string, x: Value): Value {
  return x.graph.op1(opType, [x]);
}

// ---- forward emitters --------------------------------------------------------------------------------------------

export const add = (a: Operand, b: Operand): Value => binary('Add', a, b);
export const sub = (a: Operand, b: Operand): Value => binary('Sub', a, b);
export const mul = (a: Operand, b: Operand): Value => binary('Mul', a, b);
export const div = (a: Operand, b: Operand): Value => binary('Div', a, b);
export const pow = (a: Operand, b: Operand): Value => binary('Pow', a, b);
export const neg = (x: Value): Value => unary('Neg', x);
export const sqrt = (x: Value): Value => unary('Sqrt', x);
export const reciprocal = (x: Value): Value => unary('Reciprocal', x);
export const exp = (x: Value): Value => unary('Exp', x);
export const log = (x: Value): Value => unary('Log', x);
export const tanh = (x: Value): Value => unary('Tanh', x);
export const sigmoid = (x: Value): Value => unary('Sigmoid', x);
export const erf = (x: Value): Value => unary('Erf', x);
export const identity = (x: Value): Value => unary('Identity', x);
export const square = (x: Value): Value => mul(x, x);

// ---- gradient rules ----------------------------------------------------------------------------------------------

/** The forward output shape and each input's shape, for unbroadcasting. */
function shapes(c: GradContext) {
  return { y: c.outputs[0].shape, a: c.inputs[0]!.shape, b: c.inputs[1]?.shape ?? null };
}

registerOp('Add', {
  grad: (c) => {
    const gy = c.gradOutputs[0]!;
    const s = shapes(c);
    return [
      c.needs[0] ? unbroadcast(c.g, gy, s.y, s.a, 'Add grad') : null,
      c.needs[1] ? unbroadcast(c.g, gy, s.y, s.b, 'Add grad') : null,
    ];
  },
});

registerOp('Sub', {
  grad: (c) => {
    const gy = c.gradOutputs[0]!;
    const s = shapes(c);
    return [
      c.needs[0] ? unbroadcast(c.g, gy, s.y, s.a, 'Sub grad') : null,
      c.needs[1] ? unbroadcast(c.g, neg(gy), s.y, s.b, 'Sub grad') : null,
    ];
  },
});

/**
 * The operand x of y = x * Sigmoid(x) (SiLU, the SwiGLU gate), or -1 when the Mul is not that. Its rule gives x the
 * whole derivative through both factors (the Sigmoid's own rule then sees no gradient from this Mul), unless a
 * gradient was asked for the Sigmoid's output itself.
 */
function siluOperand(c: GradContext): number {
  const [a, b] = c.inputs as Value[];
  for (const [i, x, s] of [
    [0, a, b],
    [1, b, a],
  ] as const) {
    const p = s.producer;
    if (p && p.opType === 'Sigmoid' && p.domain === '' && p.inputs[0] === x && !c.isWrt?.(s)) return i;
  }
  return -1;
}

registerOp('Mul', {
  grad: (c) => {
    const gy = c.gradOutputs[0]!;
    const [a, b] = c.inputs as Value[];
    const silu = siluOperand(c);
    if (silu >= 0) {
      // d(x s)/dx = s + x s (1 - s) = s (1 + x - y): with P = gy s, dx = P + P (x - y), four passes over the tensor
      // where the Mul and Sigmoid rules chained take six (Mul, Mul, Sub, Mul, Mul, Add)
      const x = c.inputs[silu]!;
      const p = mul(gy, c.inputs[1 - silu]!);
      const gx = add(p, mul(p, sub(x, c.outputs[0])));
      return silu === 0 ? [gx, null] : [null, gx];
    }
    const s = shapes(c);
    return [
      c.needs[0] ? unbroadcast(c.g, mul(gy, b), s.y, s.a, 'Mul grad') : null,
      c.needs[1] ? unbroadcast(c.g, mul(gy, a), s.y, s.b, 'Mul grad') : null,
    ];
  },
});

registerOp('Div', {
  grad: (c) => {
    const gy = c.gradOutputs[0]!;
    const [, b] = c.inputs as Value[];
    const y = c.outputs[0];
    const s = shapes(c);
    const gyb = c.needs[0] || c.needs[1] ? div(gy, b) : null;
    return [
      c.needs[0] ? unbroadcast(c.g, gyb!, s.y, s.a, 'Div grad') : null,
      // d(a/b)/db = -a/b^2 = -y/b
      c.needs[1] ? unbroadcast(c.g, neg(mul(gyb!, y)), s.y, s.b, 'Div grad') : null,
    ];
  },
});

registerOp('Pow', {
  grad: (c) => {
    const gy = c.gradOutputs[0]!;
    const [a, b] = c.inputs as Value[];
    const y = c.outputs[0];
    const s = shapes(c);
    let ga: Value | null = null;
    let gb: Value | null = null;
    if (c.needs[0]) {
      const bc = b.dtype === a.dtype ? b : c.g.op1('CastLike', [b, a]);
      // d(a^b)/da = b * a^(b-1)
      ga = unbroadcast(c.g, mul(gy, mul(bc, pow(a, sub(bc, 1)))), s.y, s.a, 'Pow grad');
    }
    if (c.needs[1]) {
      // d(a^b)/db = a^b * ln(a)
      gb = unbroadcast(c.g, mul(gy, mul(y, log(a))), s.y, s.b, 'Pow grad');
    }
    return [ga, gb];
  },
});

registerOp('Neg', { grad: (c) => [neg(c.gradOutputs[0]!)] });
registerOp('Identity', { grad: (c) => [c.gradOutputs[0]!] });
// y = sqrt(x): dy/dx = 0.5 / y
registerOp('Sqrt', { grad: (c) => [div(mul(c.gradOutputs[0]!, 0.5), c.outputs[0])] });
// y = 1/x: dy/dx = -y^2
registerOp('Reciprocal', { grad: (c) => [neg(mul(c.gradOutputs[0]!, square(c.outputs[0])))] });
registerOp('Exp', { grad: (c) => [mul(c.gradOutputs[0]!, c.outputs[0])] });
registerOp('Log', { grad: (c) => [div(c.gradOutputs[0]!, c.inputs[0]!)] });
// y = tanh(x): dy/dx = 1 - y^2
registerOp('Tanh', { grad: (c) => [mul(c.gradOutputs[0]!, sub(1, square(c.outputs[0])))] });
// y = sigmoid(x): dy/dx = y (1 - y)
registerOp('Sigmoid', { grad: (c) => [mul(c.gradOutputs[0]!, mul(c.outputs[0], sub(1, c.outputs[0])))] });
// d erf(x)/dx = 2/sqrt(pi) exp(-x^2)
registerOp('Erf', {
  grad: (c) => {
    const x = c.inputs[0]!;
    return [mul(c.gradOutputs[0]!, mul(exp(neg(square(x))), 2 / Math.sqrt(Math.PI)))];
  },
});

// Locally constant ops: no gradient flows (and no error).
for (const op of ['Floor', 'Ceil', 'Round', 'Sign']) registerOp(op, { zeroGrad: true });
