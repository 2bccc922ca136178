// Helpers for op tests: run a small graph forward on ORT CPU (checking that the build-time shapes agree with what ORT
// computes), and relabel a value's static shape as symbolic so rules take their symbolic-dim paths.

import assert from 'node:assert/strict';
import { Graph, Value, type Shape } from '../../src-main/engine/graph/builder';
import type { DType } from '../../src-main/engine/graph/dtype';
import { serializeModel } from '../../src-main/engine/graph/serialize';
import { Session } from '../../src-main/engine/runtime/session';
import { tensor, toFloat64 } from '../../src-main/engine/runtime/tensor';

export interface FwdInput {
  name: string;
  shape: number[];
  dtype?: DType;
  values: ArrayLike<number | bigint | boolean>;
}

export interface FwdOutput {
  dims: number[];
  data: Float64Array;
  /** The build-time shape of the value. */
  shape: Shape | null;
}

/**
 * Build, run once, and assert every output's build-time shape matches ORT's dims (symbolic dims match anything,
 * an unknown rank matches any rank).
 */
export async function forward(
  inputs: FwdInput[],
  build: (g: Graph, xs: Value[]) => Value | Value[],
  opset?: number,
): Promise<FwdOutput[]> {
  const g = new Graph('fwd', { opset });
  const xs = inputs.map((i) => g.input(i.name, i.dtype ?? 'float64', i.shape));
  const r = build(g, xs);
  const outs = Array.isArray(r) ? r : [r];
  const shapes = outs.map((o) => o.shape);
  outs.forEach((o, i) => g.output(o, `out${i}`));
  const s = await Session.create(serializeModel(g).model, { threads: 1, optimization: 'disabled' });
  const res = await s.run(
    Object.fromEntries(inputs.map((i) => [i.name, tensor(i.dtype ?? 'float64', i.shape, i.values)])),
  );
  await s.dispose();
  return outs.map((o, i) => {
    const t = res[`out${i}`];
    const dims = [...t.dims].map(Number);
    const st = shapes[i];
    if (st !== null) {
      assert.equal(st.length, dims.length, `${o.name}: build-time rank ${st.length}, ORT rank ${dims.length}`);
      st.forEach((d, k) => {
        if (typeof d === 'number') assert.equal(d, dims[k], `${o.name}: build-time shape [${st}] vs ORT [${dims}]`);
      });
    }
    return { dims, data: toFloat64(t), shape: st };
  });
}

/** An Identity of `x` whose build-time shape is `shape` (e.g. ['B', 'T', 6]): downstream rules see symbolic dims. */
export function relabel(x: Value, shape: Shape): Value {
  return x.graph.op1('Identity', [x], {}, { outTypes: [{ dtype: x.dtype, shape }] });
}

/** 0, 1, 2, ... as float values. */
export function iota(n: number, offset = 0): number[] {
  return Array.from({ length: n }, (_, i) => i + offset);
}
