// Malformed inputs: each one must give a clear ImportError (strict mode) naming the file / record / field,
// leave the database and the image store exactly as they were, and (default mode) skip only the bad record.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { tempDir } from '../helpers/tmp';
import { openDatabase, closeDatabase, type Database } from '../../src-main/storage/database';
import { importDataset } from '../../src-main/datasets/import';
import { loadItems } from '../../src-main/datasets/rows';
import { ImportError } from '../../src-main/datasets/types';
import { zipOf, png, write, parquetDataset } from './fixtures';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { readFileSync } from 'node:fs';

let tmp: ReturnType<typeof tempDir>;
let db: Database;
let dataDir: string;
let goodPng: Buffer;
let truncatedPng: Buffer;
let bigPng: Buffer;
let caseNo = 0;

before(async () => {
  tmp = tempDir('ds-fuzz-');
  dataDir = join(tmp.dir, 'data');
  db = openDatabase(join(dataDir, 'lenslab.db'));
  goodPng = await png(1);
  const noise = Buffer.alloc(48 * 48 * 3);
  for (let i = 0; i < noise.length; i++) noise[i] = (i * 7919) % 251;
  const big = await sharp(noise, { raw: { width: 48, height: 48, channels: 3 } })
    .png({ compressionLevel: 0 })
    .toBuffer();
  truncatedPng = big.subarray(0, Math.floor(big.length / 2));
  bigPng = big;
  write(tmp.dir, 'outside.png', goodPng); // exists, but outside every case folder
});
after(() => {
  closeDatabase(db);
  tmp.cleanup();
});

function counts(): string {
  const q = (t: string) => (db.prepare(`SELECT COUNT(*) AS n FROM ${t}`).get() as { n: number }).n;
  return ['datasets', 'items', 'annotations', 'item_sources', 'imports', 'tags', 'item_tags']
    .map((t) => `${t}=${q(t)}`)
    .join(' ');
}
function storeFiles(): string[] {
  const out: string[] = [];
  for (const top of ['images', 'thumbs']) {
    const d = join(dataDir, top);
    try {
      for (const sub of readdirSync(d)) for (const f of readdirSync(join(d, sub))) out.push(`${top}/${sub}/${f}`);
    } catch {
      /* not created yet */
    }
  }
  return out.sort();
}

/** A fresh case folder with the shared assets: good.png, bad images, and a link pointing outside. */
function caseDir(): string {
  const dir = join(tmp.dir, 'cases', `c${++caseNo}`);
  mkdirSync(dir, { recursive: true });
  write(dir, 'good.png', goodPng);
  write(dir, 'corrupt.png', Buffer.from('this is not an image at all'));
  write(dir, 'empty.png', Buffer.alloc(0));
  write(dir, 'truncated.png', truncatedPng);
  write(dir, 'random.jpg', Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 131) % 256)));
  symlinkSync(join(tmp.dir, 'outside.png'), join(dir, 'link.png'));
  return dir;
}

interface Case {
  name: string;
  /** Write the dataset into `dir`; return the path to import. */
  make(dir: string): string;
  /** What the error must mention. */
  expect: RegExp;
  /** The whole source is unusable (no per-record skipping possible). */
  whole?: boolean;
  /** Records that are valid in the source (imported in default mode). */
  good?: number;
  opts?: Record<string, unknown>;
}

const BAD_PATHS: [string, unknown, RegExp][] = [
  ['traversal', '../../etc/passwd', /escapes the import folder/],
  ['traversal to an existing file', '../../outside.png', /escapes the import folder/],
  ['absolute outside', '/etc/passwd', /escapes the import folder/],
  ['backslash traversal', '..\\..\\etc\\passwd', /escapes the import folder/],
  ['dot-dot inside', 'sub/../../../outside.png', /escapes the import folder/],
  ['link outside', 'link.png', /links outside the import folder/],
  ['url', 'http://example.com/x.png', /URL paths are not supported/],
  ['file url', 'file:///etc/passwd', /URL paths are not supported/],
  ['nul', 'good\u0000.png', /NUL/],
  ['missing', 'missing.png', /not found/],
  ['empty path', '', /path is empty|empty/],
  ['huge path', 'a/'.repeat(3000) + 'x.png', /too long/],
  ['number', 42, /expected string|must be a string/],
  ['object', { a: 1 }, /expected string|must be a string|expected/],
  ['a folder', '.', /not a regular file|escapes|not found/],
];
const BAD_IMAGES: [string, string, RegExp][] = [
  ['corrupt', 'corrupt.png', /corrupt|unsupported/],
  ['empty', 'empty.png', /empty/],
  ['truncated', 'truncated.png', /corrupt/],
  ['random bytes', 'random.jpg', /corrupt|unsupported/],
];
const HUGE = 'x'.repeat(1_000_001);

