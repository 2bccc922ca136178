// Lazy initializers (LazyRef): data read only when the model is written, one external chunk at a time. The files
// must be the same bytes as with the data given in memory (the graph cache and its users rely on byte-identical
// builds), and a bad read must fail naming the tensor.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { Graph, type TypedArray } from '../../src-main/engine/graph/builder';
import type { DType } from '../../src-main/engine/graph/dtype';
import { saveModel, serializeModel } from '../../src-main/engine/graph/serialize';
import { modelSource } from '../../src-main/engine/runtime/cache';
import { Session } from '../../src-main/engine/runtime/session';
import { tensor, toNumbers } from '../../src-main/engine/runtime/tensor';
import { tempDir } from '../helpers/tmp';

const tmp = tempDir('engine-lazy-');
after(() => tmp.cleanup());

/** Initializers of mixed dtypes and sizes: some above the external threshold (several alignments), some inline. */
function tensors(): { name: string; dtype: DType; dims: number[]; data: TypedArray }[] {
  const f32 = (n: number, k: number) => new Float32Array(n).map((_, i) => Math.sin(i * k));
  return [
    { name: 'w_big', dtype: 'float32', dims: [128, 160], data: f32(128 * 160, 0.37) }, // 80 KiB: 64 KiB alignment
    { name: 'w_f64', dtype: 'float64', dims: [40, 30], data: new Float64Array(1200).map((_, i) => i / 7 - 3) },
    { name: 'w_f16', dtype: 'float16', dims: [700], data: new Uint16Array(700).map((_, i) => 0x3c00 + (i % 512)) },
    { name: 'idx', dtype: 'int64', dims: [300], data: new BigInt64Array(300).map((_, i) => BigInt(i * 3 - 100)) },
    { name: 'small', dtype: 'float32', dims: [4], data: f32(4, 1.1) }, // inline (under 1 KiB)
    { name: 'u8', dtype: 'uint8', dims: [2000], data: new Uint8Array(2000).map((_, i) => i & 255) },
    { name: 'w_mid', dtype: 'float32', dims: [33, 17], data: f32(33 * 17, 0.11) },
  ];
}

function build(lazy: boolean, reads?: Map<string, number>): Graph {
  const g = new Graph('lazy');
  const x = g.input('x', 'float32', [128]);
  for (const t of tensors()) {
    const data = lazy
      ? {
          lazy: {
            read: () => {
              reads?.set(t.name, (reads.get(t.name) ?? 0) + 1);
              return t.data.slice() as TypedArray; // a fresh array per read, as a checkpoint read is
            },
          },
        }
      : t.data;
    const v = g.initializer(t.name, t.dtype, t.dims, data);
    if (t.name === 'w_big') g.output(g.op1('MatMul', [x, v]), 'y');
    else if (t.name === 'small') g.output(g.op1('Add', [g.op1('ReduceSum', [x], { keepdims: 1 }), v]), 'z');
    else g.output(v, `out_${t.name}`);
  }
  return g;
}

test('lazy initializers write the same model and external-data bytes as in-memory ones, each read once per save', () => {
  const reads = new Map<string, number>();
  // same file name in two folders: the data file's name is written into the model
  mkdirSync(join(tmp.dir, 'eager'));
  mkdirSync(join(tmp.dir, 'lazy'));
  const eager = saveModel(build(false), join(tmp.dir, 'eager', 'model.onnx'));
  const lazyGraph = build(true, reads);
  assert.equal(reads.size, 0, 'nothing is read while building');
  const lazy = saveModel(lazyGraph, join(tmp.dir, 'lazy', 'model.onnx'));
  assert.ok(eager.dataPath && lazy.dataPath);
  assert.deepEqual(readFileSync(lazy.modelPath), readFileSync(eager.modelPath));
  assert.deepEqual(readFileSync(lazy.dataPath), readFileSync(eager.dataPath));
  for (const t of tensors()) assert.equal(reads.get(t.name), 1, `${t.name} read once`);
  // all inline (no external file): same bytes too
  assert.deepEqual(serializeModel(build(true)).model, serializeModel(build(false)).model);
  // a lazy initializer has no build-time constant value (shape rules never see it)
  assert.equal(lazyGraph.initializers[0].constValue, null);
});

