import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { runCli } from '../../src-main/cli';
import { writeTinyWhisper } from '../../src-main/models/demo/tiny-whisper';
import { writeTinyTextLlm } from '../../src-main/models/demo/tiny-audio-llm';
import { toneSample } from '../../src-main/models/demo/tones';
import { wav } from '../helpers/wav';

const { dir, cleanup } = tempDir('cli-audio-');
after(cleanup);

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(
    argv,
    { out: (t) => out.push(t), err: (t) => err.push(t) },
    { LENSLAB_DATA_DIR: join(dir, 'data') },
  );
  return { code, out: out.join('\n'), err: err.join('\n') };
}

test('lenslab audio compose, train (projector, then LoRA from it) and ask, from WAV files and a JSONL', async () => {
  writeTinyWhisper(join(dir, 'whisper'), 1, { initStd: 0.02, convStd: 0.3 });
  writeTinyTextLlm(join(dir, 'llama'), 2);
  const composed = join(dir, 'audio-llm');
  let r = await cli([
    'audio',
    'compose',
    '--whisper',
    join(dir, 'whisper'),
    '--llm',
    join(dir, 'llama'),
    '--out',
    composed,
  ]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /stack-4 projector .* audio token id \d+ \(added\)/);
  const data = join(dir, 'set');
  mkdirSync(join(data, 'clips'), { recursive: true });
  const lines: string[] = [];
  for (let i = 0; i < 6; i++) {
    const s = toneSample(3, i);
    // every other clip at 22.05 kHz: resampled on the way in
    const rate = i % 2 ? 22050 : 16000;
    const x =
      rate === 16000
        ? s.samples
        : Float32Array.from(
            { length: Math.round((s.samples.length * rate) / 16000) },
            (_, k) => s.samples[Math.min(s.samples.length - 1, Math.round((k * 16000) / rate))],
          );
    writeFileSync(join(data, 'clips', `${i}.wav`), wav(x, rate));
    lines.push(
      JSON.stringify(
        i < 2
          ? { audio: `clips/${i}.wav`, caption: s.caption }
          : { audio: `clips/${i}.wav`, question: s.question, answer: s.answer },
      ),
    );
  }
  writeFileSync(join(data, 'data.jsonl'), lines.join('\n') + '\n');
  r = await cli([
    'audio',
    'train',
    '--model',
    composed,
    '--data',
    join(data, 'data.jsonl'),
    '--out',
    join(dir, 'stage1'),
    '--steps',
    '3',
    '--batch-size',
    '4',
  ]);
  assert.equal(r.code, 0, r.err);
  assert.ok(existsSync(join(dir, 'stage1', 'adapter_model.safetensors')));
  r = await cli([
    'audio',
    'train',
    '--model',
    composed,
    '--data',
    join(data, 'data.jsonl'),
    '--out',
    join(dir, 'stage2'),
    '--method',
    'lora+projector',
    '--init',
    join(dir, 'stage1'),
    '--steps',
    '3',
    '--batch-size',
    '4',
    '--rank',
    '4',
    '--target-modules',
    'q_proj,v_proj',
  ]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /lora\+projector, 6 clips, final loss/);
  r = await cli([
    '--json',
    'audio',
    'ask',
    '--model',
    composed,
    '--adapter',
    join(dir, 'stage2'),
    '--audio',
    join(data, 'clips', '3.wav'),
    '--question',
    'How many beeps?',
    '--max-tokens',
    '4',
  ]);
  assert.equal(r.code, 0, r.err);
  const a = JSON.parse(r.out);
  assert.equal(a.question, 'How many beeps?');
  assert.ok(a.tokens >= 1 && a.tokens <= 4);
});

test('lenslab audio: bad data and bad files are named; usage errors exit 2', async () => {
  const data = join(dir, 'bad');
  mkdirSync(data, { recursive: true });
  const train = (file: string, ...flags: string[]) =>
    cli([
      'audio',
      'train',
      '--model',
      join(dir, 'audio-llm'),
      '--data',
      join(data, file),
      '--out',
      join(dir, 'x'),
      ...flags,
    ]);
  writeFileSync(join(data, 'escape.jsonl'), JSON.stringify({ audio: '../secret.wav', caption: 'x' }) + '\n');
  let r = await train('escape.jsonl');
  assert.equal(r.code, 1);
  assert.match(r.err, /escape\.jsonl:1: field "audio": "\.\.\/secret\.wav" leaves the data folder/);
  writeFileSync(join(data, 'noanswer.jsonl'), JSON.stringify({ audio: 'a.wav', question: 'q' }) + '\n');
  r = await train('noanswer.jsonl');
  assert.match(r.err, /noanswer\.jsonl:1: needs "question" and "answer" strings, or a "caption" string/);
  writeFileSync(join(data, 'broken.wav'), 'RIFF....not a wav');
  r = await cli(['audio', 'ask', '--model', join(dir, 'audio-llm'), '--audio', join(data, 'broken.wav')]);
  assert.equal(r.code, 1);
  assert.match(r.err, /broken\.wav/);
  // a flag that is not a number is a usage error naming it, before any work
  r = await train('noanswer.jsonl', '--alpha', 'big');
  assert.equal(r.code, 2);
  assert.match(r.err, /--alpha must be a number \(got "big"\)/);
  r = await cli(['audio', 'listen']);
  assert.equal(r.code, 2);
  assert.match(r.err, /unknown audio command "listen"/);
  r = await cli(['audio', 'ask', '--model', join(dir, 'nope'), '--audio', join(data, 'broken.wav')]);
  assert.equal(r.code, 1);
  assert.match(r.err, /nope: no config\.json/);
});