const cases: Case[] = [];
const jsonFile = (dir: string, name: string, doc: unknown) => write(dir, name, JSON.stringify(doc));
const jsonl = (dir: string, name: string, recs: unknown[]) =>
  write(dir, name, recs.map((r) => JSON.stringify(r)).join('\n'));

// --- LLaVA / ShareGPT ---
const msgGoodDef = msgGoodDefOf();
const vqaGoodDef = { image: 'good.png', question: 'Q?', answer: 'A.' };
const llavaGood = {
  id: 'ok',
  image: 'good.png',
  conversations: [
    { from: 'human', value: '<image>\nWhat?' },
    { from: 'gpt', value: 'A square.' },
  ],
};
const llavaBad: [string, unknown, RegExp][] = [
  ['record null', null, /expected an object/],
  ['record number', 42, /expected an object/],
  ['record string', 'hello', /expected an object/],
  ['record array', [1, 2], /expected an object/],
  ['no conversations', { image: 'good.png' }, /neither `conversations` nor `messages`/],
  ['conversations null', { image: 'good.png', conversations: null }, /neither|conversations/],
  ['conversations string', { image: 'good.png', conversations: 'hi' }, /neither|conversations/],
  ['conversations empty', { image: 'good.png', conversations: [] }, /conversations: conversation is empty/],
  ['turn null', { conversations: [null] }, /conversations\[0\]: expected object/],
  ['turn number', { conversations: [7] }, /conversations\[0\]: expected object/],
  ['value missing', { conversations: [{ from: 'human' }] }, /conversations\[0\]\.value: expected string/],
  [
    'value number',
    { conversations: [{ from: 'human', value: 3 }] },
    /conversations\[0\]\.value: expected string, received number/,
  ],
  [
    'value object',
    { conversations: [{ from: 'human', value: { t: 1 } }] },
    /conversations\[0\]\.value: expected string/,
  ],
  ['from number', { conversations: [{ from: 1, value: 'x' }] }, /conversations\[0\]\.from: expected string/],
  [
    'from unknown',
    { conversations: [{ from: 'alien', value: 'x' }] },
    /conversations\[0\]\.from: unsupported speaker 'alien'/,
  ],
  ['huge value', { conversations: [{ from: 'human', value: HUGE }] }, /conversations\[0\]\.value: text is too long/],
  [
    'too many turns',
    { conversations: Array.from({ length: 1001 }, () => ({ from: 'human', value: 'x' })) },
    /conversations: .*1000/,
  ],
  ['system number', { system: 5, conversations: [{ from: 'human', value: 'x' }] }, /system: expected string/],
  ['images string', { images: 'good.png', conversations: [{ from: 'human', value: 'x' }] }, /images: expected array/],
  ['images numbers', { images: [4], conversations: [{ from: 'human', value: 'x' }] }, /images\[0\]: expected string/],
  [
    'two images',
    { images: ['good.png', 'good.png'], conversations: [{ from: 'human', value: '<image><image>' }] },
    /images: has 2 images/,
  ],
  ...BAD_PATHS.map(([n, p, re]): [string, unknown, RegExp] => [
    `image ${n}`,
    { image: p, conversations: [{ from: 'human', value: 'x' }] },
    new RegExp(`image: .*(${re.source})`),
  ]),
  ...BAD_IMAGES.map(([n, f, re]): [string, unknown, RegExp] => [
    `image ${n}`,
    { image: f, conversations: [{ from: 'human', value: 'x' }] },
    new RegExp(`image: .*(${re.source})`),
  ]),
];
for (const [n, rec, re] of llavaBad) {
  cases.push({
    name: `llava: ${n}`,
    make: (d) => jsonFile(d, 'data.json', [llavaGood, rec]),
    expect: new RegExp(`data\\.json\\[1\\].*(${re.source})`),
    good: 1,
  });
}
// Wrong types in every required field of every turn, in both conversation forms.
const WRONG: [string, unknown][] = [
  ['null', null],
  ['number', 1],
  ['boolean', true],
  ['array', ['x']],
  ['object', { v: 'x' }],
];
for (const turn of [0, 1]) {
  for (const [tn, bad] of WRONG) {
    for (const field of ['from', 'value'] as const) {
      const rec = structuredClone(llavaGood) as { conversations: Record<string, unknown>[] };
      rec.conversations[turn][field] = bad;
      cases.push({
        name: `llava: conversations[${turn}].${field} ${tn}`,
        make: (d) => jsonFile(d, 'data.json', [llavaGood, rec]),
        expect: new RegExp(`data\\.json\\[1\\].*conversations\\[${turn}\\]\\.${field}: expected string`),
        good: 1,
      });
    }
    for (const field of ['role', 'content'] as const) {
      if (field === 'content' && Array.isArray(bad)) continue; // a list of parts is allowed; see the part cases
      const rec = structuredClone(msgGoodDef) as { messages: Record<string, unknown>[] };
      rec.messages[turn][field] = bad;
      cases.push({
        name: `messages: messages[${turn}].${field} ${tn}`,
        make: (d) => jsonl(d, 'train.jsonl', [msgGoodDef, rec]),
        expect: new RegExp(`train\\.jsonl:2.*messages\\[${turn}\\]\\.${field}`),
        good: 1,
      });
    }
  }
}
for (const [tn, bad] of WRONG.filter(([n]) => n !== 'null')) {
  for (const field of ['question', 'answer'] as const) {
    if (field === 'answer' && Array.isArray(bad)) continue; // a list of answers is allowed (VQAv2)
    const rec: Record<string, unknown> = { image: 'good.png', question: 'q', answer: 'a', [field]: bad };
    cases.push({
      name: `vqa: ${field} ${tn}`,
      make: (d) => jsonl(d, 'vqa.jsonl', [{ image: 'good.png', question: 'Q', answer: 'A' }, rec]),
      expect: new RegExp(`vqa\\.jsonl:2.*${field}`),
      good: 1,
    });
  }
  if (Array.isArray(bad)) continue; // a list of captions is allowed
  cases.push({
    name: `imagefolder: caption ${tn}`,
    make: (d) => {
      const ds = imagefolderDir(d, {});
      jsonl(ds, 'metadata.jsonl', [
        { file_name: 'good.png', caption: 'ok' },
        { file_name: 'good.png', caption: bad },
      ]);
      return ds;
    },
    expect: /metadata\.jsonl:2.*caption/,
    good: 1,
  });
}

