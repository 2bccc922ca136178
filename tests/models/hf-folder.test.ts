import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { writeTinyLlava } from '../../src-main/models/demo/tiny-llava';
import { loadHfFolder, saveHfFolder, type HfModel } from '../../src-main/models/hf-folder';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../../src-main/models/weights/safetensors';
import { expectedTensors } from '../../src-main/models/weights/names';

const { dir: root, cleanup } = tempDir('hf-folder-');
after(cleanup);
const base = join(root, 'tiny');
before(() => {
  writeTinyLlava(base, 11);
});

function allTensors(m: HfModel): Map<string, Float32Array> {
  return new Map(m.weights.names().map((n) => [n, m.weights.get(n)]));
}

function assertSameTensors(a: HfModel, b: HfModel) {
  assert.deepEqual(a.weights.names().sort(), b.weights.names().sort());
  for (const n of a.weights.names()) {
    assert.deepEqual(b.weights.info(n).shape, a.weights.info(n).shape, n);
    assert.equal(b.weights.info(n).dtype, a.weights.info(n).dtype, n);
    assert.deepEqual(Buffer.from(b.weights.get(n).buffer), Buffer.from(a.weights.get(n).buffer), `tensor ${n} differs`);
  }
}

/** Rewrite a folder's model.safetensors through `edit` (which receives and returns the tensor list). */
function rewriteWeights(dir: string, edit: (ts: TensorToWrite[]) => TensorToWrite[]) {
  const p = join(dir, 'model.safetensors');
  const f = SafetensorsFile.open(p);
  const data = new Map([...f.tensors.keys()].map((n) => [n, f.get(n)]));
  const ts: TensorToWrite[] = [...f.tensors.values()].map((t) => ({
    name: t.name,
    dtype: 'F32',
    shape: t.shape,
    data: () => data.get(t.name)!,
  }));
  f.close();
  writeSafetensors(p, edit(ts));
}

function copyOf(name: string): string {
  const d = join(root, name);
  rmSync(d, { recursive: true, force: true });
  cpSync(base, d, { recursive: true });
  return d;
}

test('tiny LLaVA: write -> load -> save -> reload gives identical tensors, config and tokenizer files', () => {
  const m = loadHfFolder(base);
  assert.equal(m.config.kind, 'llava');
  assert.equal(m.weights.names().length, expectedTensors(m.config).length);
  assert.ok(m.tokenizer && m.chatTemplate && m.imageProcessor);
  const out = join(root, 'resaved');
  const written = saveHfFolder(out, m);
  assert.deepEqual(written.sort(), [
    'config.json',
    'generation_config.json',
    'model.safetensors',
    'preprocessor_config.json',
    'tokenizer.json',
    'tokenizer_config.json',
  ]);
  const r = loadHfFolder(out);
  assertSameTensors(m, r);
  assert.deepEqual(r.json.config, m.json.config);
  assert.deepEqual(
    readFileSync(join(out, 'tokenizer.json'), 'utf8'),
    readFileSync(join(base, 'tokenizer.json'), 'utf8'),
  );
  assert.deepEqual(
    readFileSync(join(out, 'model.safetensors')),
    readFileSync(join(base, 'model.safetensors')),
    'byte-identical weights file',
  );
  m.close();
  r.close();
});

