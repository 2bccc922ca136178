// Contrastive fine-tuning demo: a tiny CLIP (random weights: no pretrained weights are reachable here) and the
// generated colour/shape dataset (demo/contrastive-dataset.ts), then the CLI's own commands: train a LoRA adapter on
// train/, and evaluate base and adapter on the held-out val/ pairs (zero-shot accuracy, recall@1/5/10).
//   npx tsx scripts/contrastive-demo.ts [WORK_DIR]
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../src-main/cli';
import { writeTinyContrastive } from '../src-main/models/demo/tiny-contrastive';
import { writeContrastiveDataset } from '../src-main/models/demo/contrastive-dataset';

const work = process.argv[2] ?? mkdtempSync(join(tmpdir(), 'lenslab-contrastive-demo-'));
const model = join(work, 'tiny-clip');
const data = join(work, 'shapes');
const adapter = join(work, 'adapter');
writeTinyContrastive(model, 'clip', 1, {
  imageSize: 32,
  patchSize: 8,
  hidden: 64,
  layers: 2,
  heads: 4,
  std: 0.1,
  textPositions: 32,
});
const counts = await writeContrastiveDataset(data);
console.log(
  `tiny CLIP in ${model}; ${counts.train} train / ${counts.val} val pairs, ${counts.classes.length} classes in ${data}`,
);
const dataDir = join(work, 'lenslab-data');
const run = async (args: string[]) => {
  console.log(`\n$ lenslab ${args.join(' ')}`);
  const code = await runCli([...args, '--data-dir', dataDir]);
  if (code !== 0) throw new Error(`lenslab ${args[0]} exited with ${code}`);
};
await run([
  'train',
  '--method',
  'contrastive',
  '--model',
  model,
  '--data',
  data,
  '--out',
  adapter,
  '--epochs',
  '15',
  '--batch-size',
  '16',
  '--lr',
  '3e-3',
  '--rank',
  '8',
  '--alpha',
  '16',
]);
await run(['eval', '--model', model, '--adapter', adapter, '--data', data, '--split', 'val']);