// --- messages + images ---
const msgGood = msgGoodDefOf();
function msgGoodDefOf() {
  return {
    messages: [
      { role: 'user', content: '<image>Hi' },
      { role: 'assistant', content: 'Hello' },
    ],
    images: ['good.png'],
  };
}
const msgBad: [string, unknown, RegExp][] = [
  ['messages empty', { messages: [] }, /messages: conversation is empty/],
  ['role number', { messages: [{ role: 2, content: 'x' }] }, /messages\[0\]\.role: expected string/],
  ['role tool', { messages: [{ role: 'tool', content: 'x' }] }, /messages\[0\]\.role: unsupported role 'tool'/],
  ['content number', { messages: [{ role: 'user', content: 9 }] }, /messages\[0\]\.content/],
  ['content null', { messages: [{ role: 'user', content: null }] }, /messages\[0\]\.content/],
  ['part without text', { messages: [{ role: 'user', content: [{ type: 'text' }] }] }, /messages\[0\]\.content/],
  ['part unknown type', { messages: [{ role: 'user', content: [{ type: 'video' }] }] }, /messages\[0\]\.content/],
  ['huge content', { messages: [{ role: 'user', content: HUGE }] }, /messages\[0\]\.content/],
  ['images object', { messages: [{ role: 'user', content: 'x' }], images: { a: 1 } }, /images: expected array/],
  ...BAD_PATHS.map(([n, p, re]): [string, unknown, RegExp] => [
    `image ${n}`,
    { messages: [{ role: 'user', content: '<image>x' }], images: [p] },
    new RegExp(`images\\[0\\].*: .*(${re.source})|images\\[0\\]`),
  ]),
  ...BAD_IMAGES.map(([n, f, re]): [string, unknown, RegExp] => [
    `image ${n}`,
    { messages: [{ role: 'user', content: '<image>x' }], images: [f] },
    new RegExp(`image: .*(${re.source})`),
  ]),
];
for (const [n, rec, re] of msgBad)
  cases.push({
    name: `messages: ${n}`,
    make: (d) => jsonl(d, 'train.jsonl', [msgGood, rec]),
    expect: new RegExp(`train\\.jsonl:2.*(${re.source})`),
    good: 1,
  });

