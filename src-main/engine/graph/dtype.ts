// Element types: names, ONNX TensorProto.DataType codes, typed-array constructors and byte sizes.

export type DType =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'bfloat16'
  | 'int8'
  | 'uint8'
  | 'int16'
  | 'uint16'
  | 'int32'
  | 'uint32'
  | 'int64'
  | 'uint64'
  | 'bool'
  /** 4-bit signed, two per byte (low nibble first), as ONNX INT4: weights only (DequantizeLinear / MatMulNBits) */
  | 'int4';

/** TensorProto.DataType enum values. */
export const ONNX_DTYPE: Record<DType, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  uint16: 4,
  int16: 5,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
  uint32: 12,
  uint64: 13,
  bfloat16: 16,
  int4: 22,
};

export const DTYPE_FROM_ONNX: Record<number, DType> = Object.fromEntries(
  Object.entries(ONNX_DTYPE).map(([k, v]) => [v, k as DType]),
) as Record<number, DType>;

export const DTYPE_BYTES: Record<DType, number> = {
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
  int8: 1,
  uint8: 1,
  int16: 2,
  uint16: 2,
  int32: 4,
  uint32: 4,
  int64: 8,
  uint64: 8,
  bool: 1,
  int4: 0.5,
};

export type TypedArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

/** The typed array that holds each dtype's elements (float16/bfloat16 as raw Uint16 bits, bool as Uint8). */
export function typedArrayFor(dtype: DType, n: number): TypedArray {
  switch (dtype) {
    case 'float32':
      return new Float32Array(n);
    case 'float64':
      return new Float64Array(n);
    case 'float16':
    case 'bfloat16':
    case 'uint16':
      return new Uint16Array(n);
    case 'int8':
      return new Int8Array(n);
    case 'uint8':
    case 'bool':
      return new Uint8Array(n);
    case 'int4':
      return new Uint8Array(Math.ceil(n / 2));
    case 'int16':
      return new Int16Array(n);
    case 'int32':
      return new Int32Array(n);
    case 'uint32':
      return new Uint32Array(n);
    case 'int64':
      return new BigInt64Array(n);
    case 'uint64':
      return new BigUint64Array(n);
  }
}

/** Fill a typed array of `dtype` from JS numbers/bigints/booleans (float16/bfloat16 are not converted here). */
export function toTypedArray(dtype: DType, values: ArrayLike<number | bigint | boolean> | TypedArray): TypedArray {
  if (isTypedArrayOf(dtype, values)) return values as TypedArray;
  const out = typedArrayFor(dtype, values.length);
  if (dtype === 'float16' || dtype === 'bfloat16')
    throw new Error(`toTypedArray: give ${dtype} data as raw Uint16Array bits`);
  if (dtype === 'int64' || dtype === 'uint64') {
    const o = out as BigInt64Array;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      o[i] = typeof v === 'bigint' ? v : BigInt(Math.trunc(Number(v)));
    }
  } else {
    const o = out as Float64Array;
    for (let i = 0; i < values.length; i++) o[i] = Number(values[i]);
  }
  return out;
}

export function isTypedArrayOf(dtype: DType, a: unknown): boolean {
  switch (dtype) {
    case 'float32':
      return a instanceof Float32Array;
    case 'float64':
      return a instanceof Float64Array;
    case 'float16':
    case 'bfloat16':
    case 'uint16':
      return a instanceof Uint16Array;
    case 'int8':
      return a instanceof Int8Array;
    case 'uint8':
    case 'bool':
    case 'int4':
      return a instanceof Uint8Array;
    case 'int16':
      return a instanceof Int16Array;
    case 'int32':
      return a instanceof Int32Array;
    case 'uint32':
      return a instanceof Uint32Array;
    case 'int64':
      return a instanceof BigInt64Array;
    case 'uint64':
      return a instanceof BigUint64Array;
  }
}

export function isFloat(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float64' || dtype === 'float16' || dtype === 'bfloat16';
}
