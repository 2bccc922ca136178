// Softmax and LogSoftmax along any axis (opset 13+ semantics: one axis, default -1). Forward emitters and gradient
// rules side by side; both backward passes reuse the forward output.

import type { Value } from '../graph/builder';
import { exp, mul, sub } from './elementwise';
import { aInt, registerOp } from './registry';

export function softmax(x: Value, axis = -1): Value {
  return x.graph.op1('Softmax', [x], { axis });
}

export function logSoftmax(x: Value, axis = -1): Value {
  return x.graph.op1('LogSoftmax', [x], { axis });
}

function axisOf(opset: number, attrs: Parameters<typeof aInt>[0]): number {
  if (opset < 13)
    throw new Error(`Softmax/LogSoftmax gradient needs opset >= 13 (single-axis semantics); graph has ${opset}`);
  return aInt(attrs, 'axis', -1);
}

// y = softmax(x): dx = y (dy - sum(dy y, axis))
registerOp('Softmax', {
  grad: (c) => {
    const y = c.outputs[0];
    const gy = c.gradOutputs[0]!;
    const axis = axisOf(c.g.opset, c.attrs);
    const s = c.g.op1('ReduceSum', [mul(gy, y), c.g.ints([axis])], { keepdims: 1 });
    return [mul(y, sub(gy, s))];
  },
});

// y = log softmax(x): dx = dy - exp(y) sum(dy, axis)
registerOp('LogSoftmax', {
  grad: (c) => {
    const y = c.outputs[0];
    const gy = c.gradOutputs[0]!;
    const axis = axisOf(c.g.opset, c.attrs);
    const s = c.g.op1('ReduceSum', [gy, c.g.ints([axis])], { keepdims: 1 });
    return [sub(gy, mul(exp(y), s))];
  },
});