// --- VQA JSONL ---
const vqaGood = vqaGoodDef;
const vqaBad: [string, unknown, RegExp][] = [
  ['question number', { image: 'good.png', question: 5, answer: 'a' }, /question: expected string, received number/],
  ['answer null', { image: 'good.png', question: 'q', answer: null }, /answer: missing/],
  ['answer object', { image: 'good.png', question: 'q', answer: { x: 1 } }, /answer: expected string/],
  ['answers empty list', { image: 'good.png', question: 'q', answers: [] }, /answers: answer list is empty/],
  ['answers numbers', { image: 'good.png', question: 'q', answers: [1, 2] }, /answers\[0\]: expected string/],
  ['answer missing', { image: 'good.png', question: 'q' }, /answer: missing/],
  ['no image field', { question: 'q', answer: 'a' }, /missing image/],
  ['huge answer', { image: 'good.png', question: 'q', answer: HUGE }, /answer: text is too long/],
  ['qa list wrong', { image: 'good.png', qa: 'nope' }, /qa: expected a list/],
  ['qa entry missing answer', { image: 'good.png', qa: [{ question: 'q' }] }, /qa\[0\]\.answer: missing/],
  ['several images', { image: ['good.png', 'good.png'], question: 'q', answer: 'a' }, /has 2 images/],
  ...BAD_PATHS.filter(([n]) => n !== 'object').map(([n, p, re]): [string, unknown, RegExp] => [
    `image ${n}`,
    { image: p, question: 'q', answer: 'a' },
    new RegExp(`image: .*(${re.source})`),
  ]),
  ...BAD_IMAGES.map(([n, f, re]): [string, unknown, RegExp] => [
    `image ${n}`,
    { image: f, question: 'q', answer: 'a' },
    new RegExp(`image: .*(${re.source})`),
  ]),
];
for (const [n, rec, re] of vqaBad)
  cases.push({
    name: `vqa: ${n}`,
    make: (d) => jsonl(d, 'vqa.jsonl', [vqaGood, rec]),
    expect: new RegExp(`vqa\\.jsonl:2.*(${re.source})`),
    good: 1,
  });

