// The published layouts of the BLIP / BLIP-2 fine-tuning recipes, tiny: the icon-domain VQA folders, a Hugging
// Face `datasets` parquet export (sharded, with its dataset card) and COCO-Karpathy caption JSON.
import sharp from 'sharp';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { png, write } from './fixtures';

export const ICON_TRAIN = [
  { pid: '100', question: 'How many diamonds are there?', answer: '1' },
  { pid: '101', question: 'How many stars are there?', answer: '3' },
  { pid: '102', question: 'How many circles are there?', answer: '2' },
  { pid: '103', question: 'How many hearts are there?', answer: '5' },
];
/** Test items: one id ('100') is also a training pid, as the published ids are separate numberings. */
export const ICON_TEST = [
  { id: '100', question: 'How many squares are there?', answer: '4' },
  { id: '7', question: 'How many moons are there?', answer: '6' },
];

/**
 * The icon-VQA layout. `train` is where train.jsonl and its image tree sit: '' (beside test_data/, as published)
 * or a sub-folder such as 'train'.
 */
export async function iconVqa(root: string, opts: { train?: string; lines?: string[] } = {}): Promise<void> {
  const t = opts.train ? `${opts.train}/` : '';
  for (const [i, r] of ICON_TRAIN.entries())
    write(root, `${t}train_fill_in_blank/train_fill_in_blank/${r.pid}/image.png`, await png(200 + i, 6));
  write(root, `${t}train.jsonl`, (opts.lines ?? ICON_TRAIN.map((r) => JSON.stringify(r))).join('\n') + '\n');
  for (const [i, r] of ICON_TEST.entries()) {
    write(root, `test_data/${r.id}/image.png`, await png(220 + i, 6));
    write(
      root,
      `test_data/${r.id}/data.json`,
      JSON.stringify({ question: r.question, answer: r.answer, ques_type: 'fill_in_blank', grade: 'grade1' }),
    );
  }
}

export const HF_CAPTIONS = [
  'a football player kicks the ball',
  'two players run on the pitch',
  'the goalkeeper dives',
  'a crowd in the stadium',
  'a referee shows a card',
];

function captionParquet(images: { bytes: Uint8Array | null; path: string | null }[], texts: string[]): Uint8Array {
  return new Uint8Array(
    parquetWriteBuffer({
      columnData: [
        { name: 'image', data: images },
        { name: 'text', data: texts },
      ],
      schema: [
        { name: 'root', num_children: 2 },
        { name: 'image', repetition_type: 'OPTIONAL', num_children: 2 },
        { name: 'bytes', type: 'BYTE_ARRAY', repetition_type: 'OPTIONAL' },
        { name: 'path', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
        { name: 'text', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      ],
    }),
  );
}

/** A `datasets` parquet export in two shards (3 + 2 rows) with its card (README.md) and dataset_info.json. */
export async function hfParquet(root: string, opts: { shards?: number[] } = {}): Promise<void> {
  const rows = await Promise.all(
    HF_CAPTIONS.map(async (text, i) => ({
      image: { bytes: new Uint8Array(await png(240 + i, 6)), path: `football_${i}.png` },
      text,
    })),
  );
  const parts = [rows.slice(0, 3), rows.slice(3)];
  for (const s of opts.shards ?? [0, 1]) {
    write(
      root,
      `data/train-0000${s}-of-00002.parquet`,
      captionParquet(
        parts[s].map((r) => r.image),
        parts[s].map((r) => r.text),
      ),
    );
  }
  write(
    root,
    'README.md',
    '---\ndataset_info:\n  features:\n  - name: image\n    dtype: image\n  - name: text\n    dtype: string\n  splits:\n  - name: train\n    num_examples: 5\n---\n# football-dataset\n',
  );
  write(
    root,
    'dataset_info.json',
    JSON.stringify({
      features: { image: { _type: 'Image' }, text: { dtype: 'string', _type: 'Value' } },
      splits: { train: { num_examples: 5 } },
    }),
  );
}

/** A parquet file whose image structs hold only paths (no bytes); the image files exist when `present`. */
export async function hfParquetPaths(root: string, present: boolean): Promise<void> {
  const images = [];
  for (let i = 0; i < 2; i++) {
    if (present) write(root, `images/p${i}.png`, await png(260 + i, 6));
    images.push({ bytes: null, path: `images/p${i}.png` });
  }
  write(root, 'train-00000-of-00001.parquet', captionParquet(images, HF_CAPTIONS.slice(0, 2)));
}

export const KARPATHY = [
  {
    caption: 'A woman wearing a net on her head cutting a cake. ',
    image: 'val2014/COCO_val2014_000000522418.jpg',
    image_id: 'coco_522418',
  },
  {
    caption: 'A woman cutting a large white sheet cake.',
    image: 'val2014/COCO_val2014_000000522418.jpg',
    image_id: 'coco_522418',
  },
  {
    caption: 'A child holding a flowered umbrella and petting a yak.',
    image: 'val2014/COCO_val2014_000000184613.jpg',
    image_id: 'coco_184613',
  },
  {
    caption: 'A bicycle replica with a clock as the front wheel.',
    image: 'train2014/COCO_train2014_000000000009.jpg',
    image_id: 'coco_9',
  },
];

/** COCO-Karpathy caption JSON (`[{caption, image, image_id}]`) with its images relative to the JSON. */
export async function cocoKarpathy(root: string, opts: { name?: string } = {}): Promise<void> {
  const names = [...new Set(KARPATHY.map((r) => r.image))];
  for (const [i, n] of names.entries()) {
    const jpg = await sharp({
      create: { width: 8, height: 6, channels: 3, background: { r: 40 * i, g: 90, b: 200 - 30 * i } },
    })
      .jpeg()
      .toBuffer();
    write(root, n, jpg);
  }
  write(root, opts.name ?? 'coco_karpathy_train.json', JSON.stringify(KARPATHY));
}
