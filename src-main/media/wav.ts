// RIFF/WAVE parsing: PCM 8-bit unsigned, 16/24/32-bit signed integer, IEEE float 32/64, plain and
// WAVE_FORMAT_EXTENSIBLE headers. Samples become float32 in [-1, 1) per channel. Limits are checked on the header,
// before anything is allocated for the samples.
import { MediaError } from './errors';
import { AUDIO_LIMITS, type AudioLimits, type DecodedAudio } from './limits';

const FORMAT_PCM = 1;
const FORMAT_FLOAT = 3;
const FORMAT_EXTENSIBLE = 0xfffe;
const FORMAT_NAMES: Record<number, string> = {
  2: 'Microsoft ADPCM',
  6: 'A-law',
  7: 'µ-law',
  0x11: 'IMA ADPCM',
  0x55: 'MPEG layer 3',
  0x50: 'MPEG',
};

export function isWav(b: Uint8Array): boolean {
  return b.length >= 12 && ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 4) === 'WAVE';
}

function ascii(b: Uint8Array, at: number, n: number): string {
  let s = '';
  for (let i = 0; i < n && at + i < b.length; i++) s += String.fromCharCode(b[at + i]);
  return s;
}

interface WavFormat {
  format: number;
  channels: number;
  sampleRate: number;
  blockAlign: number;
  bits: number;
}

/** Decode a WAV file's bytes. `file` names it in errors. */
export function decodeWav(bytes: Uint8Array, file: string, limits: AudioLimits = AUDIO_LIMITS): DecodedAudio {
  if (ascii(bytes, 0, 4) === 'RF64')
    throw new MediaError(file, 'RF64 (64-bit WAV) is not supported; convert it to a WAV under 4 GiB or to FLAC');
  if (ascii(bytes, 0, 4) === 'RIFX') throw new MediaError(file, 'big-endian WAV (RIFX) is not supported');
  if (!isWav(bytes)) throw new MediaError(file, 'not a WAV file (no RIFF/WAVE header)');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let fmt: WavFormat | undefined;
  let dataAt = -1;
  let dataLen = 0;
  let at = 12;
  while (at + 8 <= bytes.length) {
    const id = ascii(bytes, at, 4);
    const size = view.getUint32(at + 4, true);
    const body = at + 8;
    if (id === 'fmt ') {
      if (size < 16 || body + 16 > bytes.length)
        throw new MediaError(file, `corrupt WAV: 'fmt ' chunk is ${size} bytes (at least 16 needed)`);
      let format = view.getUint16(body, true);
      const channels = view.getUint16(body + 2, true);
      const sampleRate = view.getUint32(body + 4, true);
      const blockAlign = view.getUint16(body + 12, true);
      const bits = view.getUint16(body + 14, true);
      if (format === FORMAT_EXTENSIBLE) {
        if (size < 40 || body + 40 > bytes.length)
          throw new MediaError(file, 'corrupt WAV: WAVE_FORMAT_EXTENSIBLE header is shorter than 40 bytes');
        format = view.getUint16(body + 24, true); // the first two bytes of the sub-format GUID
      }
      fmt = { format, channels, sampleRate, blockAlign, bits };
    } else if (id === 'data') {
      dataAt = body;
      const rest = bytes.length - body;
      // streaming writers leave 0 or 0xFFFFFFFF when they could not seek back: the data is the rest of the file
      if (size === 0xffffffff || (size === 0 && rest > 0)) dataLen = rest;
      else if (size > rest)
        throw new MediaError(file, `truncated WAV: the data chunk says ${size} bytes but only ${rest} follow`);
      else dataLen = size;
      break;
    }
    at = body + size + (size & 1);
  }
  if (!fmt) throw new MediaError(file, "corrupt WAV: no 'fmt ' chunk before the data");
  if (dataAt < 0) throw new MediaError(file, "corrupt WAV: no 'data' chunk");
  const { format, channels, sampleRate, bits } = fmt;
  if (format !== FORMAT_PCM && format !== FORMAT_FLOAT) {
    const name = FORMAT_NAMES[format] ?? `format code ${format}`;
    throw new MediaError(
      file,
      `unsupported WAV encoding: ${name} (supported: PCM 8/16/24/32-bit integer, 32/64-bit float)`,
    );
  }
  const intOk = format === FORMAT_PCM && (bits === 8 || bits === 16 || bits === 24 || bits === 32);
  const floatOk = format === FORMAT_FLOAT && (bits === 32 || bits === 64);
  if (!intOk && !floatOk)
    throw new MediaError(
      file,
      `unsupported WAV sample format: ${format === FORMAT_FLOAT ? 'float' : 'integer'} with ${bits} bits per sample`,
    );
  checkHeader(file, channels, sampleRate, limits);
  const width = bits / 8;
  if (fmt.blockAlign !== width * channels)
    throw new MediaError(
      file,
      `corrupt WAV: block align ${fmt.blockAlign} does not match ${channels} channel(s) × ${bits} bits`,
    );
  const frames = Math.floor(dataLen / fmt.blockAlign);
  checkDuration(file, frames, sampleRate, limits);
  const out: Float32Array[] = [];
  for (let c = 0; c < channels; c++) out.push(new Float32Array(frames));
  for (let c = 0; c < channels; c++) {
    const ch = out[c];
    let p = dataAt + c * width;
    const step = fmt.blockAlign;
    if (format === FORMAT_FLOAT) {
      if (bits === 32) for (let i = 0; i < frames; i++, p += step) ch[i] = view.getFloat32(p, true);
      else for (let i = 0; i < frames; i++, p += step) ch[i] = view.getFloat64(p, true);
      for (let i = 0; i < frames; i++)
        if (!Number.isFinite(ch[i]))
          throw new MediaError(file, `corrupt WAV: sample ${i} of channel ${c} is not a finite number`);
    } else if (bits === 8) for (let i = 0; i < frames; i++, p += step) ch[i] = (bytes[p] - 128) / 128;
    else if (bits === 16) for (let i = 0; i < frames; i++, p += step) ch[i] = view.getInt16(p, true) / 32768;
    else if (bits === 24) {
      for (let i = 0; i < frames; i++, p += step) {
        const v = bytes[p] | (bytes[p + 1] << 8) | (bytes[p + 2] << 16);
        ch[i] = ((v << 8) >> 8) / 8388608;
      }
    } else for (let i = 0; i < frames; i++, p += step) ch[i] = view.getInt32(p, true) / 2147483648;
  }
  return {
    format: 'wav',
    sampleRate,
    channels: out,
    encoding: format === FORMAT_FLOAT ? `float${bits}` : `pcm${bits}`,
  };
}

export function checkHeader(file: string, channels: number, sampleRate: number, limits: AudioLimits): void {
  if (channels < 1) throw new MediaError(file, 'corrupt audio: 0 channels');
  if (channels > limits.maxChannels)
    throw new MediaError(file, `too many channels: ${channels} (limit ${limits.maxChannels})`);
  if (sampleRate < limits.minSampleRate || sampleRate > limits.maxSampleRate) {
    throw new MediaError(
      file,
      `unsupported sample rate ${sampleRate} Hz (accepted: ${limits.minSampleRate}–${limits.maxSampleRate} Hz)`,
    );
  }
}

export function checkDuration(file: string, frames: number, sampleRate: number, limits: AudioLimits): void {
  if (frames === 0) throw new MediaError(file, 'audio has no samples');
  const seconds = frames / sampleRate;
  if (seconds > limits.maxSeconds)
    throw new MediaError(file, `audio is too long: ${seconds.toFixed(1)} s (limit ${limits.maxSeconds} s)`);
}