// --- imagefolder metadata.jsonl / csv ---
const ifBad: [string, unknown, RegExp][] = [
  ['file_name missing', { text: 'x' }, /file_name: expected string/],
  ['file_name null', { file_name: null, text: 'x' }, /file_name: expected string/],
  ['text number', { file_name: 'good.png', text: 1 }, /text: expected string/],
  ['text list of numbers', { file_name: 'good.png', text: [1] }, /text\[0\]: expected string/],
  ['huge text', { file_name: 'good.png', text: HUGE }, /text: text is too long/],
  [
    'messages malformed',
    { file_name: 'good.png', messages: [{ role: 'user' }] },
    /messages\[0\]\.content: expected string/,
  ],
  ...BAD_PATHS.map(([n, p, re]): [string, unknown, RegExp] => [
    `file_name ${n}`,
    { file_name: p, text: 'x' },
    new RegExp(`file_name: .*(${re.source})`),
  ]),
  ...BAD_IMAGES.map(([n, f, re]): [string, unknown, RegExp] => [
    `image ${n}`,
    { file_name: f, text: 'x' },
    new RegExp(`image: .*(${re.source})`),
  ]),
];
for (const [n, rec, re] of ifBad) {
  cases.push({
    name: `imagefolder: ${n}`,
    make: (d) => {
      const ds = imagefolderDir(d, rec);
      jsonl(ds, 'metadata.jsonl', [{ file_name: 'good.png', text: 'ok' }, rec]);
      return ds;
    },
    expect: new RegExp(`metadata\\.jsonl:2.*(${re.source})`),
    good: 1,
  });
}
const csvCases: [string, string, RegExp, boolean, number][] = [
  ['unterminated quote', 'file_name,text\ngood.png,"oops\n', /metadata\.csv: invalid CSV: unterminated/, true, 0],
  [
    'wrong column count',
    'file_name,text\ngood.png,ok\ngood.png,a,b\n',
    /metadata\.csv:3: expected 2 columns, found 3/,
    false,
    1,
  ],
  ['no file_name column', 'image,text\ngood.png,ok\n', /metadata\.csv:2.*file_name: expected string/, false, 1],
  ['empty csv', '', /metadata\.csv: empty CSV/, true, 0],
  ...BAD_PATHS.filter(
    ([, p]) =>
      typeof p === 'string' && !String(p).includes('\u0000') && !String(p).includes('"') && String(p).length < 1000,
  ).map(([n, p, re]): [string, string, RegExp, boolean, number] => [
    `file_name ${n}`,
    `file_name,text\ngood.png,ok\n"${String(p)}",x\n`,
    new RegExp(`metadata\\.csv:3.*(${re.source})`),
    false,
    1,
  ]),
];
for (const [n, text, re, whole, good] of csvCases) {
  cases.push({
    name: `imagefolder csv: ${n}`,
    make: (d) => {
      const ds = imagefolderDir(d, { file_name: /\n"([^"]*)",x/.exec(text)?.[1] });
      write(ds, 'metadata.csv', text);
      return ds;
    },
    expect: re,
    whole: whole && good === 0,
    good,
  });
}

/** imagefolder imports every image in its folder, so each case gets a folder holding only what its rows name. */
function imagefolderDir(d: string, rec: unknown): string {
  const ds = join(d, 'ds');
  write(ds, 'good.png', goodPng);
  const name = (rec as { file_name?: unknown })?.file_name;
  if (typeof name === 'string' && /^[a-z]+\.(png|jpg)$/.test(name) && name !== 'good.png') {
    if (name === 'link.png') symlinkSync(join(tmp.dir, 'outside.png'), join(ds, name));
    else if (name !== 'missing.png') write(ds, name, readFileSync(join(d, name)));
  }
  return ds;
}

// --- truncated JSON ---
const llavaDoc = JSON.stringify([llavaGood, { ...llavaGood, id: 'two' }, { ...llavaGood, id: 'three' }], null, 1);
for (let k = 1; k <= 40; k++) {
  const at = Math.floor((llavaDoc.length - 2) * (k / 41));
  cases.push({
    name: `truncated data.json at ${at}`,
    make: (d) => write(d, 'data.json', llavaDoc.slice(0, at)),
    expect: /data\.json: invalid JSON/,
    whole: true,
  });
}
const jsonlDoc = [msgGood, msgGood, msgGood].map((r) => JSON.stringify(r)).join('\n');
for (let k = 1; k <= 30; k++) {
  let at = Math.floor(jsonlDoc.length * (k / 31));
  while (jsonlDoc[at - 1] === '\n' || jsonlDoc[at - 1] === '}') at--;
  const line = jsonlDoc.slice(0, at).split('\n').length;
  cases.push({
    name: `truncated train.jsonl at ${at}`,
    make: (d) => write(d, 'train.jsonl', jsonlDoc.slice(0, at)),
    expect: new RegExp(`train\\.jsonl:${line}: invalid JSON`),
    good: line - 1,
    whole: line === 1,
    opts: { groupByImage: false },
  });
}
const vqaDoc = JSON.stringify({ data: [vqaGoodDef, vqaGoodDef] });
for (let k = 1; k <= 20; k++) {
  const at = Math.floor((vqaDoc.length - 1) * (k / 21));
  cases.push({
    name: `truncated vqa.json at ${at}`,
    make: (d) => write(d, 'vqa.json', vqaDoc.slice(0, at)),
    expect: /vqa\.json: invalid JSON/,
    whole: true,
  });
}
cases.push({
  name: 'data.json is a number',
  make: (d) => write(d, 'data.json', '42'),
  expect: /data\.json: expected a JSON array of records/,
  whole: true,
});
cases.push({
  name: 'data.json is binary garbage',
  make: (d) => write(d, 'data.json', Buffer.from([0xff, 0xfe, 0, 1, 2, 3])),
  expect: /data\.json: invalid JSON/,
  whole: true,
});
cases.push({
  name: 'data.json empty array',
  make: (d) => write(d, 'data.json', '[]'),
  expect: /nothing to import/,
  whole: true,
});

