// SafetensorsFile.get converts F16/BF16 (and F64) tensors in chunks (about 16 MiB of file bytes at a time) and reads F32
// straight into the result: the values must be those of converting the whole byte buffer at once (bytesToF32 over
// readBytes), for tensors spanning several chunks, with the chunk boundary inside the tensor.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { SafetensorsFile, writeSafetensors } from '../../src-main/models/weights/safetensors';
import { bytesToF32 } from '../../src-main/models/weights/dtype';

const { dir, cleanup } = tempDir('safetensors-chunked-');
after(cleanup);

test('chunked float32 reads (whole tensors and ranges) equal whole-buffer conversion for F32, F16 and BF16 across chunk boundaries', () => {
  const n = 9_000_001; // F16/BF16: 18 MB, two chunks, the second short; F32: 36 MB in one read
  const vals = () => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = Math.sin(i * 0.37) * (1 + (i % 97));
    return a;
  };
  const p = join(dir, 'big.safetensors');
  writeSafetensors(p, [
    { name: 'pad', dtype: 'BF16', shape: [3], data: () => new Float32Array([1, 2, 3]) }, // odd offsets after it
    { name: 'h', dtype: 'F16', shape: [n], data: vals },
    { name: 'b', dtype: 'BF16', shape: [n], data: vals },
    { name: 'f', dtype: 'F32', shape: [n], data: vals },
  ]);
  const f = SafetensorsFile.open(p);
  try {
    for (const name of ['pad', 'h', 'b', 'f']) {
      const t = f.info(name);
      const want = bytesToF32(f.readBytes(name), t.dtype, t.shape[0]);
      const got = f.get(name);
      assert.equal(got.length, want.length, name);
      assert.ok(Buffer.from(got.buffer).equals(Buffer.from(want.buffer)), `${name}: same float32 bits`);
      if (name === 'pad') continue;
      // ranges (as GraphWeights reads blocks of rows): the same values as the whole tensor's slice
      for (const [start, count] of [
        [0, 10],
        [8_388_600, 20],
        [n - 5, 5],
        [234567, 8_388_609],
        [n, 0],
      ]) {
        const r = f.getRange(name, start, count);
        assert.ok(
          Buffer.from(r.buffer).equals(Buffer.from(want.slice(start, start + count).buffer)),
          `${name}[${start}, +${count})`,
        );
      }
      assert.throws(
        () => f.getRange(name, n - 1, 2),
        new RegExp(`tensor "${name}": range \\[${n - 1}, ${n + 1}\\) is outside its ${n} elements`),
      );
    }
  } finally {
    f.close();
  }
});
