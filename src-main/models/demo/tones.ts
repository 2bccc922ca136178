// Synthetic audio for the demo and the tests: tone clips, deterministic in a seed (mulberry32), at 16 kHz.
//   tone(freq, seconds): a sine with 10 ms raised-cosine fades
//   the audio task (scripts/audio-demo.ts): "which tone is higher?" (two tones in a row: first / second) and
//   "how many beeps?" (1-4 short beeps of one pitch)

import { demoRng, subSeed } from './rng';

export const DEMO_SAMPLE_RATE = 16000;

/** Add a sine of `freq` Hz from `start` s for `seconds` s with 10 ms fades. */
export function addTone(
  out: Float32Array,
  freq: number,
  start: number,
  seconds: number,
  amp = 0.5,
  sr = DEMO_SAMPLE_RATE,
): void {
  const s0 = Math.round(start * sr);
  const n = Math.round(seconds * sr);
  const fade = Math.min(Math.round(0.01 * sr), Math.floor(n / 2));
  for (let i = 0; i < n && s0 + i < out.length; i++) {
    const env =
      i < fade
        ? 0.5 - 0.5 * Math.cos((Math.PI * i) / fade)
        : i >= n - fade
          ? 0.5 - 0.5 * Math.cos((Math.PI * (n - i)) / fade)
          : 1;
    out[s0 + i] += amp * env * Math.sin((2 * Math.PI * freq * i) / sr);
  }
}

export interface ToneSample {
  /** what is in the clip, for projector-only training on captions */
  caption: string;
  samples: Float32Array;
  sampleRate: number;
  question: string;
  answer: string;
  task: 'higher' | 'beeps';
}

export const TONE_QUESTIONS = { higher: 'Which tone is higher?', beeps: 'How many beeps?' } as const;
const BEEP_WORDS = ['one', 'two', 'three', 'four'];

/** One clip of `seconds` (default 1 s): even indices ask which tone is higher, odd ones how many beeps. */
export function toneSample(seed: number, index: number, seconds = 1): ToneSample {
  const rng = demoRng(subSeed(seed, index));
  const sr = DEMO_SAMPLE_RATE;
  const samples = new Float32Array(Math.round(seconds * sr));
  const noise = 0.01;
  for (let i = 0; i < samples.length; i++) samples[i] = noise * (2 * rng.next() - 1);
  if (index % 2 === 0) {
    // two tones at least 5 semitones apart, 200-2000 Hz
    const lo = 200 * Math.pow(2, rng.next() * 2.5);
    const hi = lo * Math.pow(2, (5 + rng.next() * 12) / 12);
    const firstHigher = rng.next() < 0.5;
    const amp = 0.3 + 0.3 * rng.next();
    const len = 0.3 * seconds;
    addTone(samples, firstHigher ? hi : lo, 0.1 * seconds, len, amp, sr);
    addTone(samples, firstHigher ? lo : hi, 0.55 * seconds, len, amp, sr);
    return {
      samples,
      sampleRate: sr,
      question: TONE_QUESTIONS.higher,
      answer: firstHigher ? 'first' : 'second',
      task: 'higher',
      caption: toneCaption(firstHigher ? 0 : 2),
    };
  }
  const count = 1 + Math.floor(rng.next() * 4);
  const freq = 300 + rng.next() * 1200;
  const amp = 0.3 + 0.3 * rng.next();
  const slot = (0.9 * seconds) / 4;
  for (let b = 0; b < count; b++) addTone(samples, freq, 0.05 * seconds + b * slot, slot * 0.5, amp, sr);
  return {
    samples,
    sampleRate: sr,
    question: TONE_QUESTIONS.beeps,
    answer: BEEP_WORDS[count - 1],
    task: 'beeps',
    caption: toneCaption(2 * count + 3),
  };
}

/** Caption texts: even k < 4 the two-tone clips (high then low, low then high), odd k the beep counts. */
export function toneCaption(k: number): string {
  const c = k % 12;
  if (c === 0) return 'a high tone then a low tone';
  if (c === 2) return 'a low tone then a high tone';
  if (c % 2 === 1 && c >= 5)
    return `${BEEP_WORDS[Math.min(3, (c - 5) / 2)]} short beeps`.replace('one short beeps', 'one short beep');
  return 'a tone';
}

export const CAPTION_QUESTION = 'Describe the sound.';
