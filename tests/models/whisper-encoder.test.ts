import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { Graph } from '../../src-main/engine/graph/builder';
import { serializeModel } from '../../src-main/engine/graph/serialize';
import { Session } from '../../src-main/engine/runtime/session';
import { tensor } from '../../src-main/engine/runtime/tensor';
import { GraphWeights } from '../../src-main/models/layers';
import { loadWhisperEncoder, whisperEncoder, whisperOutputLength } from '../../src-main/models/audio/whisper';
import { writeTinyWhisper } from '../../src-main/models/demo/tiny-whisper';
import { toneSample } from '../../src-main/models/demo/tones';
import { WHISPER_CASES } from '../fixtures/models/audio/whisper-cases';

const REF = JSON.parse(
  readFileSync(join(import.meta.dirname, '../fixtures/models/audio/whisper-reference.json'), 'utf8'),
) as {
  cases: Array<{ name: string; sha256: string; features: number[]; statesShape: number[]; states: number[] }>;
};
const tmp = tempDir('whisper-enc-');
after(() => tmp.cleanup());

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

for (const c of WHISPER_CASES) {
  test(`tiny Whisper (${c.name}): log-mel features and encoder states match PyTorch (1e-4)`, async () => {
    const ref = REF.cases.find((r) => r.name === c.name)!;
    const dir = join(tmp.dir, c.name);
    writeTinyWhisper(dir, c.seed, c.options);
    assert.equal(
      createHash('sha256')
        .update(readFileSync(join(dir, 'model.safetensors')))
        .digest('hex'),
      ref.sha256,
      'the tiny folder is the one the reference used',
    );
    const m = loadWhisperEncoder(dir);
    try {
      const feats = m.features.batch(c.clips.map(([s, i, sec]) => toneSample(s, i, sec).samples));
      const fd = maxDiff(feats.data, ref.features);
      assert.ok(fd < 1e-4, `features max |diff| ${fd}`);
      const [N, M, T] = feats.dims;
      const g = new Graph('whisper_encoder');
      const w = new GraphWeights(g, m.weights);
      const x = g.input('input_features', 'float32', ['N', M, T]);
      g.output(whisperEncoder(w, m.config, 'encoder.', x), 'last_hidden_state');
      const s = await Session.create(serializeModel(g).model, { threads: 2 });
      const out = (await s.run({ input_features: tensor('float32', [N, M, T], feats.data) })).last_hidden_state;
      await s.dispose();
      assert.deepEqual([...out.dims].map(Number), [N, whisperOutputLength(T), m.config.dModel]);
      assert.deepEqual([...out.dims].map(Number), ref.statesShape);
      const sd = maxDiff(out.data as Float32Array, ref.states);
      assert.ok(sd < 1e-4, `encoder states max |diff| ${sd}`);
      // every encoder tensor was read; the decoder's were not
      assert.equal(w.usedNames().length, m.weights.names().length);
    } finally {
      m.close();
    }
  });
}

test('a Whisper folder with a wrong tensor, a mismatched extractor or a pickle is refused, naming what is wrong', () => {
  const dir = join(tmp.dir, 'bad');
  writeTinyWhisper(dir, 1);
  const cfgPath = join(dir, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, d_model: 48 }));
  assert.throws(
    () => loadWhisperEncoder(dir),
    /model\.safetensors: tensor "model\.encoder\.[^"]+" has shape \[.*\], expected/,
  );
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, encoder_attention_heads: 5 }));
  assert.throws(() => loadWhisperEncoder(dir), /config\.json: field "encoder_attention_heads"/);
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, max_source_positions: 20 }));
  assert.throws(
    () => loadWhisperEncoder(dir),
    /preprocessor_config\.json: field "chunk_length": 1 s is 100 frames, more than the encoder's window of 40/,
  );
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, model_type: 'wav2vec2' }));
  assert.throws(() => loadWhisperEncoder(dir), /field "model_type": "wav2vec2" is not a Whisper model/);
  writeFileSync(cfgPath, JSON.stringify(cfg));
  const ppPath = join(dir, 'preprocessor_config.json');
  const pp = JSON.parse(readFileSync(ppPath, 'utf8'));
  writeFileSync(ppPath, JSON.stringify({ ...pp, feature_size: 128 }));
  assert.throws(
    () => loadWhisperEncoder(dir),
    /preprocessor_config\.json: field "feature_size": 128 mel bins, but the encoder's num_mel_bins is 80/,
  );
  writeFileSync(ppPath, JSON.stringify(pp));
  loadWhisperEncoder(dir).close();
  const pk = join(tmp.dir, 'pickle');
  writeTinyWhisper(pk, 1);
  copyFileSync(join(pk, 'model.safetensors'), join(pk, 'pytorch_model.bin'));
  unlinkSync(join(pk, 'model.safetensors'));
  assert.throws(() => loadWhisperEncoder(pk), /pytorch_model\.bin: PyTorch pickle weights are not loaded/);
});

test('WhisperModel (encoder.*) and bare-encoder layouts load to the same tensors; the decoder is not read', async () => {
  const { readSafetensors, writeSafetensors } = await import('../../src-main/models/weights/safetensors');
  const { mkdirSync } = await import('node:fs');
  const src = join(tmp.dir, 'layouts-src');
  writeTinyWhisper(src, 2);
  const tensors = readSafetensors(join(src, 'model.safetensors'));
  const variants: Record<string, (n: string) => string | null> = {
    whisper_model: (n) => n.slice('model.'.length),
    bare_encoder: (n) => (n.startsWith('model.encoder.') ? n.slice('model.encoder.'.length) : null),
  };
  const ref = loadWhisperEncoder(src);
  try {
    for (const [name, rename] of Object.entries(variants)) {
      const dir = join(tmp.dir, `layout-${name}`);
      mkdirSync(dir, { recursive: true });
      writeSafetensors(
        join(dir, 'model.safetensors'),
        [...tensors].flatMap(([n, t]) =>
          rename(n) === null ? [] : [{ name: rename(n)!, dtype: 'F32' as const, shape: t.shape, data: () => t.data }],
        ),
      );
      copyFileSync(join(src, 'config.json'), join(dir, 'config.json'));
      copyFileSync(join(src, 'preprocessor_config.json'), join(dir, 'preprocessor_config.json'));
      const m = loadWhisperEncoder(dir);
      try {
        assert.deepEqual(m.weights.names().sort(), ref.weights.names().sort(), name);
        for (const n of ['encoder.conv1.weight', 'encoder.layers.1.fc2.bias', 'encoder.layer_norm.weight'])
          assert.deepEqual(m.weights.get(n), ref.weights.get(n), `${name}: ${n}`);
      } finally {
        m.close();
      }
    }
  } finally {
    ref.close();
  }
});