test('sharded and bf16 variants round trip', () => {
  const m = loadHfFolder(base);
  const sharded = join(root, 'sharded');
  const files = saveHfFolder(sharded, {
    config: m.json.config,
    weights: m.weights,
    tokenizer: m.json.tokenizer,
    tokenizerConfig: m.json.tokenizerConfig,
    preprocessorConfig: m.json.preprocessorConfig,
    maxShardBytes: 300_000,
  });
  assert.ok(files.includes('model.safetensors.index.json'));
  assert.ok(files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length >= 4);
  const s = loadHfFolder(sharded);
  assertSameTensors(m, s);
  // bf16: values are rounded once; saving the bf16 model again is bit-identical
  const bf = join(root, 'bf16');
  saveHfFolder(bf, {
    config: m.json.config,
    weights: m.weights,
    dtype: 'BF16',
    tokenizer: m.json.tokenizer,
    tokenizerConfig: m.json.tokenizerConfig,
    preprocessorConfig: m.json.preprocessorConfig,
  });
  const b = loadHfFolder(bf);
  assert.equal(b.json.config.torch_dtype, 'bfloat16');
  for (const n of m.weights.names()) {
    assert.equal(b.weights.info(n).dtype, 'BF16');
    const x = m.weights.get(n);
    const y = b.weights.get(n);
    for (let i = 0; i < x.length; i++)
      assert.ok(Math.abs(x[i] - y[i]) <= Math.abs(x[i]) / 128 + 1e-30, `${n}[${i}] ${x[i]} vs ${y[i]}`);
  }
  const bf2 = join(root, 'bf16-again');
  saveHfFolder(bf2, b);
  const b2 = loadHfFolder(bf2);
  assertSameTensors(b, b2);
  assert.deepEqual(readFileSync(join(bf2, 'model.safetensors')), readFileSync(join(bf, 'model.safetensors')));
  // sharded bf16 back to one f32 file
  const sb = join(root, 'sharded-bf16');
  saveHfFolder(sb, {
    config: b.json.config,
    weights: b.weights,
    maxShardBytes: 100_000,
    tokenizer: b.json.tokenizer,
    preprocessorConfig: b.json.preprocessorConfig,
  });
  const sbm = loadHfFolder(sb);
  assertSameTensors(b, sbm);
  for (const x of [m, s, b, b2, sbm]) x.close();
});

test('a checkpoint in the transformers >= 4.52 layout (model.language_model.*, lm_head.weight) loads under classic names', () => {
  const d = copyOf('new-layout');
  rewriteWeights(d, (ts) =>
    ts.map((t) => ({
      ...t,
      name: t.name
        .replace(/^language_model\.model\./, 'model.language_model.')
        .replace(/^vision_tower\./, 'model.vision_tower.')
        .replace(/^multi_modal_projector\./, 'model.multi_modal_projector.')
        .replace(/^language_model\.lm_head\./, 'lm_head.'),
    })),
  );
  const f = SafetensorsFile.open(join(d, 'model.safetensors'));
  assert.ok(f.has('model.language_model.embed_tokens.weight') && f.has('lm_head.weight'));
  f.close();
  const m = loadHfFolder(d);
  const ref = loadHfFolder(base);
  assertSameTensors(ref, m);
  assert.equal(m.weights.storedName('language_model.lm_head.weight'), 'lm_head.weight');
  // saving writes the classic layout
  const out = join(root, 'new-layout-saved');
  saveHfFolder(out, m);
  const g = SafetensorsFile.open(join(out, 'model.safetensors'));
  assert.ok(
    g.has('language_model.model.embed_tokens.weight') &&
      g.has('language_model.lm_head.weight') &&
      !g.has('lm_head.weight'),
  );
  g.close();
  m.close();
  ref.close();
});

test('old buffers (position_ids, rotary inv_freq) are skipped, not errors', () => {
  const d = copyOf('buffers');
  rewriteWeights(d, (ts) => [
    ...ts,
    {
      name: 'vision_tower.vision_model.embeddings.position_ids',
      dtype: 'F32',
      shape: [1, 65],
      data: () => new Float32Array(65),
    },
    {
      name: 'language_model.model.layers.0.self_attn.rotary_emb.inv_freq',
      dtype: 'F32',
      shape: [12],
      data: () => new Float32Array(12),
    },
  ]);
  const m = loadHfFolder(d);
  assert.ok(!m.weights.has('vision_tower.vision_model.embeddings.position_ids'));
  m.close();
});

