// Audio files to the mono 16 kHz float32 samples audio encoders take. Headless decoding covers WAV (in JS) and FLAC
// (WebAssembly); other containers are recognized by their magic bytes and refused with a message saying what
// would work. Untrusted bytes: every limit (AudioLimits) is checked from the header first, and callers on the
// backend decode through media-worker.ts so a hostile file costs a worker, not the event loop.
import { readRegularFile } from '../datasets/read';
import { MediaError } from './errors';
import { decodeFlac, isFlac } from './flac';
import { AUDIO_LIMITS, type AudioLimits, type DecodedAudio } from './limits';
import { resample } from './resample';
import { decodeWav, isWav } from './wav';

/** The rate Whisper-style encoders expect. */
export const TARGET_SAMPLE_RATE = 16_000;
/** The encoder window (Whisper: 30 s of audio → 3000 mel frames). */
export const CLIP_WINDOW_SECONDS = 30;

export const AUDIO_EXTENSIONS = ['.wav', '.wave', '.flac', '.mp3', '.ogg', '.oga', '.opus', '.m4a', '.aac'] as const;
export function isAudioName(name: string): boolean {
  const lower = name.toLowerCase();
  return AUDIO_EXTENSIONS.some((e) => lower.endsWith(e));
}

export type AudioContainer = 'wav' | 'flac' | 'mp3' | 'ogg' | 'mp4' | 'webm' | 'aiff' | 'unknown';

/** What the bytes are, from their magic numbers (never from the file name). */
export function sniffAudio(b: Uint8Array): AudioContainer {
  const s = (at: number, n: number) => String.fromCharCode(...b.subarray(at, at + n));
  if (isWav(b) || s(0, 4) === 'RF64' || s(0, 4) === 'RIFX') return 'wav';
  if (isFlac(b)) return 'flac';
  if (s(0, 4) === 'OggS') return 'ogg';
  if (s(0, 3) === 'ID3' || (b.length >= 2 && b[0] === 0xff && (b[1] & 0xe0) === 0xe0 && (b[1] & 0x06) !== 0))
    return 'mp3';
  if (s(4, 4) === 'ftyp') return 'mp4';
  if (b.length >= 4 && b[0] === 0x1a && b[1] === 0x45 && b[2] === 0xdf && b[3] === 0xa3) return 'webm';
  if (s(0, 4) === 'FORM' && (s(8, 4) === 'AIFF' || s(8, 4) === 'AIFC')) return 'aiff';
  return 'unknown';
}

const UNSUPPORTED: Record<string, string> = {
  mp3: 'MP3 is not decoded headless (WAV and FLAC are); convert it to WAV or FLAC, or add it in the app, which decodes it with WebAudio',
  ogg: 'Ogg (Vorbis/Opus) is not decoded headless (WAV and FLAC are); convert it to WAV or FLAC, or add it in the app, which decodes it with WebAudio',
  mp4: 'MP4/M4A audio is not decoded headless (WAV and FLAC are); convert it to WAV or FLAC',
  webm: 'WebM audio is not decoded headless (WAV and FLAC are); convert it to WAV or FLAC',
  aiff: 'AIFF is not supported (WAV and FLAC are); convert it to WAV',
  unknown: 'not a supported audio file (WAV or FLAC expected; the first bytes match no known audio format)',
};

/** A clip ready for an audio encoder: mono samples at `sampleRate`. */
export interface AudioClip {
  samples: Float32Array;
  sampleRate: number;
  sourceRate: number;
  sourceChannels: number;
  format: DecodedAudio['format'];
  encoding: string;
  seconds: number;
}

export interface DecodeAudioOptions {
  /** Output rate (default 16 kHz); null keeps the file's rate. */
  sampleRate?: number | null;
  limits?: Partial<AudioLimits>;
}

/** Decode a file's channels at its own rate. */
export async function decodeAudioChannels(
  bytes: Uint8Array,
  file: string,
  limits: Partial<AudioLimits> = {},
): Promise<DecodedAudio> {
  const lim = { ...AUDIO_LIMITS, ...limits };
  if (bytes.length === 0) throw new MediaError(file, 'audio file is empty (0 bytes)');
  if (bytes.length > lim.maxBytes)
    throw new MediaError(file, `audio file is too large (${bytes.length} bytes; limit ${lim.maxBytes})`);
  const kind = sniffAudio(bytes);
  if (kind === 'wav') return decodeWav(bytes, file, lim);
  if (kind === 'flac') return decodeFlac(bytes, file, lim);
  throw new MediaError(file, UNSUPPORTED[kind]);
}

/** Average the channels (what WhisperFeatureExtractor users do with stereo input). */
export function toMono(channels: Float32Array[]): Float32Array {
  if (channels.length === 1) return channels[0];
  const n = channels[0].length;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (const c of channels) s += c[i];
    out[i] = s / channels.length;
  }
  return out;
}

export async function decodeAudio(bytes: Uint8Array, file: string, opts: DecodeAudioOptions = {}): Promise<AudioClip> {
  const d = await decodeAudioChannels(bytes, file, opts.limits);
  const mono = toMono(d.channels);
  const rate = opts.sampleRate === null ? d.sampleRate : (opts.sampleRate ?? TARGET_SAMPLE_RATE);
  const samples = rate === d.sampleRate ? mono : resample(mono, d.sampleRate, rate);
  return {
    samples,
    sampleRate: rate,
    sourceRate: d.sampleRate,
    sourceChannels: d.channels.length,
    format: d.format,
    encoding: d.encoding,
    seconds: mono.length / d.sampleRate,
  };
}

/** Read (regular files only, size-limited) and decode. `label` names the file in errors (default: the path). */
export async function decodeAudioFile(
  path: string,
  opts: DecodeAudioOptions & { label?: string } = {},
): Promise<AudioClip> {
  const label = opts.label ?? path;
  const max = opts.limits?.maxBytes ?? AUDIO_LIMITS.maxBytes;
  let bytes: Uint8Array;
  try {
    bytes = readRegularFile(path, label, max, 'audio file');
  } catch (err) {
    throw new MediaError(label, (err as Error).message.replace(`${label}: `, ''), { cause: err });
  }
  return decodeAudio(bytes, label, opts);
}

export interface WindowedClip {
  /** Segments of at most `windowSeconds` (one when the clip fits or is truncated). */
  segments: Float32Array[];
  /** Set when the clip was longer than the window: what was done, for the lint/import warning. */
  warning?: string;
}

/**
 * Fit a clip to the encoder window: 'truncate' keeps the first window, 'split' cuts consecutive windows (the last
 * one shorter). Either way a clip over the window carries a warning naming its length and what was done.
 */
export function fitToWindow(
  samples: Float32Array,
  sampleRate: number,
  mode: 'split' | 'truncate',
  windowSeconds = CLIP_WINDOW_SECONDS,
): WindowedClip {
  const win = Math.round(windowSeconds * sampleRate);
  if (samples.length <= win) return { segments: [samples] };
  const seconds = (samples.length / sampleRate).toFixed(1);
  if (mode === 'truncate') {
    return {
      segments: [samples.subarray(0, win)],
      warning: `clip is ${seconds} s, longer than the ${windowSeconds} s encoder window: only the first ${windowSeconds} s are used`,
    };
  }
  const segments: Float32Array[] = [];
  for (let at = 0; at < samples.length; at += win)
    segments.push(samples.subarray(at, Math.min(samples.length, at + win)));
  return {
    segments,
    warning: `clip is ${seconds} s, longer than the ${windowSeconds} s encoder window: split into ${segments.length} segments of at most ${windowSeconds} s`,
  };
}
