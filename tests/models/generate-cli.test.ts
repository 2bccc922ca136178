// `lenslab generate` and `lenslab score` on the tiny LLaVA: same tokens / losses as the library, streamed text,
// clear errors for bad paths and flags.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { runCli } from '../../src-main/cli';
import { writeTinyLlava } from '../../src-main/models/demo/tiny-llava';
import { makeSample } from '../../src-main/models/demo/shapes';
import { loadGenerator, type Generator } from '../../src-main/models/generate';
import { tempDir } from '../helpers/tmp';

const tmp = tempDir('generate-cli-');
const modelDir = join(tmp.dir, 'model');
const dataDir = join(tmp.dir, 'data');
const image = join(tmp.dir, 'img.png');
let g: Generator;

before(async () => {
  writeTinyLlava(modelDir, 0, { initStd: 0.2 });
  const s = makeSample(5, 3, { size: 64 });
  await sharp(Buffer.from(s.rgb), { raw: { width: 64, height: 64, channels: 3 } })
    .png()
    .toFile(image);
  g = await loadGenerator(modelDir, null, { cacheDir: join(tmp.dir, 'cache') });
});
after(async () => {
  await g.dispose();
  tmp.cleanup();
});

async function cli(argv: string[], raw = false) {
  const out: string[] = [];
  const err: string[] = [];
  const written: string[] = [];
  const io = {
    out: (t: string) => out.push(t),
    err: (t: string) => err.push(t),
    ...(raw ? { write: (t: string) => written.push(t) } : {}),
  };
  const code = await runCli([...argv, '--data-dir', dataDir], io, {});
  return { code, out: out.join('\n'), err: err.join('\n'), written: written.join('') };
}

test('generate --json gives the library tokens; plain output streams the same text', async () => {
  const want = await g.generate(
    { image, messages: [{ role: 'user', content: 'How many squares are there?' }] },
    { maxNewTokens: 6 },
  );
  const r = await cli([
    'generate',
    '--model',
    modelDir,
    '--image',
    image,
    '--prompt',
    'How many squares are there?',
    '--max-new-tokens',
    '6',
    '--json',
  ]);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.deepEqual(j.ids, want.ids);
  assert.equal(j.text, want.text);
  assert.equal(j.finishReason, 'length');
  const s = await cli(
    [
      'generate',
      '--model',
      modelDir,
      '--image',
      image,
      '--prompt',
      'How many squares are there?',
      '--max-new-tokens',
      '6',
    ],
    true,
  );
  assert.equal(s.code, 0, s.err);
  assert.equal(s.written, `${want.text}\n`);
  // sampling flags reach the sampler: a seed reproduces, temperature changes the answer
  const a = JSON.parse(
    (
      await cli([
        'generate',
        '--model',
        modelDir,
        '--image',
        image,
        '--prompt',
        'Hi',
        '--max-new-tokens',
        '12',
        '--temperature',
        '1.2',
        '--seed',
        '4',
        '--json',
      ])
    ).out,
  );
  const b = JSON.parse(
    (
      await cli([
        'generate',
        '--model',
        modelDir,
        '--image',
        image,
        '--prompt',
        'Hi',
        '--max-new-tokens',
        '12',
        '--temperature',
        '1.2',
        '--seed',
        '4',
        '--json',
      ])
    ).out,
  );
  const greedy = JSON.parse(
    (
      await cli([
        'generate',
        '--model',
        modelDir,
        '--image',
        image,
        '--prompt',
        'Hi',
        '--max-new-tokens',
        '12',
        '--json',
      ])
    ).out,
  );
  assert.deepEqual(a.ids, b.ids);
  assert.notDeepEqual(a.ids, greedy.ids);
});

