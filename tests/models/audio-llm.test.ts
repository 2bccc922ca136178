import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { Graph, type Value } from '../../src-main/engine/graph/builder';
import { gradients } from '../../src-main/engine/autodiff';
import { serializeModel } from '../../src-main/engine/graph/serialize';
import { Session } from '../../src-main/engine/runtime/session';
import { tensor } from '../../src-main/engine/runtime/tensor';
import { GraphWeights } from '../../src-main/models/layers';
import { writeTinyAudioLlm } from '../../src-main/models/demo/tiny-audio-llm';
import {
  audioFeatures,
  audioLlmForward,
  clipFeatures,
  loadAudioLlm,
  parseUltravox,
} from '../../src-main/models/audio/ultravox';
import { buildTrainableAudioLlm } from '../../src-main/models/audio/train';
import { toneSample } from '../../src-main/models/demo/tones';
import { AUDIO_LLM_CASE, audioLlmCaseBatch } from '../fixtures/models/audio/audio-llm-case';

const REF = JSON.parse(
  readFileSync(join(import.meta.dirname, '../fixtures/models/audio/audio-llm-reference.json'), 'utf8'),
) as {
  sha256: string;
  ids: number[][];
  labels: number[][];
  audioShape: number[];
  audio: number[];
  logits: number[][];
  loss: number;
  grads: Record<string, number[]>;
};
const tmp = tempDir('audio-llm-');
after(() => tmp.cleanup());
const built = writeTinyAudioLlm(join(tmp.dir, 'parts'), AUDIO_LLM_CASE.seed, AUDIO_LLM_CASE.options);

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
const i64 = (rows: number[][]) =>
  tensor('int64', [rows.length, rows[0].length], BigInt64Array.from(rows.flat().map(BigInt)));

test('compose: Whisper + LLaMA + a new projector -> an Ultravox-layout folder; "<audio>" added, embeddings grown by the mean row', () => {
  assert.equal(built.addedAudioToken, true);
  const m = loadAudioLlm(built.dir);
  try {
    assert.equal(m.audioToken, '<audio>');
    assert.equal(m.config.audioTokenIndex, built.audioTokenId);
    assert.equal(m.config.text.vocabSize, built.audioTokenId + 1);
    // 1 s window = 100 frames -> 50 encoder frames -> ceil(50 / 4) = 13 tokens
    assert.equal(m.tokensPerClip, 13);
    const names = m.weights.names();
    assert.ok(
      names.some((n) => n.startsWith('audio_tower.layers.0.self_attn.k_proj')) &&
        !names.includes('audio_tower.layers.0.self_attn.k_proj.bias'),
    );
    for (const n of [
      'multi_modal_projector.ln_pre.weight',
      'multi_modal_projector.linear_1.weight',
      'multi_modal_projector.linear_2.weight',
      'multi_modal_projector.ln_post.weight',
      'language_model.lm_head.weight',
    ])
      assert.ok(names.includes(n), n);
    assert.ok(
      m.weights.get('multi_modal_projector.ln_pre.weight').every((v) => Math.abs(v - 0.4) < 1e-7),
      'RMSNorm weights start at norm_init',
    );
    const emb = m.weights.get('language_model.model.embed_tokens.weight');
    const D = m.config.text.hiddenSize;
    const V = m.config.text.vocabSize;
    const mean = new Float64Array(D);
    for (let r = 0; r < V - 1; r++) for (let c = 0; c < D; c++) mean[c] += emb[r * D + c] / (V - 1);
    assert.ok(maxDiff(emb.subarray((V - 1) * D), mean) < 1e-6);
    const cfg = JSON.parse(readFileSync(join(built.dir, 'config.json'), 'utf8'));
    assert.equal(cfg.model_type, 'ultravox');
    assert.deepEqual(cfg.architectures, ['UltravoxModel']);
    assert.equal(cfg.audio_config.model_type, 'whisper');
    assert.equal(cfg.text_config.model_type, 'llama');
  } finally {
    m.close();
  }
});