// --- folder of images ---
for (const [n, f, re] of BAD_IMAGES) {
  cases.push({
    name: `folder: ${n} image`,
    make: (d) => d,
    expect: new RegExp(`${f.replace('.', '\\.')}.*image: .*(${re.source})`),
    good: 1,
  });
}
for (let k = 1; k <= 12; k++) {
  cases.push({
    name: `folder: byte-flipped image #${k}`,
    make: (d) => {
      const b = Buffer.from(bigPng);
      const at = 40 + Math.floor(((b.length - 60) * k) / 13);
      for (let j = 0; j < 8; j++) b[at + j] ^= 0x5a;
      write(d, 'flipped.png', b);
      return d;
    },
    expect: /flipped\.png.*image: corrupt/,
    good: 1,
  });
}
cases.push({
  name: 'folder: huge sidecar caption',
  make: (d) => {
    write(d, 'good.txt', HUGE);
    return d;
  },
  expect: /good\.png: caption in good\.txt is too long/,
  good: 0,
});
cases.push({
  name: 'folder: no images',
  make: (d) => {
    const e = join(d, 'empty');
    mkdirSync(e);
    write(e, 'readme.md', 'hi');
    return e;
  },
  expect: /no images or dataset files found/,
  whole: true,
});

// --- one folder per sample ---
const sampleBad: [string, string | Buffer, RegExp][] = [
  ['truncated data.json', '{"question": "q", "ans', /s1\/data\.json: invalid JSON/],
  ['data.json number', '5', /s1\/data\.json: expected an object/],
  ['data.json null', 'null', /s1\/data\.json: expected an object/],
  ['answer number', '{"question":"q","answer":4}', /s1\/data\.json\.answer: expected string/],
  [
    'image traversal',
    '{"image":"../../../outside.png","question":"q","answer":"a"}',
    /s1\/data\.json\.image: path escapes/,
  ],
  ['empty list', '[]', /s1\/data\.json: empty list/],
];
for (const [n, body, re] of sampleBad) {
  cases.push({
    name: `vqa-folders: ${n}`,
    make: (d) => {
      write(d, 's0/image.png', goodPng);
      write(d, 's0/data.json', '{"question":"q","answer":"a"}');
      write(d, 's1/image.png', goodPng);
      write(d, 's1/data.json', body);
      return d;
    },
    expect: re,
    good: 1,
    opts: { format: 'vqa-folders' },
  });
}
cases.push({
  name: 'vqa-folders: sample with two images and no image field',
  make: (d) => {
    write(d, 's0/a.png', goodPng);
    write(d, 's0/b.png', goodPng);
    write(d, 's0/data.json', '{"question":"q","answer":"a"}');
    return d;
  },
  expect: /s0\/data\.json: several images/,
  whole: true,
  opts: { format: 'vqa-folders' },
});

