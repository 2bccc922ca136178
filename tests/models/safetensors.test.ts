import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, existsSync, readdirSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import {
  SafetensorsFile,
  ShardedSafetensors,
  readSafetensors,
  writeSafetensors,
  writeWeightsFolder,
  readShardIndex,
  type TensorToWrite,
} from '../../src-main/models/weights/safetensors';
import { f16BitsToF32, f32ToF16Bits, f32ToBf16Bits } from '../../src-main/models/weights/dtype';

const { dir, cleanup } = tempDir('safetensors-');
after(cleanup);

function seq(n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin(i * 1.7 + 0.3) * scale;
  return a;
}

test('f32 round trip is exact and the file matches the safetensors layout', () => {
  const p = join(dir, 'a.safetensors');
  const w = seq(12);
  const b = seq(3);
  writeSafetensors(p, [
    { name: 'w', dtype: 'F32', shape: [3, 4], data: () => w },
    { name: 'b', dtype: 'F32', shape: [3], data: () => b },
  ]);
  const raw = readFileSync(p);
  const n = Number(raw.readBigUInt64LE(0));
  assert.equal(n % 8, 0, 'header padded to 8 bytes');
  const header = JSON.parse(raw.subarray(8, 8 + n).toString());
  assert.deepEqual(header.__metadata__, { format: 'pt' });
  assert.deepEqual(header.b, { dtype: 'F32', shape: [3], data_offsets: [0, 12] });
  assert.deepEqual(header.w, { dtype: 'F32', shape: [3, 4], data_offsets: [12, 60] });
  assert.equal(raw.length, 8 + n + 60);
  // data is little-endian f32 at the offsets
  assert.equal(raw.readFloatLE(8 + n + 12 + 4 * 5), w[5]);
  const back = readSafetensors(p);
  assert.deepEqual([...back.get('w')!.data], [...w]);
  assert.deepEqual(back.get('w')!.shape, [3, 4]);
  assert.deepEqual([...back.get('b')!.data], [...b]);
});

test('f16 and bf16: written values are rounded, and rewriting what was read is bit-identical', () => {
  const vals = new Float32Array([0, -0, 1, -2.5, 65504, 1e-7, 3.14159, -1e4, 0.1, 6e-8, 1 / 3]);
  for (const dtype of ['F16', 'BF16'] as const) {
    const p1 = join(dir, `${dtype}-1.safetensors`);
    const p2 = join(dir, `${dtype}-2.safetensors`);
    writeSafetensors(p1, [{ name: 'x', dtype, shape: [vals.length], data: () => vals }]);
    const r1 = readSafetensors(p1).get('x')!;
    assert.equal(r1.dtype, dtype);
    for (let i = 0; i < vals.length; i++) {
      const rel = Math.abs(r1.data[i] - vals[i]) / Math.max(Math.abs(vals[i]), 1e-3);
      assert.ok(
        rel < (dtype === 'F16' ? 1e-3 : 8e-3) || (dtype === 'F16' && Math.abs(vals[i]) < 1e-4),
        `${dtype} ${vals[i]} -> ${r1.data[i]}`,
      );
    }
    writeSafetensors(p2, [{ name: 'x', dtype, shape: [vals.length], data: () => r1.data }]);
    assert.deepEqual(readFileSync(p1), readFileSync(p2));
  }
  // known bit patterns
  assert.equal(f32ToF16Bits(1), 0x3c00);
  assert.equal(f32ToF16Bits(-2), 0xc000);
  assert.equal(f32ToF16Bits(65504), 0x7bff);
  assert.equal(f32ToF16Bits(65520), 0x7c00); // rounds to +Inf
  assert.equal(f32ToF16Bits(2 ** -24), 0x0001); // smallest subnormal
  assert.equal(f16BitsToF32(0x0001), 2 ** -24);
  assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00); // tie -> even
  assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02); // tie -> even (up)
  assert.equal(f32ToBf16Bits(1), 0x3f80);
  assert.equal(f32ToBf16Bits(1 + 2 ** -8), 0x3f80); // tie -> even
  assert.equal(f32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82);
  assert.ok(Number.isNaN(f16BitsToF32(f32ToF16Bits(NaN))));
});

test('reads are lazy: one tensor is read without reading the others', () => {
  const p = join(dir, 'lazy.safetensors');
  writeSafetensors(p, [
    { name: 'big', dtype: 'F32', shape: [1000], data: () => seq(1000) },
    { name: 'small', dtype: 'BF16', shape: [2], data: () => new Float32Array([1.5, -3]) },
  ]);
  const f = SafetensorsFile.open(p);
  assert.deepEqual(f.info('big').shape, [1000]);
  assert.deepEqual([...f.get('small')], [1.5, -3]);
  assert.equal(f.readBytes('small').length, 4);
  f.close();
  assert.throws(() => f.get('small'), /after close/);
});