test('tiny composed audio LLM: projected audio, logits, loss and projector gradients match PyTorch', async () => {
  assert.equal(
    createHash('sha256')
      .update(readFileSync(join(built.dir, 'model.safetensors')))
      .digest('hex'),
    REF.sha256,
    'the tiny folder is the one the reference used',
  );
  const m = loadAudioLlm(built.dir);
  try {
    const b = audioLlmCaseBatch(m);
    assert.deepEqual(b.ids, REF.ids);
    assert.deepEqual(b.labels, REF.labels);
    const f = clipFeatures(
      m.features,
      b.waveforms.map((w) => ({ samples: Float32Array.from(w), sampleRate: 16000 })),
    );
    const frames = f.dims[2];
    const t = buildTrainableAudioLlm(m, 'projector', null, frames);
    const g = new Graph('audio_llm_ref');
    const p: Record<string, Value> = {};
    for (const s of t.params) p[s.name] = g.input(s.name, 'float32', [...s.shape]);
    const { loss } = t.forward(g, p);
    g.output(loss, 'loss');
    const grads = gradients(
      loss,
      t.params.map((s) => p[s.name]),
    );
    t.params.forEach((s, i) => g.output(grads[i], `grad.${s.name}`));
    // the audio features and logits from the same weights, in a second graph
    const g2 = new Graph('audio_llm_logits');
    const w2 = new GraphWeights(g2, m.weights);
    const ids = g2.input('input_ids', 'int64', ['B', 'T']);
    const mask = g2.input('attention_mask', 'int64', ['B', 'T']);
    const x = g2.input('input_features', 'float32', ['N', m.config.audio.numMelBins, frames]);
    g2.output(audioFeatures(w2, m.config, x), 'audio');
    g2.output(
      audioLlmForward(w2, m.config, { inputIds: ids, attentionMask: mask, inputFeatures: x }).logits!,
      'logits',
    );
    const init = t.initialValues(0);
    const feeds = Object.fromEntries(t.params.map((s) => [s.name, tensor('float32', [...s.shape], init[s.name])]));
    // right padding kept in the mask (as the reference: causal attention never lets a pad reach a real token)
    const maskRows = b.ids.map((r) => r.map(() => 1));
    const data = {
      input_ids: i64(b.ids),
      attention_mask: i64(maskRows),
      input_features: tensor('float32', f.dims, f.data),
    };
    const s1 = await Session.create(serializeModel(g).model, { threads: 2 });
    const r1 = await s1.run({ ...feeds, ...data, labels: i64(b.labels) });
    await s1.dispose();
    const s2 = await Session.create(serializeModel(g2).model, { threads: 2 });
    const r2 = await s2.run(data);
    await s2.dispose();
    assert.deepEqual([...r2.audio.dims].map(Number), REF.audioShape);
    const ad = maxDiff(r2.audio.data as Float32Array, REF.audio);
    assert.ok(ad < 1e-4, `audio features max |diff| ${ad}`);
    const [B, T, V] = [...r2.logits.dims].map(Number);
    const k = AUDIO_LLM_CASE.keep;
    const last: number[] = [];
    for (let bi = 0; bi < B; bi++)
      for (let ti = T - k; ti < T; ti++)
        last.push(...(r2.logits.data as Float32Array).subarray((bi * T + ti) * V, (bi * T + ti + 1) * V));
    const ld = maxDiff(last, REF.logits.flat());
    assert.ok(ld < 1e-4, `logits max |diff| ${ld}`);
    const lossDiff = Math.abs((r1.loss.data as Float32Array)[0] - REF.loss);
    assert.ok(lossDiff < 1e-5, `loss ${(r1.loss.data as Float32Array)[0]} vs ${REF.loss}`);
    for (const s of t.params) {
      const ours = r1[`grad.${s.name}`].data as Float32Array;
      const ref = REF.grads[s.name];
      const scale = Math.max(...ref.map(Math.abs));
      const gd = maxDiff(ours, ref);
      assert.ok(gd < 1e-4 * Math.max(1, scale), `${s.name}: gradient max |diff| ${gd} (max |grad| ${scale})`);
    }
  } finally {
    m.close();
  }
});

test('bad audio LLM folders and clips are refused, naming the field, the token or the clip', () => {
  const cfgPath = join(built.dir, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
  assert.throws(
    () => parseUltravox({ ...cfg, projector_act: 'tanh' }, 'c.json'),
    /c\.json: field "projector_act": unsupported activation "tanh"/,
  );
  assert.throws(
    () => parseUltravox({ ...cfg, audio_config: undefined, audio_model_id: 'openai/whisper-small' }, 'c.json'),
    /field "audio_config": is required .*openai\/whisper-small/,
  );
  assert.throws(
    () => parseUltravox({ ...cfg, text_config: { ...cfg.text_config, model_type: 'gpt2' } }, 'c.json'),
    /field "text_config\.model_type"/,
  );
  assert.throws(
    () => parseUltravox({ ...cfg, audio_token_index: 99999 }, 'c.json'),
    /field "audio_token_index": 99999 is outside/,
  );
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, stack_factor: 8 }));
  assert.throws(() => loadAudioLlm(built.dir), /tensor "multi_modal_projector\.(ln_pre|linear_1)\.weight" has shape/);
  writeFileSync(cfgPath, JSON.stringify(cfg));
  const m = loadAudioLlm(built.dir);
  try {
    assert.throws(
      () => clipFeatures(m.features, [{ samples: new Float32Array(10), sampleRate: 44100, name: 'a.wav' }]),
      /a\.wav: sample rate 44100 Hz, the model takes 16000 Hz/,
    );
    const long = clipFeatures(m.features, [
      { samples: toneSample(1, 0, 2.5).samples, sampleRate: 16000, name: 'long.wav' },
    ]);
    assert.match(long.warnings[0], /long\.wav: 2\.50 s is longer than the model's 1 s window/);
  } finally {
    m.close();
  }
});

