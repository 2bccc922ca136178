// Tiny datasets in every source format, written into a temp folder for the datasets tests.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { zipSync } from 'fflate';
import { parquetWriteBuffer } from 'hyparquet-writer';

/** A distinct tiny PNG per index (different colour → different hash). */
export async function png(i: number, size = 4): Promise<Buffer> {
  return sharp({
    create: {
      width: size,
      height: size + 1,
      channels: 3,
      background: { r: (i * 37) % 256, g: (i * 91) % 256, b: (i * 13 + 7) % 256 },
    },
  })
    .png()
    .toBuffer();
}

export function write(root: string, rel: string, data: string | Uint8Array): string {
  const p = join(root, rel);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, data);
  return p;
}

export const CAPTIONS = ['a red square', 'a green square with "quotes", commas', 'ünïcödé caption 🚀'];

export async function folderDataset(root: string): Promise<void> {
  for (let i = 0; i < 3; i++) {
    write(root, `cats/img${i}.png`, await png(i));
    write(root, `cats/img${i}.txt`, CAPTIONS[i] + '\n');
  }
  write(root, 'dogs/unlabeled.png', await png(9));
}

export async function imagefolderJsonl(root: string): Promise<void> {
  const lines: string[] = [];
  for (let i = 0; i < 3; i++) {
    write(root, `img${i}.png`, await png(10 + i));
    lines.push(JSON.stringify({ file_name: `img${i}.png`, text: CAPTIONS[i] }));
  }
  write(root, 'metadata.jsonl', lines.join('\n') + '\n');
}

export async function imagefolderCsv(root: string): Promise<void> {
  const rows = ['file_name,caption'];
  for (let i = 0; i < 3; i++) {
    write(root, `train/img${i}.png`, await png(20 + i));
    rows.push(`img${i}.png,"${CAPTIONS[i].replace(/"/g, '""')}"`);
  }
  write(root, 'train/metadata.csv', rows.join('\r\n') + '\r\n');
}

export async function llavaJson(root: string): Promise<void> {
  const recs = [];
  for (let i = 0; i < 3; i++) {
    write(root, `images/${i}.png`, await png(30 + i));
    recs.push({
      id: `s${i}`,
      image: `${i}.png`,
      conversations: [
        { from: 'human', value: `<image>\nWhat colour is square ${i}?` },
        { from: 'gpt', value: CAPTIONS[i] },
        { from: 'human', value: 'Are you sure?' },
        { from: 'gpt', value: 'Yes.' },
      ],
    });
  }
  recs.push({
    id: 'text-only',
    conversations: [
      { from: 'human', value: 'Hi' },
      { from: 'gpt', value: 'Hello!' },
    ],
  });
  write(root, 'data.json', JSON.stringify(recs, null, 1));
}

export async function messagesJsonl(root: string): Promise<void> {
  const lines = [];
  for (let i = 0; i < 3; i++) {
    write(root, `imgs/${i}.png`, await png(40 + i));
    lines.push(
      JSON.stringify({
        messages: [
          { role: 'system', content: 'You are terse.' },
          {
            role: 'user',
            content: i === 2 ? [{ type: 'image' }, { type: 'text', text: 'Describe.' }] : '<image>Describe.',
          },
          { role: 'assistant', content: CAPTIONS[i] },
        ],
        images: [`imgs/${i}.png`],
      }),
    );
  }
  write(root, 'train.jsonl', lines.join('\n'));
}

export async function vqaJsonl(root: string): Promise<void> {
  const lines = [];
  for (let i = 0; i < 3; i++) {
    write(root, `v/${i}.png`, await png(50 + i));
    lines.push(JSON.stringify({ image: `v/${i}.png`, question: `Q${i}?`, answer: CAPTIONS[i] }));
  }
  write(root, 'vqa.jsonl', lines.join('\n'));
}

export async function vqaFolders(root: string): Promise<void> {
  for (let i = 0; i < 3; i++) {
    write(root, `sample_${i}/image.png`, await png(60 + i));
    write(root, `sample_${i}/data.json`, JSON.stringify({ question: `Q${i}?`, answer: CAPTIONS[i] }));
  }
}

export async function parquetDataset(root: string, name = 'train-00000-of-00001.parquet'): Promise<void> {
  const images = [];
  for (let i = 0; i < 3; i++) images.push({ bytes: new Uint8Array(await png(70 + i)), path: `p${i}.png` });
  const buf = parquetWriteBuffer({
    columnData: [
      { name: 'image', data: images },
      { name: 'text', data: CAPTIONS },
    ],
    schema: [
      { name: 'root', num_children: 2 },
      { name: 'image', repetition_type: 'OPTIONAL', num_children: 2 },
      { name: 'bytes', type: 'BYTE_ARRAY', repetition_type: 'OPTIONAL' },
      { name: 'path', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      { name: 'text', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
    ],
  });
  write(root, `data/${name}`, new Uint8Array(buf));
}

/** Zip every file under `files` (rel path → bytes). */
export function zipOf(files: Record<string, Uint8Array | string>): Uint8Array {
  const enc = new TextEncoder();
  return zipSync(
    Object.fromEntries(Object.entries(files).map(([k, v]) => [k, typeof v === 'string' ? enc.encode(v) : v])),
  );
}
