// The tiny Idefics3 of the PyTorch reference through the CLI: `lenslab generate --json` gives the reference's greedy
// tokens, `lenslab score --json` its loss, `lenslab train` runs LoRA and connector-only ("projector") fine-tunes on
// tiled images whose adapters load back (PEFT keys of Idefics3ForConditionalGeneration) and change the answers.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { tempDir } from '../helpers/tmp';
import { runCli } from '../../src-main/cli';
import { writeDemoDataset } from '../../src-main/models/demo/dataset';
import { writeTinyIdefics3 } from '../../src-main/models/demo/tiny-idefics3';
import { SafetensorsFile } from '../../src-main/models/weights/safetensors';
import { ANSWER, IDEFICS3_OPTIONS, QUESTION, referenceImage } from '../fixtures/models/idefics3';

const tmp = tempDir('idefics3-cli-');
after(() => tmp.cleanup());
const ref = JSON.parse(
  readFileSync(join(import.meta.dirname, '../fixtures/models/idefics3-reference.json'), 'utf8'),
) as { seed: number; greedy: number[]; loss: number };
const env = { ...process.env, LENSLAB_GRAPH_CACHE: join(tmp.dir, 'graph-cache'), LENSLAB_NO_TTY: '1' };
const dataDir = join(tmp.dir, 'app');
const modelDir = join(tmp.dir, 'model');
writeTinyIdefics3(modelDir, ref.seed, IDEFICS3_OPTIONS);
const image = join(tmp.dir, 'img.png');
const img = referenceImage();
await sharp(Buffer.from(img.data), { raw: { width: img.width, height: img.height, channels: 3 } })
  .png()
  .toFile(image);
// 48 x 48 scenes: longest edge 64, 2 x 2 tiles + the global image per image
await writeDemoDataset(join(tmp.dir, 'icons'), { seed: 9, count: 16, size: 48, families: ['colors'] });
const vqa = join(tmp.dir, 'icons', 'vqa.jsonl');

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(
    ['--data-dir', dataDir, ...args],
    { out: (t) => out.push(t), err: (t) => err.push(t) },
    env,
  );
  return { code, out: out.join('\n'), err: err.join('\n') };
}

test('generate --json and score --json match the PyTorch reference', async () => {
  const g = await cli(
    'generate',
    '--model',
    modelDir,
    '--image',
    image,
    '--prompt',
    QUESTION,
    '--max-new-tokens',
    String(ref.greedy.length),
    '--json',
  );
  assert.equal(g.code, 0, g.err);
  assert.deepEqual(JSON.parse(g.out).ids, ref.greedy);
  const data = join(tmp.dir, 'score.json');
  writeFileSync(
    data,
    JSON.stringify([
      {
        id: 'a',
        image: 'img.png',
        conversations: [
          { from: 'human', value: `<image>\n${QUESTION}` },
          { from: 'gpt', value: ANSWER },
        ],
      },
    ]),
  );
  const s = await cli('score', '--model', modelDir, '--data', data, '--json');
  assert.equal(s.code, 0, s.err);
  const j = JSON.parse(s.out);
  // the reference's answer turn is " a red circle" (the template writes "Assistant:" then the content)
  assert.ok(Number.isFinite(j.samples[0].loss) && j.samples[0].tokens > 0, s.out);
  const spaced = join(tmp.dir, 'score-spaced.jsonl');
  writeFileSync(
    spaced,
    JSON.stringify({
      images: ['img.png'],
      messages: [
        { role: 'user', content: `<image>\n${QUESTION}` },
        { role: 'assistant', content: ` ${ANSWER}` },
      ],
    }) + '\n',
  );
  const s2 = await cli('score', '--model', modelDir, '--data', spaced, '--json');
  assert.equal(s2.code, 0, s2.err);
  const j2 = JSON.parse(s2.out);
  if (Math.abs(j2.samples[0].loss - ref.loss) >= 1e-4)
    assert.fail(`score loss ${j2.samples[0].loss} vs reference ${ref.loss} (${s2.out})`);
});

for (const method of ['lora', 'projector'] as const) {
  test(`lenslab train --method ${method} on tiled images; the adapter loads and answers`, async () => {
    const out = join(tmp.dir, `run-${method}`);
    const t = await cli(
      'train',
      '--model',
      modelDir,
      '--data',
      vqa,
      '--out',
      out,
      '--method',
      method,
      '--steps',
      '4',
      '--batch-size',
      '2',
      '--lr',
      '1e-2',
      '--dropout',
      '0',
      '--save-every',
      '2',
      '--eval-items',
      '2',
    );
    assert.equal(t.code, 0, t.err);
    assert.match(t.out, /plan: 4 steps/);
    assert.match(t.out, /run \d+ completed: 4 steps/);
    const adapter = join(out, 'final');
    assert.ok(existsSync(join(adapter, 'adapter_model.safetensors')));
    const cfg = JSON.parse(readFileSync(join(adapter, 'adapter_config.json'), 'utf8'));
    const f = SafetensorsFile.open(join(adapter, 'adapter_model.safetensors'));
    const keys = f.names();
    f.close();
    if (method === 'projector') {
      assert.deepEqual(cfg.modules_to_save, ['connector']);
      assert.ok(keys.includes('base_model.model.model.connector.modality_projection.proj.weight'), keys.join(', '));
    } else {
      assert.equal(cfg.modules_to_save, null);
      assert.ok(
        keys.some((k) =>
          /^base_model\.model\.model\.text_model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight$/.test(k),
        ),
        keys.join(', '),
      );
    }
    const base = JSON.parse(
      (
        await cli(
          'generate',
          '--model',
          modelDir,
          '--image',
          image,
          '--prompt',
          QUESTION,
          '--max-new-tokens',
          '4',
          '--json',
        )
      ).out,
    );
    const tuned = await cli(
      'generate',
      '--model',
      modelDir,
      '--adapter',
      adapter,
      '--image',
      image,
      '--prompt',
      QUESTION,
      '--max-new-tokens',
      '4',
      '--json',
    );
    assert.equal(tuned.code, 0, tuned.err);
    assert.notDeepEqual(JSON.parse(tuned.out).ids, base.ids, 'the adapter changes the answer');
    const sc = await cli('score', '--model', modelDir, '--adapter', adapter, '--data', vqa, '--limit', '4', '--json');
    assert.equal(sc.code, 0, sc.err);
    assert.ok(Number.isFinite(JSON.parse(sc.out).meanLoss));
  });
}
