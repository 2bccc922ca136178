// Audio for a chat question: a picked or dropped file, or a microphone recording. The backend decodes WAV and FLAC
// itself; anything else the browser can play (MP3, Ogg, WebM/Opus from MediaRecorder, M4A) is decoded here with
// WebAudio, mixed to mono and sent as a 16-bit WAV at its own rate (the backend resamples to the model's).

import { encodeWav } from './wav';

/** A clip picked for the next question: a URL to play, the base64 to send (or a stored clip's hash). */
export interface PendingAudio {
  url: string;
  base64: string;
  name: string;
  hash?: string;
}

function isWavOrFlac(b: Uint8Array): boolean {
  const s = String.fromCharCode(...b.subarray(0, 4));
  return s === 'RIFF' || s === 'fLaC';
}

function toBase64(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}

/** A file or recording ready to send: WAV / FLAC as they are, other formats decoded here into a WAV. */
export async function readAudio(blob: Blob, name: string): Promise<PendingAudio> {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  if (bytes.length === 0) throw new Error(`${name} is empty`);
  if (isWavOrFlac(bytes)) return { url: URL.createObjectURL(blob), base64: toBase64(bytes), name };
  const Ctx = (window as unknown as { AudioContext?: typeof AudioContext }).AudioContext;
  if (!Ctx) throw new Error(`${name}: this browser cannot decode audio; attach a WAV or FLAC file`);
  const ctx = new Ctx();
  let buf: AudioBuffer;
  try {
    buf = await ctx.decodeAudioData(bytes.buffer.slice(0) as ArrayBuffer);
  } catch {
    throw new Error(`${name} is not an audio file this browser can decode (WAV, FLAC, MP3, Ogg, WebM)`);
  } finally {
    void ctx.close();
  }
  const mono = new Float32Array(buf.length);
  for (let c = 0; c < buf.numberOfChannels; c++) {
    const d = buf.getChannelData(c);
    for (let i = 0; i < d.length; i++) mono[i] += d[i] / buf.numberOfChannels;
  }
  const wav = encodeWav(mono, buf.sampleRate);
  return {
    url: URL.createObjectURL(new Blob([wav as BlobPart], { type: 'audio/wav' })),
    base64: toBase64(wav),
    name: name.replace(/\.[a-z0-9]+$/i, '') + '.wav',
  };
}

/** Whether this window can record from a microphone. */
export function canRecord(): boolean {
  return typeof MediaRecorder !== 'undefined' && !!navigator.mediaDevices?.getUserMedia;
}

/** Start recording; stop() resolves with the recording as a clip to send. */
export async function startRecording(): Promise<{ stop(): Promise<PendingAudio>; cancel(): void }> {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const rec = new MediaRecorder(stream);
  const chunks: Blob[] = [];
  rec.ondataavailable = (e) => e.data.size > 0 && chunks.push(e.data);
  const stopped = new Promise<void>((resolve) => (rec.onstop = () => resolve()));
  rec.start();
  const release = () => stream.getTracks().forEach((t) => t.stop());
  return {
    async stop() {
      rec.stop();
      await stopped;
      release();
      return readAudio(new Blob(chunks, { type: rec.mimeType || 'audio/webm' }), 'recording');
    },
    cancel() {
      if (rec.state !== 'inactive') rec.stop();
      release();
    },
  };
}