test('training: projector, then LoRA + projector with PEFT names; steps on one batch drive its loss down', async () => {
  const m = loadAudioLlm(built.dir);
  try {
    const frames = m.features.config.nbMaxFrames;
    const lora = { rank: 4, alpha: 8, targetModules: ['q_proj', 'v_proj'] };
    const t = buildTrainableAudioLlm(m, 'lora+projector', lora, frames);
    assert.deepEqual(
      t.params.slice(0, 2).map((p) => [p.name, p.shape]),
      [
        ['base_model.model.language_model.model.layers.0.self_attn.q_proj.lora_A.weight', [4, 64]],
        ['base_model.model.language_model.model.layers.0.self_attn.q_proj.lora_B.weight', [64, 4]],
      ],
    );
    assert.equal(t.modules.length, 2 * m.config.text.numHiddenLayers);
    assert.deepEqual(t.projector, [
      'multi_modal_projector.ln_pre.weight',
      'multi_modal_projector.linear_1.weight',
      'multi_modal_projector.linear_2.weight',
      'multi_modal_projector.ln_post.weight',
    ]);
    assert.throws(
      () => buildTrainableAudioLlm(m, 'lora', { ...lora, targetModules: ['fc1'] }, frames),
      /LoRA target "fc1" is not a decoder projection/,
    );
    assert.throws(() => buildTrainableAudioLlm(m, 'lora', null, frames), /needs LoRA options/);
    const { StepExecutor } = await import('../../src-main/engine/runtime/step-executor');
    const { trainBatch } = await import('../../src-main/models/audio/train');
    const samples = [0, 1, 2, 3].map((i) => toneSample(9, i));
    const f = clipFeatures(
      m.features,
      samples.map((s) => ({ samples: s.samples, sampleRate: s.sampleRate })),
    );
    const feeds = trainBatch(
      m,
      samples.map((s) => ({ question: s.question, answer: s.answer })),
      f,
    );
    const ex = await StepExecutor.create(
      { params: t.params, forward: t.forward, adamw: { weightDecay: 0 }, session: { threads: 2 } },
      t.initialValues(1),
    );
    const losses: number[] = [];
    for (let s = 0; s < 12; s++) losses.push((await ex.step(feeds as never, 1e-2)).loss);
    assert.ok(losses[11] < 0.5 * losses[0], `loss ${losses[0]} -> ${losses[11]}`);
  } finally {
    m.close();
  }
});

test('generation with a KV cache gives the tokens of full recomputation', async () => {
  const m = loadAudioLlm(built.dir);
  try {
    const { AudioLlmCachedGenerator } = await import('../../src-main/models/audio/generate');
    const { AudioLlmGenerator, promptIds } = await import('../../src-main/models/audio/train');
    const frames = m.features.config.nbMaxFrames;
    const s = toneSample(4, 1);
    const f = clipFeatures(m.features, [{ samples: s.samples, sampleRate: s.sampleRate }]);
    const cached = await AudioLlmCachedGenerator.create(m, frames);
    const r = await cached.greedy(promptIds(m, s.question), f, 6);
    await cached.dispose();
    assert.equal(r.ids.length, 6);
    assert.equal(r.decodeMs.length, 5);
    // the recomputing generator with the folder's own projector as its parameters is the base model
    const t = buildTrainableAudioLlm(m, 'projector', null, frames);
    const full = await AudioLlmGenerator.create(m, t);
    const text = await full.answer([s.question], f, t.initialValues(0), t.params, 6);
    await full.dispose();
    const eos = new Set(m.config.text.eosTokenIds);
    const upToEos = r.ids.slice(
      0,
      r.ids.findIndex((id) => eos.has(id)) >= 0 ? r.ids.findIndex((id) => eos.has(id)) : r.ids.length,
    );
    assert.equal(m.tokenizer.decode(upToEos, { skipSpecialTokens: true }).trim(), text[0]);
  } finally {
    m.close();
  }
});

