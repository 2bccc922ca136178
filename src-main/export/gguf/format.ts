// GGUF (version 3), as llama.cpp's ggml/gguf read it: the value and tensor type codes, block sizes, and the
// reference quantizers for Q8_0 and Q4_0 (bit-exact with ggml's quantize_row_q8_0_ref / quantize_row_q4_0_ref,
// so a file written here holds the same blocks llama.cpp's own converter and llama-quantize would write).
import { bytesToF32, f16BitsToF32, f32ToF16Bits } from '../../models/weights/dtype';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** gguf_type: the type tag of a metadata value. */
export const GgufValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type GgufValueTypeCode = (typeof GgufValueType)[keyof typeof GgufValueType];

/** The ggml tensor types this module writes (ggml_type codes). */
export const GgmlType = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8 } as const;
export type GgmlTypeName = keyof typeof GgmlType;
export const GGML_TYPE_NAMES: Record<number, GgmlTypeName> = { 0: 'F32', 1: 'F16', 2: 'Q4_0', 8: 'Q8_0' };

/** Elements per block and bytes per block of each type. */
export const GGML_BLOCK: Record<GgmlTypeName, { size: number; bytes: number }> = {
  F32: { size: 1, bytes: 4 },
  F16: { size: 1, bytes: 2 },
  Q4_0: { size: 32, bytes: 18 },
  Q8_0: { size: 32, bytes: 34 },
};

/** llama_ftype ("general.file_type"): what most of the file's weights are. */
export const LlamaFileType: Record<GgmlTypeName, number> = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 7 };

/** Bytes of a tensor of `ne0` x rest elements (ne0 = the last dimension in row-major order). */
export function tensorBytes(type: GgmlTypeName, shape: readonly number[]): number {
  const b = GGML_BLOCK[type];
  const n = shape.reduce((a, d) => a * d, 1);
  const ne0 = shape[shape.length - 1] ?? 1;
  if (ne0 % b.size !== 0) throw new Error(`a ${type} tensor needs rows of a multiple of ${b.size} values, got ${ne0}`);
  return (n / b.size) * b.bytes;
}

export function encodeF32(x: Float32Array): Uint8Array {
  return new Uint8Array(x.buffer.slice(x.byteOffset, x.byteOffset + x.byteLength));
}

export function encodeF16(x: Float32Array): Uint8Array {
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = f32ToF16Bits(x[i]);
  return new Uint8Array(out.buffer);
}

/** ggml quantize_row_q8_0_ref: per 32 values d = amax / 127 (stored f16), q = round(x / d) (half away from zero). */
export function encodeQ8_0(x: Float32Array): Uint8Array {
  if (x.length % 32) throw new Error(`Q8_0 needs a multiple of 32 values, got ${x.length}`);
  const nb = x.length / 32;
  const out = new Uint8Array(nb * 34);
  const dv = new DataView(out.buffer);
  const q = new Int8Array(out.buffer);
  for (let b = 0; b < nb; b++) {
    const o = b * 32;
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[o + j]));
    const d = Math.fround(amax / 127);
    const id = d ? Math.fround(1 / d) : 0;
    dv.setUint16(b * 34, f32ToF16Bits(d), true);
    for (let j = 0; j < 32; j++) {
      const v = Math.fround(x[o + j] * id);
      q[b * 34 + 2 + j] = v < 0 ? -Math.round(-v) : Math.round(v);
    }
  }
  return out;
}

/**
 * ggml quantize_row_q4_0_ref: per 32 values, max = the value of largest magnitude (sign kept), d = max / -8
 * (stored f16), q = min(15, trunc(x / d + 8.5)); byte j holds q[j] in its low nibble and q[j + 16] in its high one.
 * Dequantized: (q - 8) * d.
 */
export function encodeQ4_0(x: Float32Array): Uint8Array {
  if (x.length % 32) throw new Error(`Q4_0 needs a multiple of 32 values, got ${x.length}`);
  const nb = x.length / 32;
  const out = new Uint8Array(nb * 18);
  const dv = new DataView(out.buffer);
  for (let b = 0; b < nb; b++) {
    const o = b * 32;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[o + j];
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = Math.fround(max / -8);
    const id = d ? Math.fround(1 / d) : 0;
    dv.setUint16(b * 18, f32ToF16Bits(d), true);
    for (let j = 0; j < 16; j++) {
      const x0 = Math.fround(x[o + j] * id);
      const x1 = Math.fround(x[o + 16 + j] * id);
      const q0 = Math.min(15, Math.trunc(Math.fround(x0 + 8.5)));
      const q1 = Math.min(15, Math.trunc(Math.fround(x1 + 8.5)));
      out[b * 18 + 2 + j] = q0 | (q1 << 4);
    }
  }
  return out;
}

export function encodeTensor(type: GgmlTypeName, x: Float32Array): Uint8Array {
  switch (type) {
    case 'F32':
      return encodeF32(x);
    case 'F16':
      return encodeF16(x);
    case 'Q8_0':
      return encodeQ8_0(x);
    case 'Q4_0':
      return encodeQ4_0(x);
  }
}

/** The float32 values a tensor's bytes stand for (ggml's dequantize_row_* for the quantized types). */
export function decodeTensor(type: GgmlTypeName, bytes: Uint8Array, count: number): Float32Array {
  if (type === 'F32' || type === 'F16') return bytesToF32(bytes, type, count);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  switch (type) {
    case 'Q8_0':
      for (let b = 0; b < count / 32; b++) {
        const d = f16BitsToF32(dv.getUint16(b * 34, true));
        for (let j = 0; j < 32; j++) out[b * 32 + j] = dv.getInt8(b * 34 + 2 + j) * d;
      }
      return out;
    case 'Q4_0':
      for (let b = 0; b < count / 32; b++) {
        const d = f16BitsToF32(dv.getUint16(b * 18, true));
        for (let j = 0; j < 16; j++) {
          const byte = bytes[b * 18 + 2 + j];
          out[b * 32 + j] = ((byte & 0x0f) - 8) * d;
          out[b * 32 + 16 + j] = ((byte >> 4) - 8) * d;
        }
      }
      return out;
  }
}

/** The precisions an export writes the decoder's 2-D weights in. */
export const GGUF_QUANTS = ['f32', 'f16', 'q8_0', 'q4_0'] as const;
export type GgufQuant = (typeof GGUF_QUANTS)[number];

/** The ggml type of one tensor: 1-D tensors stay F32; a quantized type needs rows that are whole 32-value blocks
 *  (F16 otherwise); the output matrix is never Q4_0, as llama.cpp's converter keeps it. */
export function ggufWeightType(quant: GgufQuant, shape: number[], opts: { output?: boolean } = {}): GgmlTypeName {
  if (quant === 'f32' || shape.length !== 2) return 'F32';
  const ne0 = shape[1];
  if (quant === 'f16') return 'F16';
  const q: GgmlTypeName = quant === 'q4_0' && !opts.output ? 'Q4_0' : 'Q8_0';
  return ne0 % 32 === 0 ? q : 'F16';
}
