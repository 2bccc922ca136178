// FLAC decoding through @wasm-audio-decoders/flac (libFLAC compiled to WebAssembly, inlined in the package: it
// installs offline and needs no native build). STREAMINFO is read here first so the limits (channels, rate,
// duration) are checked before the decoder allocates anything; a stream that does not state its length is checked
// again after decoding, under the worker's heap limit.
import { FLACDecoder } from '@wasm-audio-decoders/flac';
import { MediaError } from './errors';
import { AUDIO_LIMITS, type AudioLimits, type DecodedAudio } from './limits';
import { checkDuration, checkHeader } from './wav';

export function isFlac(b: Uint8Array): boolean {
  return b.length >= 4 && b[0] === 0x66 && b[1] === 0x4c && b[2] === 0x61 && b[3] === 0x43; // 'fLaC'
}

export interface FlacStreamInfo {
  sampleRate: number;
  channels: number;
  bitsPerSample: number;
  /** 0 when the encoder did not know it. */
  totalSamples: number;
}

/** The STREAMINFO block, which the format requires to be the first metadata block. */
export function readStreamInfo(b: Uint8Array, file: string): FlacStreamInfo {
  if (!isFlac(b)) throw new MediaError(file, "not a FLAC file (no 'fLaC' marker)");
  if (b.length < 8 + 34) throw new MediaError(file, 'truncated FLAC: the file ends inside STREAMINFO');
  const type = b[4] & 0x7f;
  const len = (b[5] << 16) | (b[6] << 8) | b[7];
  if (type !== 0 || len !== 34)
    throw new MediaError(file, 'corrupt FLAC: the first metadata block is not a 34-byte STREAMINFO');
  const s = 8;
  const sampleRate = (b[s + 10] << 12) | (b[s + 11] << 4) | (b[s + 12] >> 4);
  const channels = ((b[s + 12] >> 1) & 0x7) + 1;
  const bitsPerSample = (((b[s + 12] & 1) << 4) | (b[s + 13] >> 4)) + 1;
  const totalSamples =
    (b[s + 13] & 0xf) * 2 ** 32 + ((b[s + 14] << 24) >>> 0) + (b[s + 15] << 16) + (b[s + 16] << 8) + b[s + 17];
  return { sampleRate, channels, bitsPerSample, totalSamples };
}

export async function decodeFlac(
  bytes: Uint8Array,
  file: string,
  limits: AudioLimits = AUDIO_LIMITS,
): Promise<DecodedAudio> {
  const info = readStreamInfo(bytes, file);
  checkHeader(file, info.channels, info.sampleRate, limits);
  if (info.totalSamples > 0) checkDuration(file, info.totalSamples, info.sampleRate, limits);
  const decoder = new FLACDecoder();
  let result: Awaited<ReturnType<FLACDecoder['decodeFile']>>;
  try {
    await decoder.ready;
    result = await decoder.decodeFile(bytes);
  } catch (err) {
    throw new MediaError(file, `corrupt FLAC: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  } finally {
    decoder.free();
  }
  if (result.errors.length > 0) {
    const e = result.errors[0];
    throw new MediaError(
      file,
      `corrupt FLAC: ${e.message} (frame ${e.frameNumber}${result.errors.length > 1 ? `, and ${result.errors.length - 1} more error(s)` : ''})`,
    );
  }
  if (result.samplesDecoded === 0 || result.channelData.length === 0)
    throw new MediaError(file, 'corrupt FLAC: no audio frames could be decoded');
  if (info.totalSamples > 0 && result.samplesDecoded < info.totalSamples) {
    throw new MediaError(file, `truncated FLAC: ${result.samplesDecoded} of ${info.totalSamples} samples decoded`);
  }
  checkDuration(file, result.samplesDecoded, result.sampleRate, limits);
  return {
    format: 'flac',
    sampleRate: result.sampleRate,
    channels: result.channelData.map((c) =>
      rescale(c.length === result.samplesDecoded ? c : c.subarray(0, result.samplesDecoded), info.bitsPerSample),
    ),
    encoding: `flac${info.bitsPerSample}`,
  };
}

/**
 * libFLAC's float output is int / (2^(b−1) − 1); WAV (and libsndfile, soundfile, torchaudio) use int / 2^(b−1), so the
 * same PCM reads the same whether it was stored as WAV or FLAC. Up to 20 bits the integer is recovered exactly
 * from the float32; above that the scale is applied directly (a float32 rounding apart).
 */
function rescale(c: Float32Array, bits: number): Float32Array {
  const max = 2 ** (bits - 1) - 1;
  const full = 2 ** (bits - 1);
  if (bits <= 20) for (let i = 0; i < c.length; i++) c[i] = Math.round(c[i] * max) / full;
  else for (let i = 0; i < c.length; i++) c[i] = (c[i] * max) / full;
  return c;
}
