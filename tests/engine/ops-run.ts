// Small helpers for op forward tests: build a graph from named inputs, run it on ORT CPU, read outputs as float64.

import assert from 'node:assert/strict';
import { Graph, Value } from '../../src-main/engine/graph/builder';
import type { DType } from '../../src-main/engine/graph/dtype';
import { serializeModel } from '../../src-main/engine/graph/serialize';
import { Session } from '../../src-main/engine/runtime/session';
import { tensor, toFloat64 } from '../../src-main/engine/runtime/tensor';
import { mulberry32 } from '../../src-main/util/mulberry32';

export interface RunInput {
  name: string;
  dtype: DType;
  shape: number[];
  values: ArrayLike<number | bigint | boolean>;
}

export interface RunOutput {
  dims: number[];
  data: Float64Array;
}

/** Build with `build(g, inputs)`, mark the returned values as outputs out0.., run once, return them in order. */
export async function runGraph(
  inputs: RunInput[],
  build: (g: Graph, xs: Value[]) => Value | Value[],
  opset?: number,
): Promise<RunOutput[]> {
  const g = new Graph('test', { opset });
  const xs = inputs.map((i) => g.input(i.name, i.dtype, i.shape));
  const r = build(g, xs);
  const outs = Array.isArray(r) ? r : [r];
  outs.forEach((o, i) => g.output(o, `out${i}`));
  const s = await Session.create(serializeModel(g).model, { threads: 1 });
  const feeds = Object.fromEntries(inputs.map((i) => [i.name, tensor(i.dtype, i.shape, i.values)]));
  const res = await s.run(feeds);
  await s.dispose();
  return outs.map((_, i) => ({ dims: [...res[`out${i}`].dims].map(Number), data: toFloat64(res[`out${i}`]) }));
}

/** Element-wise |a - b| <= atol + rtol |b|, naming the first mismatch. */
export function assertAllClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rtol: number,
  atol: number,
  what: string,
): void {
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} elements, expected ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e))) assert.fail(`${what}[${i}]: got ${a}, expected ${e}`);
  }
}

/** Deterministic values in [lo, hi). */
export function randomValues(n: number, seed: number, lo = -1, hi = 1): Float64Array {
  const rand = mulberry32(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * rand();
  return out;
}