test('generate: bad paths and flags are clear errors', async () => {
  let r = await cli(['generate', '--model', join(tmp.dir, 'nowhere'), '--prompt', 'hi']);
  assert.equal(r.code, 1);
  assert.match(r.err, /not_found.*nowhere: not found \(--model\)/);
  r = await cli(['generate', '--model', modelDir, '--image', join(tmp.dir, 'nope.jpg'), '--prompt', 'hi']);
  assert.equal(r.code, 1);
  assert.match(r.err, /nope\.jpg: not found \(--image\)/);
  r = await cli(['generate', '--model', modelDir, '--prompt', 'hi', '--adapter', join(tmp.dir, 'no-adapter')]);
  assert.match(r.err, /no-adapter: not found \(--adapter\)/);
  r = await cli(['generate', '--model', modelDir]);
  assert.equal(r.code, 2);
  assert.match(r.err, /--prompt is required/);
  r = await cli(['generate', '--model', modelDir, '--prompt', 'hi', '--temperature', 'hot']);
  assert.equal(r.code, 2);
  assert.match(r.err, /--temperature must be a number/);
  r = await cli(['generate', '--model', modelDir, '--prompt', 'hi', '--top-p', '2', '--temperature', '1', '--json']);
  assert.equal(r.code, 1);
  assert.equal(JSON.parse(r.err).error.field, 'options');
  writeFileSync(join(tmp.dir, 'broken.png'), 'not a png');
  r = await cli(['generate', '--model', modelDir, '--image', join(tmp.dir, 'broken.png'), '--prompt', 'hi', '--json']);
  assert.equal(r.code, 1);
  const e = JSON.parse(r.err).error;
  assert.equal(e.field, 'image');
  assert.match(e.message, /broken\.png: cannot decode image/);
  r = await cli(['generate', '--model', tmp.dir, '--prompt', 'hi']);
  assert.equal(r.code, 1);
  assert.match(r.err, /no config\.json/);
});

test('score: a LLaVA JSON file, losses equal the library, per-sample and means', async () => {
  const data = join(tmp.dir, 'llava.json');
  writeFileSync(
    data,
    JSON.stringify([
      {
        id: 'a',
        image: 'img.png',
        conversations: [
          { from: 'human', value: '<image>\nHow many squares are there?' },
          { from: 'gpt', value: 'Two.' },
        ],
      },
      {
        id: 'b',
        image: 'img.png',
        conversations: [
          { from: 'human', value: '<image>\nWhat is red?' },
          { from: 'gpt', value: 'A square.' },
          { from: 'human', value: 'And green?' },
          { from: 'gpt', value: 'A triangle.' },
        ],
      },
    ]),
  );
  const r = await cli(['score', '--model', modelDir, '--data', data, '--json']);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.equal(j.samples.length, 2);
  const want = await g.score([
    {
      image,
      messages: [
        { role: 'user', content: '<image>\nHow many squares are there?' },
        { role: 'assistant', content: 'Two.' },
      ],
    },
    {
      image,
      messages: [
        { role: 'user', content: '<image>\nWhat is red?' },
        { role: 'assistant', content: 'A square.' },
        { role: 'user', content: 'And green?' },
        { role: 'assistant', content: 'A triangle.' },
      ],
    },
  ]);
  for (let i = 0; i < 2; i++) {
    assert.equal(j.samples[i].tokens, want[i].tokens);
    assert.ok(Math.abs(j.samples[i].loss - want[i].loss) < 1e-9);
  }
  assert.ok(Math.abs(j.meanLoss - (want[0].loss + want[1].loss) / 2) < 1e-9);
  assert.equal(j.tokens, want[0].tokens + want[1].tokens);
  const plain = await cli(['score', '--model', modelDir, '--data', data, '--limit', '1']);
  assert.equal(plain.code, 0, plain.err);
  assert.match(plain.out, /^SAMPLE\s+KIND\s+TOKENS\s+LOSS/);
  assert.match(plain.out, /mean loss \d+\.\d{4} over 1 sample\(s\)/);
  let e = await cli(['score', '--model', modelDir, '--data', join(tmp.dir, 'missing.jsonl')]);
  assert.equal(e.code, 1);
  assert.match(e.err, /missing\.jsonl: not found \(--data\)/);
  writeFileSync(join(tmp.dir, 'bad.json'), '{ nope');
  e = await cli(['score', '--model', modelDir, '--data', join(tmp.dir, 'bad.json'), '--json']);
  assert.equal(e.code, 1);
  assert.equal(JSON.parse(e.err).error.field, 'data');
});
