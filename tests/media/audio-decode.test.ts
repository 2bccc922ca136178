// Headless audio decoding: every WAV encoding and FLAC against the values the fixture script wrote, the 16 kHz
// resampler against a PyTorch transcription of torchaudio's sinc_interp_hann resample and against analytic
// sines, the worker path, and corrupt / unsupported / over-limit files refused with the file and the reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeAudio, decodeAudioChannels, decodeAudioFile, fitToWindow, sniffAudio } from '../../src-main/media/audio';
import { resample } from '../../src-main/media/resample';
import { decodeAudioInWorker } from '../../src-main/media/media-worker';
import { MediaError } from '../../src-main/media/errors';
import { tempDir } from '../helpers/tmp';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'media');
interface Case {
  file: string;
  sampleRate: number;
  channels: number;
  encoding: string;
  frames: number;
  mono: number[];
  resampled16k: number[];
  flac?: string;
}
const REF = JSON.parse(readFileSync(join(DIR, 'media-reference.json'), 'utf8')) as { cases: Case[] };

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'lengths differ');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

async function rejectsWith(p: Promise<unknown>, file: string, reason: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof MediaError, `expected a MediaError, got ${String(err)}`);
    assert.equal(err.file, file);
    assert.match(err.reason, reason);
    assert.ok(err.message.startsWith(`${file}: `), err.message);
    return true;
  });
}

for (const c of REF.cases) {
  test(`WAV ${c.file}: samples, mono mix and 16 kHz resampling match the reference`, async () => {
    const bytes = readFileSync(join(DIR, c.file));
    assert.equal(sniffAudio(bytes), 'wav');
    const d = await decodeAudioChannels(bytes, c.file);
    assert.equal(d.sampleRate, c.sampleRate);
    assert.equal(d.channels.length, c.channels);
    assert.equal(d.channels[0].length, c.frames);
    assert.equal(d.encoding, c.encoding);
    const native = await decodeAudio(bytes, c.file, { sampleRate: null });
    assert.ok(maxAbsDiff(native.samples, c.mono) < 1e-7, 'mono mix');
    const clip = await decodeAudio(bytes, c.file);
    assert.equal(clip.sampleRate, 16000);
    assert.equal(clip.sourceRate, c.sampleRate);
    assert.equal(clip.sourceChannels, c.channels);
    assert.equal(clip.samples.length, c.resampled16k.length);
    assert.ok(
      maxAbsDiff(clip.samples, c.resampled16k) < 1e-6,
      `resampled: ${maxAbsDiff(clip.samples, c.resampled16k)}`,
    );
  });
  if (c.flac) {
    test(`FLAC ${c.flac} decodes losslessly to the WAV it was encoded from`, async () => {
      const bytes = readFileSync(join(DIR, c.flac!));
      assert.equal(sniffAudio(bytes), 'flac');
      const d = await decodeAudioChannels(bytes, c.flac!);
      const w = await decodeAudioChannels(readFileSync(join(DIR, c.file)), c.file);
      assert.equal(d.format, 'flac');
      assert.equal(d.sampleRate, c.sampleRate);
      assert.equal(d.channels.length, c.channels);
      // the decoder scales integers to float32 its own way: equal to float32 rounding
      for (let ch = 0; ch < c.channels; ch++)
        assert.ok(maxAbsDiff(d.channels[ch], w.channels[ch]) <= 2 ** -22, `channel ${ch}`);
      const clip = await decodeAudio(bytes, c.flac!);
      assert.ok(maxAbsDiff(clip.samples, c.resampled16k) < 1e-6);
    });
  }
}

test('resampling keeps an in-band sine and removes one above the new Nyquist frequency', () => {
  for (const [from, f] of [
    [44100, 440],
    [22050, 3000],
    [8000, 1000],
    [48000, 4000],
    [44101, 700], // co-prime with 16000: the untabulated path
  ] as const) {
    const n = from; // one second
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = Math.sin((2 * Math.PI * f * i) / from);
    const y = resample(x, from, 16000);
    assert.equal(y.length, Math.ceil((16000 * n) / from));
    let err = 0;
    // away from the edges (the filter sees zeros past them)
    for (let j = 200; j < y.length - 200; j++)
      err = Math.max(err, Math.abs(y[j] - Math.sin((2 * Math.PI * f * j) / 16000)));
    assert.ok(err < 5e-3, `${from} Hz → 16 kHz, ${f} Hz sine: max error ${err}`);
  }
  // 12 kHz is above 8 kHz: it must not fold back to 4 kHz
  const x = new Float32Array(48000);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin((2 * Math.PI * 12000 * i) / 48000);
  const y = resample(x, 48000, 16000);
  let peak = 0;
  for (let j = 200; j < y.length - 200; j++) peak = Math.max(peak, Math.abs(y[j]));
  assert.ok(peak < 0.01, `aliased 12 kHz peak ${peak}`);
});

test('the tabulated and on-the-fly resampling paths agree', () => {
  const x = new Float32Array(4410);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.05) * Math.cos(i * 0.011);
  for (const from of [44100, 22050, 8000]) {
    const a = resample(x, from, 16000);
    const b = resample(x, from, 16000, { maxTable: 0 });
    assert.ok(maxAbsDiff(a, b) < 1e-6, `${from}: ${maxAbsDiff(a, b)}`);
  }
});

