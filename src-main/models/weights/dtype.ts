// Element types of safetensors files and conversion of the float ones to and from Float32Array.
// f16/bf16 are converted by hand (Node 20 has no Float16Array); f32 -> f16/bf16 rounds to nearest even,
// as torch's .to(torch.float16/bfloat16) does, so an f16/bf16 tensor read as f32 and written back is bit-identical.

/** Every dtype the safetensors format defines (header validation accepts all of them). */
export const DTYPE_BYTES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
} as const;

export type Dtype = keyof typeof DTYPE_BYTES;
/** The dtypes Lenslab reads into and writes from Float32Array. */
export type FloatDtype = 'F32' | 'F16' | 'BF16';
export const FLOAT_DTYPES: readonly FloatDtype[] = ['F32', 'F16', 'BF16'];

export function isDtype(s: unknown): s is Dtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}
export function isFloatDtype(s: unknown): s is FloatDtype {
  return s === 'F32' || s === 'F16' || s === 'BF16';
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero / subnormal
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** f32 -> f16 bits, round to nearest even, overflow to Inf, NaN kept NaN. */
export function f32ToF16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // underflows to zero
    mant |= 0x800000; // implicit leading 1
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++; // may carry into the exponent: still correct
  return sign | half;
}

/** f32 -> bf16 bits, round to nearest even; NaN stays a quiet NaN. */
export function f32ToBf16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0];
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return ((x >>> 16) | 0x40) & 0xffff;
  const rounded = x + 0x7fff + ((x >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

/** Decode little-endian bytes of `dtype` into a new Float32Array of `count` elements. */
export function bytesToF32(bytes: Uint8Array, dtype: Dtype, count: number): Float32Array {
  const out = new Float32Array(count);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < count; i++) out[i] = dv.getFloat32(i * 4, true);
      return out;
    case 'F16':
      for (let i = 0; i < count; i++) out[i] = f16BitsToF32(dv.getUint16(i * 2, true));
      return out;
    case 'BF16': {
      const o32 = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) o32[i] = dv.getUint16(i * 2, true) << 16;
      return out;
    }
    case 'F64':
      for (let i = 0; i < count; i++) out[i] = dv.getFloat64(i * 8, true);
      return out;
    case 'I64':
      for (let i = 0; i < count; i++) out[i] = Number(dv.getBigInt64(i * 8, true));
      return out;
    case 'I32':
      for (let i = 0; i < count; i++) out[i] = dv.getInt32(i * 4, true);
      return out;
    default:
      throw new Error(`dtype ${dtype} cannot be read as float32`);
  }
}

/** Encode float32 values as little-endian bytes of a float dtype. */
export function f32ToBytes(data: Float32Array, dtype: FloatDtype): Uint8Array {
  const n = data.length;
  const out = new Uint8Array(n * DTYPE_BYTES[dtype]);
  const dv = new DataView(out.buffer);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) dv.setFloat32(i * 4, data[i], true);
      break;
    case 'F16':
      for (let i = 0; i < n; i++) dv.setUint16(i * 2, f32ToF16Bits(data[i]), true);
      break;
    case 'BF16':
      for (let i = 0; i < n; i++) dv.setUint16(i * 2, f32ToBf16Bits(data[i]), true);
      break;
  }
  return out;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
