// `lenslab export --model … --format gguf` (models.exportGguf through the backend's worker thread): the files, the
// Modelfile, progress on stderr, and the errors a user meets (usage, a non-empty folder, an unsupported model).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../../src-main/cli';
import { readGguf } from '../../src-main/export/gguf/reader';
import { writeSiglipQwen2Llava } from '../fixtures/models/siglip-qwen2';
import { tempDir } from '../helpers/tmp';

const DEMO = join(import.meta.dirname, '../../resources/demo/model');
const tmp = tempDir('gguf-cli-');
after(tmp.cleanup);
const dataDir = join(tmp.dir, 'data');

async function cli(argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli([...argv, '--data-dir', dataDir], { out: (t) => out.push(t), err: (t) => err.push(t) }, {});
  return { code, out: out.join('\n'), err: err.join('\n') };
}

test('export --format gguf writes the model, the mmproj and a Modelfile; a second export needs --overwrite', async () => {
  const out = join(tmp.dir, 'gguf');
  const r = await cli(['export', '--model', DEMO, out, '--format', 'gguf', '--quant', 'q4_0', '--name', 'Demo LLaVA']);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(readdirSync(out).sort(), ['Modelfile', 'demo-llava-q4_0.gguf', 'mmproj-demo-llava-q8_0.gguf']);
  assert.match(r.out, /demo-llava-q4_0\.gguf \(21 tensors/);
  assert.match(r.out, /^Note: llama\.cpp's LLaVA graph places the vision tower's class token after the patches/m);
  assert.match(r.err, /tensors 21\/21/);
  assert.equal(readGguf(join(out, 'demo-llava-q4_0.gguf')).kv.get('general.name'), 'Demo LLaVA');
  const again = await cli(['export', '--model', DEMO, out, '--format', 'gguf']);
  assert.equal(again.code, 1);
  assert.match(again.err, /not empty.*--overwrite replaces an earlier GGUF export/);
  const over = await cli([
    'export',
    '--model',
    DEMO,
    out,
    '--format',
    'gguf',
    '--overwrite',
    '--json',
    '--name',
    'Demo LLaVA',
  ]);
  assert.equal(over.code, 0, over.err);
  assert.equal(JSON.parse(over.out).quant, 'q8_0');
  assert.deepEqual(readdirSync(out).sort(), ['Modelfile', 'demo-llava-q8_0.gguf', 'mmproj-demo-llava-q8_0.gguf']);
});

test('export --format gguf: usage errors and an unsupported model name the flag or the field', async () => {
  const u = await cli(['export', join(tmp.dir, 'x'), '--format', 'gguf']);
  assert.equal(u.code, 2);
  assert.match(u.err, /needs --model/);
  const q = await cli(['export', '--model', DEMO, join(tmp.dir, 'x'), '--format', 'gguf', '--quant', 'q3_k']);
  assert.equal(q.code, 2);
  assert.match(q.err, /--quant must be one of f32, f16, q8_0, q4_0/);
  const d = join(tmp.dir, 'siglip-qwen2');
  writeSiglipQwen2Llava(d, 3);
  const bad = await cli(['export', '--model', d, join(tmp.dir, 'y'), '--format', 'gguf']);
  assert.equal(bad.code, 1);
  assert.match(
    bad.err,
    /GGUF export does not support this llava \(siglip_vision_model \+ qwen2\) model: config\.json mm_projector_type is linear/,
  );
});
