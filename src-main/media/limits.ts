// Limits on untrusted audio, checked from headers before samples are allocated, and the decoders' common result.

export interface AudioLimits {
  /** Largest audio file read (bytes). */
  maxBytes: number;
  /** Longest audio decoded (seconds); longer files are refused, clips over the encoder window are split later. */
  maxSeconds: number;
  maxChannels: number;
  minSampleRate: number;
  maxSampleRate: number;
}

export const AUDIO_LIMITS: AudioLimits = {
  maxBytes: 512 * 1024 * 1024,
  maxSeconds: 60 * 60,
  maxChannels: 8,
  minSampleRate: 1000,
  maxSampleRate: 384_000,
};

/** A file's samples as decoded: float32 per channel at the file's own rate. */
export interface DecodedAudio {
  format: 'wav' | 'flac';
  sampleRate: number;
  channels: Float32Array[];
  /** e.g. 'pcm16', 'float32', 'flac24'. */
  encoding: string;
}