// --- parquet ---
cases.push({
  name: 'parquet: random bytes',
  make: (d) => write(d, 'x.parquet', Buffer.from('PAR1 not really')),
  expect: /x\.parquet: not a readable Parquet file/,
  whole: true,
});
cases.push({
  name: 'parquet: truncated file',
  make: (d) => {
    parquetDatasetSync(d);
    const f = join(d, 'data.parquet');
    writeFileSync(f, readFileSync(f).subarray(0, 200));
    return f;
  },
  expect: /data\.parquet: not a readable Parquet|data\.parquet: cannot decode/,
  whole: true,
});
cases.push({
  name: 'parquet: corrupt image bytes in a row',
  make: (d) => {
    parquetRows(d, [
      { image: { bytes: goodPng, path: 'a.png' }, text: 'ok' },
      { image: { bytes: Buffer.from('garbage'), path: 'b.png' }, text: 'bad' },
    ]);
    return join(d, 'data.parquet');
  },
  expect: /data\.parquet\[1\]\.image: corrupt or unsupported image/,
  good: 1,
});
cases.push({
  name: 'parquet: image path escaping',
  make: (d) => {
    parquetRows(d, [
      { image: { bytes: goodPng, path: 'a.png' }, text: 'ok' },
      { image: { bytes: null, path: '../../../outside.png' }, text: 'bad' },
    ]);
    return join(d, 'data.parquet');
  },
  expect: /data\.parquet\[1\]\.image\.path: path escapes the import folder/,
  good: 1,
});
cases.push({
  name: 'parquet: struct without bytes or path',
  make: (d) => {
    parquetRows(d, [
      { image: { bytes: goodPng, path: 'a.png' }, text: 'ok' },
      { image: { bytes: null, path: null }, text: 'bad' },
    ]);
    return join(d, 'data.parquet');
  },
  expect: /data\.parquet\[1\]\.image: image struct has neither bytes nor path/,
  good: 1,
});

// --- zip ---
const zipBad: [string, () => Uint8Array | Buffer, RegExp][] = [
  [
    'zip-slip',
    () => zipOf({ '../evil.txt': 'x', 'good.png': goodPng }),
    /bad\.zip: .*entry path escapes the archive: \.\.\/evil\.txt/,
  ],
  ['zip-slip deep', () => zipOf({ 'a/../../evil.txt': 'x' }), /entry path escapes the archive/],
  ['absolute entry', () => zipOf({ '/etc/passwd': 'x' }), /absolute entry path/],
  ['drive entry', () => zipOf({ 'C:/Windows/x': 'x' }), /absolute entry path/],
  ['backslash slip', () => zipOf({ '..\\evil.txt': 'x' }), /entry path escapes the archive/],
  ['not a zip', () => Buffer.from('hello, this is not a zip'), /bad\.zip: .*not a readable zip archive/],
  [
    'truncated zip',
    () => zipOf({ 'good.png': goodPng, 'meta.txt': 'x'.repeat(100) }).subarray(0, 60),
    /bad\.zip: .*not a readable zip archive/,
  ],
  ['empty zip', () => zipOf({}), /bad\.zip: .*no images or dataset files found/],
  [
    'bomb',
    () => zipOf({ 'big.txt': new Uint8Array(3 * 1024 * 1024) }),
    /bad\.zip: .*(too large once decompressed|compression ratio)/,
  ],
  [
    'zip of a folder with a corrupt image',
    () => zipOf({ 'ds/good.png': goodPng, 'ds/bad.png': Buffer.from('junk') }),
    /bad\.zip:.*bad\.png.*image: corrupt/,
  ],
];
for (const [n, make, re] of zipBad) {
  const good = n.includes('corrupt image') ? 1 : 0;
  cases.push({
    name: `zip: ${n}`,
    make: (d) => write(d, 'bad.zip', make()),
    expect: re,
    whole: good === 0,
    good,
    opts: { zipLimits: { maxEntryBytes: 1024 * 1024 } },
  });
}