test('bad folders: errors name the file and the tensor or field', () => {
  // missing tensor
  let d = copyOf('missing');
  rewriteWeights(d, (ts) => ts.filter((t) => t.name !== 'language_model.model.layers.1.mlp.up_proj.weight'));
  assert.throws(
    () => loadHfFolder(d),
    (e: Error) => {
      assert.match(
        e.message,
        /missing\/model\.safetensors: missing 1 tensor\(s\) that config\.json requires: language_model\.model\.layers\.1\.mlp\.up_proj\.weight/,
      );
      return true;
    },
  );
  // wrong shape
  d = copyOf('shape');
  rewriteWeights(d, (ts) =>
    ts.map((t) => (t.name === 'multi_modal_projector.linear_1.weight' ? { ...t, shape: [t.shape[1], t.shape[0]] } : t)),
  );
  assert.throws(
    () => loadHfFolder(d),
    /shape\/model\.safetensors: tensor "multi_modal_projector\.linear_1\.weight" has shape \[64,96\], expected \[96,64\] from config\.json/,
  );
  // extra tensor
  d = copyOf('extra');
  rewriteWeights(d, (ts) => [
    ...ts,
    {
      name: 'language_model.model.layers.2.mlp.up_proj.weight',
      dtype: 'F32',
      shape: [2],
      data: () => new Float32Array(2),
    },
  ]);
  assert.throws(
    () => loadHfFolder(d),
    /extra\/model\.safetensors: 1 unexpected tensor\(s\) that config\.json does not explain: language_model\.model\.layers\.2\.mlp\.up_proj\.weight/,
  );
  // unknown model_type
  d = copyOf('mtype');
  const cfg = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
  writeFileSync(
    join(d, 'config.json'),
    JSON.stringify({ ...cfg, text_config: { ...cfg.text_config, model_type: 'falcon' } }),
  );
  assert.throws(
    () => loadHfFolder(d),
    /mtype\/config\.json: field "text_config\.model_type": unknown text model_type "falcon"/,
  );
  writeFileSync(join(d, 'config.json'), JSON.stringify({ ...cfg, model_type: 'llava_next' }));
  assert.throws(() => loadHfFolder(d), /mtype\/config\.json: field "model_type": unknown model_type "llava_next"/);
  // broken tokenizer.json
  d = copyOf('tok');
  const tj = readFileSync(join(d, 'tokenizer.json'), 'utf8');
  writeFileSync(join(d, 'tokenizer.json'), tj.slice(0, tj.length / 2));
  assert.throws(() => loadHfFolder(d), /tok\/tokenizer\.json: not valid JSON/);
  writeFileSync(join(d, 'tokenizer.json'), JSON.stringify({ ...JSON.parse(tj), model: undefined }));
  assert.throws(() => loadHfFolder(d), /tok\/tokenizer\.json: field "model" is missing/);
  writeFileSync(
    join(d, 'tokenizer.json'),
    JSON.stringify({ ...JSON.parse(tj), added_tokens: [{ id: 'x', content: '<s>' }] }),
  );
  assert.throws(() => loadHfFolder(d), /tok\/tokenizer\.json: added_tokens\[0\] needs an integer "id"/);
  writeFileSync(join(d, 'tokenizer.json'), tj);
  const tc = JSON.parse(readFileSync(join(d, 'tokenizer_config.json'), 'utf8'));
  writeFileSync(join(d, 'tokenizer_config.json'), JSON.stringify({ ...tc, eos_token: '<|end|>' }));
  assert.throws(
    () => loadHfFolder(d),
    /tok\/tokenizer_config\.json: field "eos_token" is "<\|end\|>", which is not in .*tokenizer\.json/,
  );
  writeFileSync(join(d, 'tokenizer_config.json'), JSON.stringify({ ...tc, chat_template: '{% for m in messages %}' }));
  assert.throws(() => loadHfFolder(d), /tok\/tokenizer_config\.json: field "chat_template": template does not parse/);
  // no weights / pickle only
  d = copyOf('pickle');
  rmSync(join(d, 'model.safetensors'));
  writeFileSync(join(d, 'pytorch_model.bin'), 'not loaded');
  assert.throws(() => loadHfFolder(d), /pickle\/pytorch_model\.bin: PyTorch pickle weights are not loaded/);
  // missing preprocessor config
  d = copyOf('nopp');
  rmSync(join(d, 'preprocessor_config.json'));
  assert.throws(() => loadHfFolder(d), /nopp: no preprocessor_config\.json/);
});

test('saveHfFolder refuses weights that do not match the config', () => {
  const m = loadHfFolder(base);
  const t = allTensors(m);
  t.delete('language_model.model.norm.weight');
  const src = {
    names: () => [...t.keys()],
    has: (n: string) => t.has(n),
    info: (n: string) => m.weights.info(n),
    get: (n: string) => t.get(n)!,
  };
  const out = join(root, 'refused');
  assert.throws(
    () => saveHfFolder(out, { config: m.json.config, weights: src }),
    /cannot save, tensor "language_model\.model\.norm\.weight" is missing/,
  );
  assert.ok(!existsSync(join(out, 'model.safetensors')));
  m.close();
  assert.ok(readdirSync(root).length > 0);
});
