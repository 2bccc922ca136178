// `npm run demo -- --model blip` at a toy size: pretrains a tiny BLIP, writes the icon-VQA layout, reads it back
// through the importer, fine-tunes the recipe's LoRA and prints base / fine-tuned / majority exact match.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { blipDemo } from '../../scripts/blip-demo';

const tmp = tempDir('blip-demo-');
after(() => tmp.cleanup());

test('the BLIP demo runs end to end on the icon-VQA layout and prints the three scores', async () => {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => void lines.push(a.join(' '));
  let code: number;
  try {
    code = await blipDemo([
      '--model',
      'blip',
      '--pretrain-steps',
      '2',
      '--train',
      '12',
      '--test',
      '6',
      '--epochs',
      '1',
      '--data-dir',
      tmp.dir,
    ]);
  } finally {
    console.log = log;
  }
  assert.equal(code, 0, lines.join('\n'));
  const data = join(tmp.dir, 'icon-vqa');
  assert.equal(readFileSync(join(data, 'train.jsonl'), 'utf8').trim().split('\n').length, 12);
  assert.ok(existsSync(join(data, 'train_fill_in_blank', 'train_fill_in_blank', '100', 'image.png')));
  assert.equal(readdirSync(join(data, 'test_data')).length, 6);
  assert.ok(existsSync(join(tmp.dir, 'adapter', 'adapter_model.safetensors')));
  const out = lines.join('\n');
  assert.match(out, /12 train, 6 test questions read by the importer/);
  assert.match(out, /base \(pretrained tiny BLIP\) +\d+\.\d%/);
  assert.match(out, /fine-tuned \(LoRA adapter\) +\d+\.\d%/);
  assert.match(out, /majority answer "[a-z]+" \(\d+\/12 of train\) +\d+\.\d%/);
});