test('external chunks read lazy data only when asked, in order, with their names and lengths', () => {
  const reads = new Map<string, number>();
  const ser = serializeModel(build(true, reads), { external: { location: 'm.data' } });
  const chunks = ser.external!.chunks;
  assert.deepEqual(
    chunks.map((c) => c.name),
    ['w_big', 'w_f64', 'w_f16', 'idx', 'u8', 'w_mid'],
  );
  assert.deepEqual([...reads.keys()], ['small'], 'only the inline initializer was read while serializing');
  for (const c of chunks) assert.equal(c.read().length, c.length);
  for (let i = 1; i < chunks.length; i++)
    assert.ok(chunks[i].offset >= chunks[i - 1].offset + chunks[i - 1].length, 'chunks do not overlap');
});

test('a model with lazy initializers runs in onnxruntime from its file', async () => {
  const { modelPath } = saveModel(build(true), join(tmp.dir, 'run.onnx'));
  const s = await Session.create(modelPath, { threads: 1 });
  const x = new Float32Array(128).fill(1);
  const out = await s.run({ x: tensor('float32', [128], x) });
  const w = tensors()[0].data as Float32Array;
  const y = toNumbers(out.y);
  let col0 = 0;
  for (let r = 0; r < 128; r++) col0 += w[r * 160];
  assert.ok(Math.abs(y[0] - col0) < 1e-3);
  assert.deepEqual(toNumbers(out.out_idx), Array.from(tensors()[3].data as BigInt64Array, Number));
  await s.dispose();
  // modelSource counts lazy initializers' bytes against its inline limit without reading them
  assert.throws(() => modelSource(build(true), { maxInlineBytes: 1000 }), /bytes of initializers/);
});

test('a lazy read of the wrong size or type fails naming the tensor', () => {
  const g = new Graph('bad');
  g.output(g.initializer('w_short', 'float32', [1000], { lazy: { read: () => new Float32Array(999) } }), 'y');
  assert.throws(() => saveModel(g, join(tmp.dir, 'bad.onnx')), /tensor 'w_short': data size mismatch/);
  const h = new Graph('bad2');
  h.output(
    h.initializer('w_type', 'float32', [1000], {
      lazy: { read: () => new Float64Array(1000) as unknown as Float32Array },
    }),
    'y',
  );
  assert.throws(
    () => saveModel(h, join(tmp.dir, 'bad2.onnx')),
    /tensor 'w_type': lazy read gave a Float64Array, not float32 data/,
  );
  assert.throws(
    () => new Graph('bad3').initializer('w', 'float32', [1], { lazy: {} } as never),
    /tensor 'w': lazy data needs a read\(\) function/,
  );
});

test('garbage left by lazy reads is collected during a save: 2.1 GiB of dropped buffers, peak far below it', () => {
  // In a child process, so its peak RSS is this save's. Each read allocates and drops a float32 buffer, as quantizing
  // a float32 weight does: three of 512 MiB (a 0.5B model's token table) and forty of 16 MiB (its layers). V8 left
  // alone lets the big ones pile up (about 1.5 GiB measured); the save collects past 256 MiB of new buffers.
  const sizes = [512, 512, 512, ...Array(40).fill(16)];
  const script = `
    const { Graph } = await import(${JSON.stringify(new URL('../../src-main/engine/graph/builder.ts', import.meta.url).href)});
    const { saveModel } = await import(${JSON.stringify(new URL('../../src-main/engine/graph/serialize.ts', import.meta.url).href)});
    const g = new Graph('garbage');
    let y = g.input('x', 'float32', [16384]);
    ${JSON.stringify(sizes)}.forEach((mib, i) => {
      const w = g.initializer('w' + i, 'float32', [16384], { lazy: { read: () => {
        const tmp = new Float32Array(mib * 2 ** 18);
        for (let k = 0; k < tmp.length; k += 1024) tmp[k] = k; // every page touched, as a real read does
        return tmp.slice(0, 16384);
      } } });
      y = g.op1('Add', [y, w]);
    });
    g.output(y);
    const before = process.resourceUsage().maxRSS;
    saveModel(g, process.argv[1]);
    process.stdout.write(JSON.stringify({ grew: (process.resourceUsage().maxRSS - before) / 1024 }));
  `;
  const out = execFileSync(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', script, join(tmp.dir, 'garbage.onnx')],
    { encoding: 'utf8' },
  );
  const { grew } = JSON.parse(out) as { grew: number };
  assert.ok(
    grew < 800,
    `a save that dropped 2176 MiB of buffers grew the peak RSS by ${Math.round(grew)} MiB (limit 800: the largest read plus the 256 MiB bound, with room)`,
  );
});
