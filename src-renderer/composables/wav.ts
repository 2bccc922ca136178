// WAV encoding without DOM types, so the Node tests share the encoder the chat uses for recordings.

/** Mono PCM16 WAV bytes of float samples. */
export function encodeWav(samples: Float32Array, rate: number): Uint8Array {
  const n = samples.length;
  const b = new Uint8Array(44 + 2 * n);
  const dv = new DataView(b.buffer);
  const ascii = (o: number, s: string) => [...s].forEach((ch, i) => (b[o + i] = ch.charCodeAt(0)));
  ascii(0, 'RIFF');
  dv.setUint32(4, 36 + 2 * n, true);
  ascii(8, 'WAVEfmt ');
  dv.setUint32(16, 16, true);
  dv.setUint16(20, 1, true);
  dv.setUint16(22, 1, true);
  dv.setUint32(24, rate, true);
  dv.setUint32(28, 2 * rate, true);
  dv.setUint16(32, 2, true);
  dv.setUint16(34, 16, true);
  ascii(36, 'data');
  dv.setUint32(40, 2 * n, true);
  for (let i = 0; i < n; i++)
    dv.setInt16(44 + 2 * i, Math.max(-32768, Math.min(32767, Math.round(samples[i] * 32767))), true);
  return b;
}