function parquetRows(dir: string, rows: { image: { bytes: Uint8Array | null; path: string | null }; text: string }[]) {
  const buf = parquetWriteBuffer({
    columnData: [
      { name: 'image', data: rows.map((r) => r.image) },
      { name: 'text', data: rows.map((r) => r.text) },
    ],
    schema: [
      { name: 'root', num_children: 2 },
      { name: 'image', repetition_type: 'OPTIONAL', num_children: 2 },
      { name: 'bytes', type: 'BYTE_ARRAY', repetition_type: 'OPTIONAL' },
      { name: 'path', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      { name: 'text', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
    ],
  });
  write(dir, 'data.parquet', new Uint8Array(buf));
}
function parquetDatasetSync(dir: string) {
  parquetRows(
    dir,
    [1, 2, 3].map((i) => ({ image: { bytes: goodPng, path: `${i}.png` }, text: `caption ${i} `.repeat(20) })),
  );
}
void parquetDataset;

test(`fuzz: ${cases.length} malformed inputs each give a clear error and store nothing partial`, async () => {
  assert.ok(cases.length >= 300, `only ${cases.length} cases`);
  let n = 0;
  for (const c of cases) {
    n++;
    const dir = caseDir();
    const path = c.make(dir);
    // strict: the whole import fails with a clear error, nothing stored
    const beforeRows = counts();
    const beforeFiles = storeFiles();
    await assert.rejects(
      importDataset(db, dataDir, path, { ...c.opts, strict: true, dataset: `strict-${n}` }),
      (err: unknown) => {
        assert.ok(err instanceof ImportError, `${c.name}: not an ImportError: ${String(err)}`);
        const all = [
          err.message,
          ...err.problems.map((p) => `${p.ref}${p.field ? `.${p.field}` : ''}: ${p.message}`),
        ].join('\n');
        assert.match(all, c.expect, `${c.name}: unclear error:\n${all.slice(0, 800)}`);
        return true;
      },
      c.name,
    );
    assert.equal(counts(), beforeRows, `${c.name}: rows left behind`);
    assert.deepEqual(storeFiles(), beforeFiles, `${c.name}: files left behind`);
    // default mode: only the bad records are skipped, each with its reason
    if (c.whole) {
      await assert.rejects(
        importDataset(db, dataDir, path, { ...c.opts, dataset: `lenient-${n}` }),
        ImportError,
        c.name,
      );
      assert.equal(counts(), beforeRows, `${c.name}: rows left behind (lenient)`);
      continue;
    }
    if (!c.good) {
      await assert.rejects(
        importDataset(db, dataDir, path, { ...c.opts, dataset: `lenient-${n}` }),
        (err: unknown) => err instanceof ImportError && /nothing to import/.test(err.message),
        c.name,
      );
      assert.equal(counts(), beforeRows, `${c.name}: rows left behind (lenient)`);
      continue;
    }
    const rep = await importDataset(db, dataDir, path, { ...c.opts, dataset: `lenient-${n}` });
    assert.equal(rep.imported, c.good, `${c.name}: imported ${rep.imported}`);
    assert.ok(rep.skipped.length >= 1, `${c.name}: no skip reported`);
    const text = rep.skipped.map((p) => `${p.ref}${p.field ? `.${p.field}` : ''}: ${p.message}`).join('\n');
    assert.match(text, c.expect, `${c.name}: unclear skip reason:\n${text.slice(0, 800)}`);
    for (const it of loadItems(db, rep.datasetId)) {
      assert.ok(it.image || it.annotations.length > 0, `${c.name}: empty item stored`);
    }
    // the same source again into the same dataset: every good item is already there, nothing is added
    const again = await importDataset(db, dataDir, path, { ...c.opts, dataset: rep.datasetId });
    assert.equal(again.imported, 0, `${c.name}: re-import added ${again.imported}`);
    assert.equal(again.alreadyPresent.length, rep.imported, `${c.name}: already present`);
    assert.equal(loadItems(db, rep.datasetId).length, rep.imported, `${c.name}: items after the re-import`);
  }
});

test('a failed import removes the image files it created', async () => {
  const dir = caseDir();
  const unique = await png(4242, 6);
  write(dir, 'unique.png', unique);
  jsonFile(dir, 'data.json', [
    {
      image: 'unique.png',
      conversations: [
        { from: 'human', value: '<image>' },
        { from: 'gpt', value: 'x' },
      ],
    },
    {
      image: 'corrupt.png',
      conversations: [
        { from: 'human', value: '<image>' },
        { from: 'gpt', value: 'y' },
      ],
    },
  ]);
  const beforeFiles = storeFiles();
  const beforeRows = counts();
  await assert.rejects(importDataset(db, dataDir, dir, { strict: true }), /data\.json\[1\]\.image: corrupt/);
  assert.deepEqual(storeFiles(), beforeFiles);
  // a failure inside the database transaction (invalid dataset name) also leaves nothing
  await assert.rejects(importDataset(db, dataDir, dir, { dataset: 'bad\u0001name' }), /invalid dataset name/);
  assert.deepEqual(storeFiles(), beforeFiles);
  assert.equal(counts(), beforeRows);
  const ok = await importDataset(db, dataDir, dir, { dataset: 'cleanup-ok' });
  assert.equal(ok.imported, 1);
  assert.equal(storeFiles().length, beforeFiles.length + 2, 'image + thumbnail stored once');
});

void statSync;