test('decoding in a worker thread gives the same clip and names the file on failure', async () => {
  const c = REF.cases[0];
  const clip = await decodeAudioInWorker(join(DIR, c.flac!), { label: c.flac });
  assert.ok(maxAbsDiff(clip.samples, c.resampled16k) < 1e-6);
  const bytesClip = await decodeAudioInWorker(readFileSync(join(DIR, c.file)), { label: c.file });
  assert.ok(maxAbsDiff(bytesClip.samples, c.resampled16k) < 1e-6);
  await rejectsWith(
    decodeAudioInWorker(Buffer.from('ID3\x04\0\0\0\0\0\0garbage'), { label: 'song.mp3' }),
    'song.mp3',
    /MP3 is not decoded headless/,
  );
});

test('corrupt, truncated, unsupported and over-limit files name the file and the reason', async () => {
  const wav = readFileSync(join(DIR, 'pcm16-stereo-44100.wav'));
  const flac = readFileSync(join(DIR, 'pcm16-stereo-44100.flac'));
  await rejectsWith(decodeAudio(new Uint8Array(0), 'empty.wav'), 'empty.wav', /empty/);
  await rejectsWith(
    decodeAudio(Buffer.from('OggS\0\x02rest'), 'a.ogg'),
    'a.ogg',
    /Ogg .* not decoded headless.*WAV and FLAC/,
  );
  await rejectsWith(
    decodeAudio(Buffer.from('hello world, not audio'), 'notes.wav'),
    'notes.wav',
    /not a supported audio file/,
  );
  await rejectsWith(
    decodeAudio(wav.subarray(0, wav.length - 100), 'cut.wav'),
    'cut.wav',
    /truncated WAV: the data chunk says \d+ bytes but only \d+ follow/,
  );
  const noData = Buffer.from(wav.subarray(0, 12 + 8 + 16));
  noData.writeUInt32LE(noData.length - 8, 4);
  await rejectsWith(decodeAudio(noData, 'nodata.wav'), 'nodata.wav', /no 'data' chunk/);
  const adpcm = Buffer.from(wav);
  adpcm.writeUInt16LE(2, 20);
  await rejectsWith(decodeAudio(adpcm, 'adpcm.wav'), 'adpcm.wav', /unsupported WAV encoding: Microsoft ADPCM/);
  const bits12 = Buffer.from(wav);
  bits12.writeUInt16LE(12, 34);
  await rejectsWith(decodeAudio(bits12, 'b12.wav'), 'b12.wav', /integer with 12 bits per sample/);
  const manyCh = Buffer.from(wav);
  manyCh.writeUInt16LE(64, 22);
  await rejectsWith(decodeAudio(manyCh, 'many.wav'), 'many.wav', /too many channels: 64 \(limit 8\)/);
  const slow = Buffer.from(wav);
  slow.writeUInt32LE(10, 24);
  await rejectsWith(decodeAudio(slow, 'rate.wav'), 'rate.wav', /unsupported sample rate 10 Hz/);
  await rejectsWith(
    decodeAudio(wav, 'long.wav', { limits: { maxSeconds: 0.01 } }),
    'long.wav',
    /audio is too long: 0\.1 s \(limit 0\.01 s\)/,
  );
  await rejectsWith(
    decodeAudio(wav, 'big.wav', { limits: { maxBytes: 1000 } }),
    'big.wav',
    /too large \(\d+ bytes; limit 1000\)/,
  );
  // FLAC: a damaged frame, a cut file, a broken STREAMINFO
  const damaged = Buffer.from(flac);
  for (let i = 200; i < 260; i++) damaged[i] ^= 0x5a;
  await rejectsWith(decodeAudio(damaged, 'damaged.flac'), 'damaged.flac', /corrupt FLAC|truncated FLAC/);
  await rejectsWith(
    decodeAudio(flac.subarray(0, flac.length >> 1), 'half.flac'),
    'half.flac',
    /truncated FLAC|corrupt FLAC/,
  );
  await rejectsWith(
    decodeAudio(flac.subarray(0, 20), 'stub.flac'),
    'stub.flac',
    /truncated FLAC: the file ends inside STREAMINFO/,
  );
  const longFlac = Buffer.from(flac);
  await rejectsWith(decodeAudio(longFlac, 'long.flac', { limits: { maxSeconds: 0.01 } }), 'long.flac', /too long/);
  // a file path that is missing or not a regular file
  const tmp = tempDir('media-');
  try {
    await rejectsWith(
      decodeAudioFile(join(tmp.dir, 'missing.wav'), { label: 'missing.wav' }),
      'missing.wav',
      /cannot read/,
    );
    await rejectsWith(decodeAudioFile(tmp.dir, { label: 'a-folder.wav' }), 'a-folder.wav', /not a regular file/);
    writeFileSync(join(tmp.dir, 'ok.wav'), wav);
    assert.equal((await decodeAudioFile(join(tmp.dir, 'ok.wav'))).sourceRate, 44100);
  } finally {
    tmp.cleanup();
  }
});

test('clips longer than the encoder window are split or truncated with a warning', () => {
  const rate = 16000;
  const short = new Float32Array(rate * 10);
  assert.deepEqual(fitToWindow(short, rate, 'split'), { segments: [short] });
  const long = new Float32Array(rate * 70 + 5);
  for (let i = 0; i < long.length; i++) long[i] = i;
  const t = fitToWindow(long, rate, 'truncate');
  assert.equal(t.segments.length, 1);
  assert.equal(t.segments[0].length, rate * 30);
  assert.match(t.warning!, /clip is 70\.0 s, longer than the 30 s encoder window: only the first 30 s are used/);
  const s = fitToWindow(long, rate, 'split');
  assert.deepEqual(
    s.segments.map((x) => x.length),
    [rate * 30, rate * 30, rate * 10 + 5],
  );
  assert.equal(s.segments[2][0], rate * 60);
  assert.match(s.warning!, /split into 3 segments/);
});