test('sharded write + index read: same tensors, index maps every tensor to its shard', () => {
  const sub = join(dir, 'sharded');
  mkdirSync(sub);
  const ts: TensorToWrite[] = [];
  const data = new Map<string, Float32Array>();
  for (let i = 0; i < 5; i++) {
    const d = seq(100 + i, i + 1);
    data.set(`layer.${i}.w`, d);
    ts.push({ name: `layer.${i}.w`, dtype: i % 2 ? 'BF16' : 'F32', shape: [100 + i], data: () => d });
  }
  const files = writeWeightsFolder(sub, ts, { maxShardBytes: 900 });
  assert.ok(files.length > 2, `several shards: ${files}`);
  assert.ok(files.includes('model.safetensors.index.json'));
  assert.ok(files.includes(`model-00001-of-${String(files.length - 1).padStart(5, '0')}.safetensors`));
  const idx = readShardIndex(join(sub, 'model.safetensors.index.json'));
  assert.equal(idx.weightMap.size, 5);
  const total = ts.reduce((s, t) => s + t.shape[0] * (t.dtype === 'F32' ? 4 : 2), 0);
  assert.equal(idx.metadata.total_size, total);
  const st = ShardedSafetensors.openFolder(sub);
  assert.deepEqual(st.names().sort(), [...data.keys()].sort());
  for (const [name, d] of data) {
    const got = st.get(name);
    if (st.info(name).dtype === 'F32') assert.deepEqual([...got], [...d]);
    else for (let i = 0; i < d.length; i++) assert.ok(Math.abs(got[i] - d[i]) <= Math.abs(d[i]) * 4e-3 + 1e-6);
  }
  st.close();
  // re-saving as a single file removes the index so it cannot shadow the new file
  writeWeightsFolder(sub, ts);
  assert.ok(!existsSync(join(sub, 'model.safetensors.index.json')));
  assert.ok(readdirSync(sub).includes('model.safetensors'));
});

function corrupt(name: string, header: unknown, dataLen: number): string {
  const p = join(dir, name);
  const h = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  writeFileSync(p, Buffer.concat([len, h, Buffer.alloc(dataLen)]));
  return p;
}

test('invalid headers are errors naming the file and the tensor', () => {
  const cases: Array<[string, unknown, number, RegExp]> = [
    ['bad-dtype', { t: { dtype: 'F12', shape: [2], data_offsets: [0, 8] } }, 8, /tensor "t": unknown dtype "F12"/],
    [
      'bad-size',
      { t: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } },
      8,
      /tensor "t": data_offsets span 8 bytes but F32\[3\] needs 12/,
    ],
    [
      'past-end',
      { t: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } },
      8,
      /tensor "t": data_offsets end 16 is past the data buffer/,
    ],
    [
      'overlap',
      { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } },
      8,
      /tensor "b": data_offsets start at 4, expected 8/,
    ],
    [
      'hole',
      { a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } },
      8,
      /tensor "a": data_offsets start at 4, expected 0/,
    ],
    ['bad-shape', { a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4, /tensor "a": shape \[-1\]/],
  ];
  for (const [name, header, len, re] of cases) {
    const p = corrupt(`${name}.safetensors`, header, len);
    assert.throws(
      () => SafetensorsFile.open(p),
      (e: Error) => {
        assert.match(e.message, new RegExp(`${name}\\.safetensors`));
        assert.match(e.message, re);
        return true;
      },
      name,
    );
  }
  const p = join(dir, 'short.safetensors');
  writeFileSync(p, Buffer.from([1, 2, 3]));
  assert.throws(() => SafetensorsFile.open(p), /short\.safetensors: file is 3 bytes/);
  const q = join(dir, 'huge-header.safetensors');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(1000n);
  writeFileSync(q, Buffer.concat([len, Buffer.from('{}')]));
  assert.throws(() => SafetensorsFile.open(q), /huge-header\.safetensors: header length 1000 runs past the end/);
});

test('an index that disagrees with its shards, or escapes the folder, is an error naming the tensor', () => {
  const sub = join(dir, 'badindex');
  mkdirSync(sub);
  writeSafetensors(join(sub, 'model-00001-of-00001.safetensors'), [
    { name: 'a', dtype: 'F32', shape: [1], data: () => new Float32Array([1]) },
  ]);
  const idx = join(sub, 'model.safetensors.index.json');
  writeFileSync(
    idx,
    JSON.stringify({ weight_map: { a: 'model-00001-of-00001.safetensors', b: 'model-00001-of-00001.safetensors' } }),
  );
  assert.throws(
    () => ShardedSafetensors.openFolder(sub),
    /model\.safetensors\.index\.json: weight_map\["b"\] names model-00001-of-00001\.safetensors, which has no such tensor/,
  );
  writeFileSync(idx, JSON.stringify({ weight_map: { a: '../../etc/passwd' } }));
  assert.throws(
    () => ShardedSafetensors.openFolder(sub),
    /weight_map\["a"\]: path "\.\.\/\.\.\/etc\/passwd" escapes the folder/,
  );
  writeSafetensors(join(sub, 'model-00001-of-00001.safetensors'), [
    { name: 'a', dtype: 'F32', shape: [1], data: () => new Float32Array([1]) },
    { name: 'c', dtype: 'F32', shape: [1], data: () => new Float32Array([2]) },
  ]);
  writeFileSync(idx, JSON.stringify({ weight_map: { a: 'model-00001-of-00001.safetensors' } }));
  assert.throws(() => ShardedSafetensors.openFolder(sub), /tensor "c" is not listed in .*index\.json/);
  writeFileSync(idx, JSON.stringify({ weight_map: {} }));
  assert.throws(() => ShardedSafetensors.openFolder(sub), /index\.json: field "weight_map" is empty/);
});
