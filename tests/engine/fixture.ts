// Loading and comparing against the reference fixtures written by tests/fixtures/engine/make_fixtures.py.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ort } from '../../src-main/engine/runtime/tensor';
import { toFloat64 } from '../../src-main/engine/runtime/tensor';

export interface FixtureTensor {
  shape: number[];
  data: number[];
}
export interface FixtureStep {
  lr: number;
  loss: number;
  grad_norm: number;
  grads: Record<string, FixtureTensor>;
}
export interface Fixture {
  config: Record<string, any>;
  inputs: Record<string, FixtureTensor>;
  frozen?: Record<string, FixtureTensor>;
  init: Record<string, FixtureTensor>;
  steps: FixtureStep[];
  final: Record<string, FixtureTensor>;
}

export function loadFixture(name: string): Fixture {
  const path = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', 'fixtures', 'engine', name);
  return JSON.parse(readFileSync(path, 'utf8')) as Fixture;
}

/** ||a - ref|| <= rtol ||ref|| and max|a - ref| <= rtol max|ref|. */
export function assertClose(
  actual: ort.Tensor | ArrayLike<number>,
  ref: FixtureTensor,
  rtol: number,
  what: string,
): number {
  const a =
    'dims' in (actual as object) ? toFloat64(actual as ort.Tensor) : Float64Array.from(actual as ArrayLike<number>);
  assert.equal(a.length, ref.data.length, `${what}: ${a.length} values, reference has ${ref.data.length}`);
  let dn = 0,
    rn = 0,
    dmax = 0,
    rmax = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - ref.data[i];
    dn += d * d;
    rn += ref.data[i] * ref.data[i];
    dmax = Math.max(dmax, Math.abs(d));
    rmax = Math.max(rmax, Math.abs(ref.data[i]));
  }
  const rel = Math.sqrt(dn) / Math.max(Math.sqrt(rn), 1e-30);
  assert.ok(rel <= rtol, `${what}: relative error ${rel.toExponential(2)} > ${rtol}`);
  assert.ok(dmax <= rtol * rmax, `${what}: max abs diff ${dmax.toExponential(2)} > ${rtol} * ${rmax.toExponential(2)}`);
  return rel;
}
