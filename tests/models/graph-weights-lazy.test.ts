// GraphWeights makes frozen weights lazy initializers: building a graph reads no tensor from the checkpoint (each is
// read, converted and transposed when the graph is written, one at a time), the written values are the checkpoint's
// (transposed for weightT, float64 when asked), and a missing or non-matrix tensor still fails while building.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph } from '../../src-main/engine/graph/builder';
import { serializeModel } from '../../src-main/engine/graph/serialize';
import { Session } from '../../src-main/engine/runtime/session';
import { toNumbers } from '../../src-main/engine/runtime/tensor';
import { GraphWeights } from '../../src-main/models/layers';
import { memorySource, type TensorSource } from '../../src-main/models/weights/safetensors';

function countingSource(): { source: TensorSource; reads: string[] } {
  const w = new Float32Array(6).map((_, i) => i + 1); // [[1,2,3],[4,5,6]]
  const base = memorySource(
    new Map([
      ['lin.weight', { dtype: 'F32' as const, shape: [2, 3], data: w }],
      ['lin.bias', { dtype: 'BF16' as const, shape: [2], data: new Float32Array([0.5, -0.5]) }],
    ]),
  );
  const reads: string[] = [];
  return {
    reads,
    source: { ...base, get: (n: string) => (reads.push(n), base.get(n)) },
  };
}

async function initializerValues(g: Graph): Promise<Record<string, number[]>> {
  for (const v of g.initializers) g.output(g.op1('Identity', [v]), `out_${v.name.replace(/\W/g, '_')}`);
  const s = await Session.create(serializeModel(g).model, { threads: 1 });
  const out = await s.run({});
  await s.dispose();
  const r: Record<string, number[]> = {};
  for (const [k, t] of Object.entries(out)) r[k] = toNumbers(t);
  return r;
}

test('GraphWeights reads checkpoint tensors only when the graph is written, with the same values', async () => {
  for (const dtype of ['float32', 'float64'] as const) {
    const { source, reads } = countingSource();
    const g = new Graph(`lazy_${dtype}`);
    const gw = new GraphWeights(g, source, {
      dtype,
      overrides: new Map([['extra.weight', new Float32Array([7, 8, 9, 10])]]),
    });
    const wt = gw.weightT('lin.weight');
    assert.deepEqual(wt.shape, [3, 2]);
    assert.equal(wt.dtype, dtype);
    gw.tensor('lin.bias');
    gw.tensor('extra.weight'); // an override with no source tensor: shape from its length
    assert.deepEqual(reads, [], 'building read nothing');
    const vals = await initializerValues(g);
    assert.deepEqual(vals['out_lin_weight_T'], [1, 4, 2, 5, 3, 6]);
    assert.deepEqual(vals['out_lin_bias'], [0.5, -0.5]);
    assert.deepEqual(vals['out_extra_weight'], [7, 8, 9, 10]);
    assert.deepEqual(reads.sort(), ['lin.bias', 'lin.weight']);
  }
});

test('GraphWeights still fails at build time for a missing tensor or a non-matrix weight', () => {
  const { source, reads } = countingSource();
  const gw = new GraphWeights(new Graph('bad'), source);
  assert.throws(() => gw.tensor('nope.weight'), /weights: no tensor "nope.weight" in the model/);
  assert.throws(() => gw.weightT('nope.weight'), /weights: no tensor "nope.weight" in the model/);
  assert.throws(() => gw.weightT('lin.bias'), /weights: "lin.bias" is not a matrix/);
  assert.deepEqual(reads, []);
});

test('weightT reads a source with getRange a block of rows at a time and transposes exactly', async () => {
  const [o, i] = [5000, 1000]; // 20 MB of float32: two blocks of rows
  const w = new Float32Array(o * i).map((_, k) => Math.sin(k * 0.001) + (k % 13));
  const base = memorySource(new Map([['big.weight', { dtype: 'F32' as const, shape: [o, i], data: w }]]));
  const ranges: [number, number][] = [];
  const source: TensorSource = {
    ...base,
    get: () => assert.fail('the whole tensor is not read'),
    getRange: (n, start, count) => (ranges.push([start, count]), base.get(n).slice(start, start + count)),
  };
  const g = new Graph('rows');
  g.output(new GraphWeights(g, source).weightT('big.weight'), 'wt');
  const ser = serializeModel(g, { external: { location: 'd' } });
  const bytes = ser.external!.chunks[0].read();
  const t = new Float32Array(bytes.buffer, bytes.byteOffset, o * i);
  assert.ok(ranges.length >= 2, `read in ${ranges.length} blocks`);
  assert.equal(
    ranges.reduce((a, r) => a + r[1], 0),
    o * i,
    'every element read once',
  );
  for (const k of [0, 1, 999, 1000, 4_999_999, 2_345_678]) {
    const [c, r] = [Math.floor(k / o), k % o];
    assert.equal(t[k], w[r * i + c], `element ${k}`);
  }
  let same = true;
  for (let r = 0; r < o && same; r++) for (let c = 0; c < i; c++) if (t[c * o + r] !== w[r * i + c]) same = false;
  assert.ok(same, 'the whole matrix is transposed');
});
