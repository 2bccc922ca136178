import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WhisperFeatureExtractor, melFilterBank, parseWhisperFeatureConfig } from '../../src-main/models/audio/log-mel';

const REF = JSON.parse(
  readFileSync(join(import.meta.dirname, '../fixtures/models/audio/whisper-features-reference.json'), 'utf8'),
) as {
  cases: Array<{
    name: string;
    kind: string;
    seconds: number;
    config: Record<string, number>;
    shape: [number, number];
    stride: number;
    values: number[];
    sum: number;
  }>;
  mel80: { shape: [number, number]; values: number[] };
};

// the same formulas as whisper_features_reference.py's clip()
function clip(kind: string, seconds: number, sr = 16000): Float32Array {
  const n = Math.round(seconds * sr);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const t = i / sr;
    if (kind === 'tones')
      y[i] = 0.5 * Math.sin(2 * Math.PI * 440 * t) + (t < seconds / 2 ? 0.25 * Math.sin(2 * Math.PI * 1234.5 * t) : 0);
    else if (kind === 'chirp') y[i] = 0.8 * Math.sin(2 * Math.PI * (200 * t + 900 * t * t)) * Math.exp(-0.3 * t);
    else y[i] = (i % 997 === 0 ? 0.9 : 0) + 0.05 * Math.sin(2 * Math.PI * 3000 * t) + 0.01 * Math.sin(i * 0.7) ** 3;
  }
  return y;
}

test('Slaney mel filters (80 bins, 0-8000 Hz, slaney norm) match numpy', () => {
  const mel = melFilterBank(201, 80, 0, 8000, 16000);
  assert.equal(mel.length, REF.mel80.values.length);
  let worst = 0;
  for (let i = 0; i < mel.length; i++) worst = Math.max(worst, Math.abs(mel[i] - REF.mel80.values[i]));
  assert.ok(worst < 1e-9, `max |diff| ${worst}`);
});

for (const c of REF.cases)
  test(`log-mel features match the numpy WhisperFeatureExtractor: ${c.name}`, () => {
    const fx = new WhisperFeatureExtractor(parseWhisperFeatureConfig(c.config, 'case'));
    const wav = clip(c.kind, c.seconds);
    const r = fx.extract(wav);
    assert.deepEqual([r.bins, r.frames], c.shape);
    assert.equal(r.truncated, wav.length > fx.config.nSamples);
    let worst = 0;
    let at = -1;
    c.values.forEach((v, j) => {
      const d = Math.abs(r.data[j * c.stride] - v);
      if (d > worst) [worst, at] = [d, j * c.stride];
    });
    assert.ok(worst < 1e-4, `max |diff| ${worst} at ${at}`);
    let sum = 0;
    for (const v of r.data) sum += v;
    assert.ok(Math.abs(sum - c.sum) < 1e-4 * r.data.length, `sum ${sum} vs ${c.sum}`);
  });

test('the clip is padded / truncated to the window and the floor is max - 8 (in log10 units / 4)', () => {
  const fx = new WhisperFeatureExtractor(parseWhisperFeatureConfig({ chunk_length: 1 }));
  const silent = fx.extract(new Float32Array(100));
  // all zeros: every mel energy hits the 1e-10 floor -> log10 = -10, (x + 4) / 4 = -1.5
  assert.ok(silent.data.every((v) => Math.abs(v - -1.5) < 1e-6));
  const loud = fx.extract(clip('tones', 2));
  assert.equal(loud.truncated, true);
  let max = -Infinity;
  let min = Infinity;
  for (const v of loud.data) [max, min] = [Math.max(max, v), Math.min(min, v)];
  assert.ok(Math.abs(max - min - 2) < 1e-6, `range ${max - min} (8 log10 units / 4)`);
  const b = fx.batch([clip('tones', 0.5), clip('chirp', 0.25)]);
  assert.deepEqual(b.dims, [2, 80, 100]);
  assert.deepEqual(b.data.subarray(0, 8000), fx.extract(clip('tones', 0.5)).data);
});

test('preprocessor_config.json errors name the file and the field', () => {
  assert.throws(
    () => parseWhisperFeatureConfig({ feature_size: 0 }, 'x/preprocessor_config.json'),
    /x\/preprocessor_config\.json: field "feature_size"/,
  );
  assert.throws(() => parseWhisperFeatureConfig({ hop_length: 'a' }, 'p.json'), /p\.json: field "hop_length"/);
  assert.throws(
    () => parseWhisperFeatureConfig({ feature_extractor_type: 'Wav2Vec2FeatureExtractor' }, 'p.json'),
    /feature_extractor_type/,
  );
  const c = parseWhisperFeatureConfig({ feature_size: 128 });
  assert.deepEqual([c.nSamples, c.nbMaxFrames, c.nFft, c.hopLength], [480000, 3000, 400, 160]);
});