test('a WAV file at 44.1 kHz reaches the model through the media decoder (resampled to 16 kHz)', async () => {
  const { decodeAudio } = await import('../../src-main/media/audio');
  const rate = 44100;
  const n = Math.round(0.5 * rate);
  const bytes = new Uint8Array(44 + 2 * n);
  const dv = new DataView(bytes.buffer);
  const ascii = (o: number, s: string) => [...s].forEach((ch, i) => (bytes[o + i] = ch.charCodeAt(0)));
  ascii(0, 'RIFF');
  dv.setUint32(4, 36 + 2 * n, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
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
    dv.setInt16(44 + 2 * i, Math.round(12000 * Math.sin((2 * Math.PI * 660 * i) / rate)), true);
  const m = loadAudioLlm(built.dir);
  try {
    const raw = await decodeAudio(bytes, 'tone.wav', { sampleRate: null });
    assert.throws(
      () => clipFeatures(m.features, [{ ...raw, name: 'tone.wav' }]),
      /tone\.wav: sample rate 44100 Hz, the model takes 16000 Hz/,
    );
    const clip = await decodeAudio(bytes, 'tone.wav');
    assert.equal(clip.sampleRate, 16000);
    const f = clipFeatures(m.features, [{ ...clip, name: 'tone.wav' }]);
    assert.deepEqual(f.dims, [1, 80, 100]);
    assert.deepEqual(f.warnings, []);
    // the tone's energy lands in the mel bins around 660 Hz, in the first half second only
    const frames = f.dims[2];
    const col = (t: number) => Array.from({ length: 80 }, (_, b) => f.data[b * frames + t]);
    const peak = col(20).indexOf(Math.max(...col(20)));
    // 660 Hz = 9.9 mel (Slaney, linear below 1 kHz); 82 points over 0..45.2 mel put it near bin 16
    assert.ok(peak >= 14 && peak <= 19, `peak mel bin ${peak}`);
    assert.ok(Math.max(...col(80)) < Math.max(...col(20)) - 1);
  } finally {
    m.close();
  }
});

test('a trained audio adapter saves as a PEFT folder, loads back, and merged gives the LoRA-branch answers', async () => {
  const { saveAudioAdapter, loadAudioAdapter, mergeAudioAdapter } = await import('../../src-main/models/audio/adapter');
  const { AudioLlmCachedGenerator } = await import('../../src-main/models/audio/generate');
  const { AudioLlmGenerator, promptIds } = await import('../../src-main/models/audio/train');
  const m = loadAudioLlm(built.dir);
  try {
    const frames = m.features.config.nbMaxFrames;
    const lora = { rank: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'] };
    const t = buildTrainableAudioLlm(m, 'lora+projector', lora, frames);
    // a non-trivial state: B != 0, projector moved
    const values = t.initialValues(3);
    let k = 0;
    for (const p of t.params) {
      const v = values[p.name];
      for (let i = 0; i < v.length; i++) v[i] += 0.05 * Math.sin(++k * 0.37);
    }
    const dir = join(tmp.dir, 'adapter');
    saveAudioAdapter(dir, m, 'lora+projector', lora, values, built.dir);
    const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    const re = new RegExp(`^(?:${cfg.target_modules})$`);
    assert.ok(
      re.test('language_model.model.layers.1.self_attn.q_proj') &&
        re.test('language_model.model.layers.0.mlp.down_proj'),
    );
    assert.ok(
      !re.test('audio_tower.layers.0.self_attn.q_proj') && !re.test('language_model.model.layers.0.self_attn.k_proj'),
    );
    assert.deepEqual(cfg.modules_to_save, ['multi_modal_projector']);
    const back = loadAudioAdapter(dir, m);
    assert.equal(back.method, 'lora+projector');
    assert.deepEqual(back.lora, lora);
    for (const p of t.params) assert.deepEqual(back.values[p.name], values[p.name], p.name);
    const s = toneSample(6, 2);
    const f = clipFeatures(m.features, [{ samples: s.samples, sampleRate: s.sampleRate }]);
    const branch = await AudioLlmGenerator.create(m, t);
    const a1 = (await branch.answer([s.question], f, values, t.params, 5))[0];
    await branch.dispose();
    const merged = await AudioLlmCachedGenerator.create(
      { config: m.config, weights: mergeAudioAdapter(m, 'lora+projector', lora, back.values) },
      frames,
    );
    const r = await merged.greedy(promptIds(m, s.question), f, 5, { stopAtEos: true });
    await merged.dispose();
    const eos = new Set(m.config.text.eosTokenIds);
    assert.equal(
      m.tokenizer
        .decode(
          r.ids.filter((id) => !eos.has(id)),
          { skipSpecialTokens: true },
        )
        .trim(),
      a1,
    );
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...cfg, r: 8 }));
    assert.throws(
      () => loadAudioAdapter(dir, m),
      /adapter_model\.safetensors: tensor "base_model\.model\.language_model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight" has shape \[4,64\], the model needs \[8,64\]/,
    );
  } finally {
    m.close();
  }
});
