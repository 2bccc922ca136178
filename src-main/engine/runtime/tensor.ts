// Host tensors <-> onnxruntime tensors.

import * as ort from 'onnxruntime-node';
import { DType, TypedArray, toTypedArray, typedArrayFor } from '../graph/dtype';

export type OrtTensor = ort.Tensor;

/** ORT's name for each dtype. */
const ORT_TYPE: Record<DType, ort.Tensor.Type> = {
  float32: 'float32',
  float64: 'float64',
  float16: 'float16',
  bfloat16: 'uint16', // no bfloat16 on the JS side; carried as raw bits
  int8: 'int8',
  uint8: 'uint8',
  int16: 'int16',
  uint16: 'uint16',
  int32: 'int32',
  uint32: 'uint32',
  int64: 'int64',
  uint64: 'uint64',
  bool: 'bool',
  int4: 'int4',
};

/**
 * An ORT tensor of `dtype` and `dims`. `data` may be a typed array of the right kind (used without copying), a plain
 * array of numbers/bigints/booleans (converted; int64 accepts numbers), or omitted (zeros).
 */
export function tensor(
  dtype: DType,
  dims: readonly number[],
  data?: TypedArray | ArrayLike<number | bigint | boolean>,
): ort.Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  let arr: TypedArray;
  if (data === undefined) arr = typedArrayFor(dtype, n);
  else arr = toTypedArray(dtype, data as ArrayLike<number | bigint | boolean>);
  if (arr.length !== n) throw new Error(`tensor: ${arr.length} elements for dims [${dims.join(',')}] (${n} expected)`);
  if (dtype === 'float16') return new ort.Tensor('float16', arr as Uint16Array, dims);
  if (dtype === 'bool') return new ort.Tensor('bool', arr as Uint8Array, dims);
  return new ort.Tensor(ORT_TYPE[dtype] as 'float32', arr as Float32Array, dims);
}

export function scalarTensor(dtype: DType, x: number | bigint): ort.Tensor {
  return tensor(dtype, [], [x]);
}

/** Tensor contents as JS numbers (int64 converted with Number()). */
export function toNumbers(t: ort.Tensor): number[] {
  const d = t.data as ArrayLike<number | bigint>;
  return Array.from(d, (x) => Number(x));
}

/** Tensor contents as a Float64Array (for comparisons). */
export function toFloat64(t: ort.Tensor): Float64Array {
  const d = t.data as ArrayLike<number | bigint>;
  const out = new Float64Array(d.length);
  for (let i = 0; i < d.length; i++) out[i] = Number(d[i]);
  return out;
}

export { ort };
