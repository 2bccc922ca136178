// A generator of hostile import sources: broken and lying JSON / JSONL / CSV, path tricks, special files,
// decompression bombs, lying Parquet footers, corrupt and oversized images, deep folder chains. Every case
// is deterministic (seeded), written under one folder, and says what a correct outcome looks like: an
// import, or an ImportError whose message names one of `names` (the file, or the field/record).
//
//   generateHostileCases(dir) → HostileCase[]        (used by hostile-datasets.test.ts)
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { crc32 } from 'node:zlib';
import { zipSync } from 'fflate';
import { parquetMetadata } from 'hyparquet';
import { parquetWriteBuffer } from 'hyparquet-writer';
import sharp from 'sharp';

export interface HostileCase {
  name: string;
  /** What to import. */
  path: string;
  /** An error must name one of these (file names, fields, records). */
  names: string[];
  /** 'error': must fail; 'import': must import; 'either': a clear error or an import. */
  outcome: 'error' | 'import' | 'either';
  /** When it imports: how many items. */
  items?: number;
  /** When it imports: a skipped record or warning must match this. */
  report?: RegExp;
  /** When it fails: the message must also match this (a limit, a reason). */
  message?: RegExp;
  format?: string;
}

/** mulberry32: a small seeded PRNG, so every run writes the same cases. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function put(file: string, data: string | Uint8Array): string {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, data);
  return file;
}

function flip(src: Uint8Array, seed: number, count: number, from = 0, to = src.length): Uint8Array {
  const r = rng(seed);
  const out = new Uint8Array(src);
  for (let k = 0; k < count; k++) out[from + Math.floor(r() * (to - from))] = Math.floor(r() * 256);
  return out;
}

const enc = new TextEncoder();
const u8 = (s: string | Uint8Array) => (typeof s === 'string' ? enc.encode(s) : s);

/** A PNG whose IHDR claims width × height, followed by a tiny IDAT: only its header is real. */
export function pngHeader(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td) >>> 0);
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', Buffer.from([0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Rewrite the sizes (and method) the central directory declares for every entry of a zip. */
export function patchZip(
  zip: Uint8Array,
  patch: (
    i: number,
    e: { compressed: number; original: number; method: number },
  ) => Partial<{ compressed: number; original: number; method: number }>,
): Uint8Array {
  const out = new Uint8Array(zip);
  const dv = new DataView(out.buffer);
  let i = 0;
  for (let p = 0; p + 46 <= out.length; p++) {
    if (dv.getUint32(p, true) !== 0x02014b50) continue;
    const e = {
      method: dv.getUint16(p + 10, true),
      compressed: dv.getUint32(p + 20, true),
      original: dv.getUint32(p + 24, true),
    };
    const n = { ...e, ...patch(i++, e) };
    dv.setUint16(p + 10, n.method, true);
    dv.setUint32(p + 20, n.compressed >>> 0, true);
    dv.setUint32(p + 24, n.original >>> 0, true);
    const local = dv.getUint32(p + 42, true);
    if (dv.getUint32(local, true) === 0x04034b50) {
      dv.setUint16(local + 8, n.method, true);
      dv.setUint32(local + 18, n.compressed >>> 0, true);
      dv.setUint32(local + 22, n.original >>> 0, true);
    }
  }
  return out;
}

function varint(n: bigint): number[] {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}
const zigzag = (n: bigint) => (n << 1n) ^ (n >> 63n);

/** A copy of a Parquet file whose footer declares `rows` rows (and, with `alsoNext`, the next i64 field equal to the old count: a column's value count). */
export function parquetWithRows(file: Uint8Array, rows: bigint, alsoNext: boolean): Uint8Array {
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const len = dv.getUint32(file.length - 8, true);
  const footer = Array.from(file.subarray(file.length - 8 - len, file.length - 8));
  const meta = parquetMetadata(file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength) as ArrayBuffer);
  const old = [0x16, ...varint(zigzag(BigInt(meta.num_rows)))];
  const repl = [0x16, ...varint(zigzag(rows))];
  const find = (from: number) => {
    for (let i = from; i + old.length <= footer.length; i++) if (old.every((b, k) => footer[i + k] === b)) return i;
    return -1;
  };
  let at = find(0);
  if (at < 0) throw new Error('num_rows not found in the footer');
  footer.splice(at, old.length, ...repl);
  if (alsoNext) {
    at = find(at + repl.length);
    if (at >= 0) footer.splice(at, old.length, ...repl);
  }
  const body = file.subarray(0, file.length - 8 - len);
  const tail = new Uint8Array(8);
  new DataView(tail.buffer).setUint32(0, footer.length, true);
  tail.set([0x50, 0x41, 0x52, 0x31], 4);
  const out = new Uint8Array(body.length + footer.length + 8);
  out.set(body, 0);
  out.set(footer, body.length);
  out.set(tail, body.length + footer.length);
  const check = parquetMetadata(out.buffer as ArrayBuffer);
  if (BigInt(check.num_rows) !== rows) throw new Error('patched footer does not declare the rows');
  return out;
}

export function parquetOf(rows: { image: Uint8Array | null; text: string }[]): Uint8Array {
  return new Uint8Array(
    parquetWriteBuffer({
      columnData: [
        { name: 'image', data: rows.map((r) => (r.image ? { bytes: r.image, path: 'x.png' } : null)) },
        { name: 'text', data: rows.map((r) => r.text) },
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

/** A FIFO at `file` (false where mkfifo is unavailable). */
function fifo(file: string): boolean {
  mkdirSync(dirname(file), { recursive: true });
  return spawnSync('mkfifo', [file]).status === 0;
}

/** A listening Unix socket at `file`; the returned server must be closed by the caller. */
async function socket(file: string): Promise<{ close(): void } | undefined> {
  mkdirSync(dirname(file), { recursive: true });
  const srv = createServer();
  return new Promise((resolve) => {
    srv.once('error', () => resolve(undefined));
    srv.listen(file, () => resolve({ close: () => srv.close() }));
  });
}

export interface Generated {
  cases: HostileCase[];
  /** Close the sockets the cases hold open. */
  close(): void;
}

export async function generateHostileCases(root: string): Promise<Generated> {
  const cases: HostileCase[] = [];
  const servers: { close(): void }[] = [];
  let n = 0;
  const dirFor = (tag: string) => {
    const d = join(root, `${String(++n).padStart(4, '0')}-${tag.replace(/[^a-z0-9]+/gi, '-').slice(0, 40)}`);
    mkdirSync(d, { recursive: true });
    return d;
  };
  const good = await sharp({ create: { width: 8, height: 6, channels: 3, background: { r: 200, g: 30, b: 90 } } })
    .png()
    .toBuffer();
  const noise = Buffer.alloc(40 * 40 * 3);
  for (let i = 0; i < noise.length; i++) noise[i] = (i * 7919) % 251;
  const bigPng = await sharp(noise, { raw: { width: 40, height: 40, channels: 3 } })
    .png({ compressionLevel: 0 })
    .toBuffer();
  const jpg = await sharp(noise, { raw: { width: 40, height: 40, channels: 3 } })
    .jpeg()
    .toBuffer();
  put(join(root, 'outside.png'), good);

  const llava = (img: unknown = 'good.png', q = '<image>\nWhat is it?') => ({
    image: img,
    conversations: [
      { from: 'human', value: q },
      { from: 'gpt', value: 'A shape.' },
    ],
  });
  const llavaDoc = JSON.stringify(
    [
      llava(),
      llava('good.png', '<image>\nAnd the colour?'),
      {
        conversations: [
          { from: 'human', value: 'text only' },
          { from: 'gpt', value: 'ok' },
        ],
      },
    ],
    null,
    1,
  );
  const jsonlDoc = [
    {
      messages: [
        { role: 'user', content: '<image>Describe.' },
        { role: 'assistant', content: 'Red.' },
      ],
      images: ['good.png'],
    },
    {
      messages: [
        { role: 'user', content: '<image>Colour?' },
        { role: 'assistant', content: 'Pink.' },
      ],
      images: ['good.png'],
    },
    {
      messages: [
        { role: 'user', content: 'Hello' },
        { role: 'assistant', content: 'Hi.' },
      ],
    },
  ]
    .map((r) => JSON.stringify(r))
    .join('\n');
  const csvDoc = 'file_name,text\ngood.png,"a red, small ""thing"""\ngood.png,second caption\n';
  const withGood = (tag: string) => {
    const d = dirFor(tag);
    put(join(d, 'good.png'), good);
    return d;
  };

  // --- 1. truncated record files ---
  for (let k = 1; k <= 25; k++) {
    const at = Math.floor((llavaDoc.length * k) / 26);
    const d = withGood(`trunc-json-${k}`);
    cases.push({
      name: `data.json truncated at ${at}`,
      path: put(join(d, 'data.json'), llavaDoc.slice(0, at)),
      names: ['data.json'],
      outcome: 'either',
    });
  }
  for (let k = 1; k <= 25; k++) {
    const at = Math.floor((jsonlDoc.length * k) / 26);
    const d = withGood(`trunc-jsonl-${k}`);
    cases.push({
      name: `train.jsonl truncated at ${at}`,
      path: put(join(d, 'train.jsonl'), jsonlDoc.slice(0, at)),
      names: ['train.jsonl'],
      outcome: 'either',
    });
  }
  // --- 2. random byte flips ---
  for (let s = 1; s <= 40; s++) {
    const d = withGood(`flip-json-${s}`);
    cases.push({
      name: `data.json with flipped bytes (seed ${s})`,
      path: put(join(d, 'data.json'), flip(u8(llavaDoc), s, 1 + (s % 5))),
      names: ['data.json'],
      outcome: 'either',
    });
  }
  for (let s = 1; s <= 40; s++) {
    const d = withGood(`flip-jsonl-${s}`);
    cases.push({
      name: `train.jsonl with flipped bytes (seed ${s})`,
      path: put(join(d, 'train.jsonl'), flip(u8(jsonlDoc), 100 + s, 1 + (s % 5))),
      names: ['train.jsonl'],
      outcome: 'either',
    });
  }
  for (let s = 1; s <= 40; s++) {
    const d = withGood(`flip-csv-${s}`);
    cases.push({
      name: `metadata.csv with flipped bytes (seed ${s})`,
      path: put(join(d, 'metadata.csv'), flip(u8(csvDoc), 200 + s, 1 + (s % 4))),
      names: ['metadata.csv'],
      outcome: 'either',
    });
  }
  // --- 3. Latin-1 bytes: imported, with a warning naming the file ---
  const latin1 = (s: string) => Buffer.from(s, 'latin1');
  for (const [i, text] of ['café', 'naïve résumé', 'Größe ±5°'].entries()) {
    let d = withGood(`latin1-json-${i}`);
    cases.push({
      name: `Latin-1 in data.json (${i})`,
      path: put(join(d, 'data.json'), latin1(JSON.stringify([llava('good.png', `<image>\n${text}?`)]))),
      names: ['data.json'],
      outcome: 'import',
      items: 1,
      report: /data\.json.*not valid UTF-8/,
    });
    d = withGood(`latin1-jsonl-${i}`);
    cases.push({
      name: `Latin-1 in vqa.jsonl (${i})`,
      path: put(join(d, 'vqa.jsonl'), latin1(JSON.stringify({ image: 'good.png', question: text, answer: 'yes' }))),
      names: ['vqa.jsonl'],
      outcome: 'import',
      items: 1,
      report: /vqa\.jsonl.*not valid UTF-8/,
    });
    d = withGood(`latin1-csv-${i}`);
    cases.push({
      name: `Latin-1 in metadata.csv (${i})`,
      path: put(join(d, 'metadata.csv'), latin1(`file_name,text\ngood.png,${text}\n`)),
      names: ['metadata.csv'],
      outcome: 'import',
      items: 1,
      report: /metadata\.csv.*not valid UTF-8/,
    });
  }
  // --- 4. structural oddities of whole documents ---
  const docs: [string, string | Uint8Array][] = [
    ['empty', ''],
    ['blank', '   \n\t '],
    ['lone [', '['],
    ['lone ]', ']'],
    ['[,]', '[,]'],
    ['[1,]', '[1,]'],
    ['{}', '{}'],
    ['null', 'null'],
    ['number', '42'],
    ['string', '"hello"'],
    ['[[]]', '[[]]'],
    ['[null]', '[null]'],
    ['array of arrays', '[[1,2],[3]]'],
    ['deep array record', `[${'['.repeat(100_000)}${']'.repeat(100_000)}]`],
    ['deep object field', `[{"image":"good.png","conversations":${'['.repeat(50_000)}${']'.repeat(50_000)}}]`],
    ['unclosed deep', `[${'{"a":'.repeat(20_000)}`],
    ['data not array', '{"data": 5}'],
    ['two arrays', '{"a": [], "b": []}'],
    ['huge number', `[${'9'.repeat(100_000)}]`],
    ['NaN', '[NaN]'],
    ['BOM only', '\uFEFF'],
    ['NUL bytes', Buffer.from([0x5b, 0, 0, 0x5d])],
    ['UTF-16 LE', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('[{"image":"good.png"}]', 'utf16le')])],
    ['garbage after array', `${JSON.stringify([llava()])} trailing`],
    ['two top arrays', '[][]'],
    [
      'proto keys',
      JSON.stringify([{ __proto__: { polluted: 1 }, constructor: { prototype: 1 }, ...llava() }]).replace(
        '"image"',
        '"__proto__":{"x":1},"image"',
      ),
    ],
    [
      '10k fields',
      JSON.stringify([{ ...llava(), ...Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`f${i}`, i])) }]),
    ],
    ['1 MB key', `[{"${'k'.repeat(1_000_000)}": 1, "image": "good.png"}]`],
    [
      '10k turns',
      JSON.stringify([
        {
          image: 'good.png',
          conversations: Array.from({ length: 10_000 }, (_, i) => ({
            from: i % 2 ? 'gpt' : 'human',
            value: i ? 'x' : '<image>',
          })),
        },
      ]),
    ],
    ['role soup', JSON.stringify([{ image: 'good.png', conversations: [{ from: 'robot', value: 'x' }] }])],
    ['conversations string', JSON.stringify([{ image: 'good.png', conversations: 'hello' }])],
    ['value object', JSON.stringify([{ image: 'good.png', conversations: [{ from: 'human', value: { a: 1 } }] }])],
    ['records are numbers', JSON.stringify([1, 2, 3])],
    ['mixed good and junk', JSON.stringify([llava(), 7, 'x', null, [], llava()])],
    ['CRLF and BOM', `\uFEFF${JSON.stringify([llava()], null, 1).replace(/\n/g, '\r\n')}`],
    ['whitespace between', `[\n\n${JSON.stringify(llava())}\n,\n\n${JSON.stringify(llava())}\n]`],
    ['escaped quotes', JSON.stringify([llava('good.png', '<image>\n\\"]},[{"x')])],
    ['unicode escapes', JSON.stringify([llava('good.png', '<image>\n\u2028\u2029\ud83d\ude80')])],
    [
      'lone surrogate',
      '[{"image":"good.png","conversations":[{"from":"human","value":"<image>\\ud800"},{"from":"gpt","value":"x"}]}]',
    ],
    ['two <image> tags, one image', JSON.stringify([llava('good.png', '<image>\n<image>\nTwo?')])],
  ];
  for (const [nm, text] of docs) {
    const d = withGood(`doc-${nm}`);
    const c: HostileCase = {
      name: `data.json: ${nm}`,
      path: put(join(d, 'data.json'), text),
      names: ['data.json'],
      outcome: 'either',
    };
    if (nm.startsWith('two <image>'))
      Object.assign(c, {
        outcome: 'import',
        items: 1,
        report: /data\.json\[0\]\.conversations: 2 <image> tags but 1 image/,
      });
    if (nm === 'deep array record')
      Object.assign(c, { outcome: 'error', message: /nested too deeply|expected an object|nothing to import/ });
    cases.push(c);
  }
  for (const [nm, text] of docs.slice(0, 24)) {
    const d = withGood(`jsonl-${nm}`);
    cases.push({
      name: `vqa.jsonl: ${nm}`,
      path: put(join(d, 'vqa.jsonl'), text),
      names: ['vqa.jsonl'],
      outcome: 'either',
    });
  }
  // --- 5. records and fields over the size limits (named in the error) ---
  {
    let d = withGood('huge-jsonl-line');
    const line = JSON.stringify({ image: 'good.png', question: 'q', answer: 'a'.repeat(17 * 1024 * 1024) });
    cases.push({
      name: 'vqa.jsonl: a 17 MiB line',
      path: put(
        join(d, 'vqa.jsonl'),
        `${JSON.stringify({ image: 'good.png', question: 'q', answer: 'a' })}\n${line}\n`,
      ),
      names: ['vqa.jsonl:2'],
      outcome: 'import',
      items: 1,
      report: /vqa\.jsonl:2.*line is too large \(\d+ characters; limit 16777216\)/,
    });
    d = withGood('huge-json-record');
    cases.push({
      name: 'data.json: a 17 MiB record',
      path: put(
        join(d, 'data.json'),
        `[${JSON.stringify(llava())},${JSON.stringify(llava('good.png', 'x'.repeat(17 * 1024 * 1024)))}]`,
      ),
      names: ['data.json[1]'],
      outcome: 'import',
      items: 1,
      report: /data\.json\[1\].*record is too large/,
    });
    d = withGood('huge-csv-field');
    cases.push({
      name: 'metadata.csv: a 5 MiB field',
      path: put(join(d, 'metadata.csv'), `file_name,text\ngood.png,ok\ngood.png,"${'y'.repeat(5 * 1024 * 1024)}"\n`),
      names: ['metadata.csv:3'],
      outcome: 'import',
      items: 1,
      report: /metadata\.csv:3\.text.*field is too large \(\d+ characters; limit 4194304\)/,
    });
    d = withGood('huge-csv-header');
    cases.push({
      name: 'metadata.csv: a 5 MiB header field',
      path: put(join(d, 'metadata.csv'), `file_name,${'h'.repeat(5 * 1024 * 1024)}\ngood.png,ok\n`),
      names: ['metadata.csv:1'],
      outcome: 'error',
      message: /limit 4194304/,
    });
    d = withGood('huge-jsonl-no-newline');
    cases.push({
      name: 'vqa.jsonl: 20 MiB without a newline',
      path: put(join(d, 'vqa.jsonl'), 'x'.repeat(20 * 1024 * 1024)),
      names: ['vqa.jsonl'],
      outcome: 'error',
      message: /too large|nothing to import/,
    });
  }
  // --- 6. image paths that must not be followed ---
  const pathRefs: [string, unknown, RegExp][] = [
    ['parent', '../outside.png', /escapes/],
    ['deep parent', 'a/../../../outside.png', /escapes/],
    ['absolute', '/etc/passwd', /escapes/],
    ['file URL', 'file:///etc/passwd', /URL/],
    ['http URL', 'http://example.com/x.png', /URL/],
    ['NUL', 'good.png\u0000.txt', /NUL/],
    ['drive', 'C:\\Windows\\x.png', /not found|escapes/],
    ['long', `${'a/'.repeat(3000)}x.png`, /too long/],
    ['empty', '', /empty/],
    ['number', 123, /string/],
    ['object', { x: 1 }, /string|expected/],
    ['folder', 'dir.png', /not a regular file \(a folder\)/],
    ['fifo', 'fifo.png', /not a regular file \(a FIFO/],
    ['socket', 'sock.png', /not a regular file \(a socket\)/],
    ['link out', 'link-out.png', /links outside/],
    ['link loop', 'loop.png', /not found|links|cannot/],
    ['dangling', 'dangling.png', /not found/],
    ['missing', 'nope.png', /not found/],
  ];
  const specials = async (d: string) => {
    mkdirSync(join(d, 'dir.png'), { recursive: true });
    fifo(join(d, 'fifo.png'));
    const s = await socket(join(d, 'sock.png'));
    if (s) servers.push(s);
    symlinkSync(join(root, 'outside.png'), join(d, 'link-out.png'));
    symlinkSync('loop.png', join(d, 'loop.png'));
    symlinkSync('nothing-here.png', join(d, 'dangling.png'));
  };
  for (const [nm, ref, why] of pathRefs) {
    let d = withGood(`path-llava-${nm}`);
    await specials(d);
    cases.push({
      name: `llava image: ${nm}`,
      path: put(join(d, 'data.json'), JSON.stringify([llava(), llava(ref)])),
      names: ['data.json[1]'],
      outcome: 'import',
      items: 1,
      report: new RegExp(`data\\.json\\[1\\]\\.image.*(${why.source})`),
    });
    d = withGood(`path-vqa-${nm}`);
    await specials(d);
    cases.push({
      name: `vqa image: ${nm}`,
      path: put(
        join(d, 'vqa.jsonl'),
        [
          { image: 'good.png', question: 'q', answer: 'a' },
          { image: ref, question: 'q2', answer: 'b' },
        ]
          .map((r) => JSON.stringify(r))
          .join('\n'),
      ),
      names: ['vqa.jsonl:2'],
      outcome: 'import',
      items: 1,
      report: new RegExp(`vqa\\.jsonl:2\\.image.*(${why.source})`),
    });
    d = withGood(`path-msg-${nm}`);
    await specials(d);
    cases.push({
      name: `messages image: ${nm}`,
      path: put(
        join(d, 'train.jsonl'),
        [
          JSON.parse(jsonlDoc.split('\n')[0]),
          {
            messages: [
              { role: 'user', content: '<image>x' },
              { role: 'assistant', content: 'y' },
            ],
            images: [ref],
          },
        ]
          .map((r) => JSON.stringify(r))
          .join('\n'),
      ),
      names: ['train.jsonl:2'],
      outcome: 'import',
      items: 1,
      report: new RegExp(`train\\.jsonl:2\\.images\\[0\\].*(${why.source})|train\\.jsonl:2.*images`),
    });
    d = withGood(`path-meta-${nm}`);
    await specials(d);
    if (typeof ref === 'string' || ref === null)
      cases.push({
        name: `imagefolder file_name: ${nm}`,
        path: put(
          join(d, 'metadata.jsonl'),
          [
            { file_name: 'good.png', text: 'ok' },
            { file_name: ref, text: 'bad' },
          ]
            .map((r) => JSON.stringify(r))
            .join('\n'),
        ),
        names: ['metadata.jsonl:2'],
        outcome: 'import',
        report: new RegExp(`metadata\\.jsonl:2\\.file_name.*(${why.source})`),
      });
    else
      cases.push({
        name: `imagefolder file_name: ${nm}`,
        path: put(
          join(d, 'metadata.jsonl'),
          [
            { file_name: 'good.png', text: 'ok' },
            { file_name: ref, text: 'bad' },
          ]
            .map((r) => JSON.stringify(r))
            .join('\n'),
        ),
        names: ['metadata.jsonl:2'],
        outcome: 'import',
        report: /metadata\.jsonl:2\.file_name/,
      });
  }
  // --- 7. images: corrupt, lying headers, too many pixels, special files in a folder dataset ---
  for (let k = 1; k <= 20; k++) {
    const d = withGood(`img-trunc-${k}`);
    put(join(d, 'bad.png'), bigPng.subarray(0, Math.floor((bigPng.length * k) / 21)));
    cases.push({
      name: `folder: bad.png truncated (${k}/21)`,
      path: d,
      names: ['bad.png'],
      outcome: 'import',
      items: 1,
      report: /bad\.png\.image/,
    });
  }
  for (let s = 1; s <= 30; s++) {
    const d = withGood(`img-flip-${s}`);
    put(join(d, 'bad.jpg'), flip(jpg, 300 + s, 1 + (s % 8)));
    cases.push({
      name: `folder: bad.jpg with flipped bytes (seed ${s})`,
      path: d,
      names: ['bad.jpg'],
      outcome: 'either',
    });
  }
  for (let s = 1; s <= 20; s++) {
    const d = withGood(`png-flip-${s}`);
    put(join(d, 'bad.png'), flip(bigPng, 400 + s, 1 + (s % 6)));
    cases.push({
      name: `folder: bad.png with flipped bytes (seed ${s})`,
      path: d,
      names: ['bad.png'],
      outcome: 'either',
    });
  }
  const headers: [string, number, number, RegExp][] = [
    ['16000x16000', 16000, 16000, /too large: 16000×16000 = 256\.0 megapixels \(limit MAX_IMAGE_PIXELS/],
    ['100000x1000', 100_000, 1000, /too large|megapixels|exceeds/],
    ['65535x65535', 65535, 65535, /too large|megapixels|exceeds/],
    ['8001x8001', 8001, 8001, /too large: 8001×8001/],
    ['0x0', 0, 0, /corrupt|dimensions|unsupported/],
    ['1x2^31', 1, 2 ** 31 - 1, /too large|corrupt|exceeds/],
  ];
  for (const [nm, w, h, why] of headers) {
    const d = withGood(`img-header-${nm}`);
    put(join(d, 'huge.png'), pngHeader(w, h));
    cases.push({
      name: `folder: PNG header claims ${nm}`,
      path: d,
      names: ['huge.png'],
      outcome: 'import',
      items: 1,
      report: new RegExp(`huge\\.png\\.image.*(${why.source})`),
    });
  }
  {
    let d = withGood('img-text');
    put(join(d, 'text.png'), 'this is text, not a picture');
    cases.push({
      name: 'folder: text named .png',
      path: d,
      names: ['text.png'],
      outcome: 'import',
      items: 1,
      report: /text\.png\.image: corrupt/,
    });
    d = withGood('img-empty');
    put(join(d, 'empty.png'), '');
    cases.push({
      name: 'folder: empty .png',
      path: d,
      names: ['empty.png'],
      outcome: 'import',
      items: 1,
      report: /empty\.png\.image.*empty/,
    });
    d = withGood('img-fifo');
    fifo(join(d, 'fifo.png'));
    cases.push({
      name: 'folder: a FIFO named fifo.png',
      path: d,
      names: ['fifo.png'],
      outcome: 'import',
      items: 1,
      report: /fifo\.png: not imported: a FIFO \(named pipe\), not a regular file/,
    });
    d = withGood('img-socket');
    const s = await socket(join(d, 'sock.png'));
    if (s) servers.push(s);
    cases.push({
      name: 'folder: a socket named sock.png',
      path: d,
      names: ['sock.png'],
      outcome: 'import',
      items: 1,
      report: /sock\.png: not imported: a socket, not a regular file/,
    });
    d = withGood('img-link');
    symlinkSync(join(root, 'outside.png'), join(d, 'link.png'));
    put(join(d, 'link.txt'), 'a caption for the link');
    cases.push({
      name: 'folder: a symlinked image with a caption',
      path: d,
      names: ['link.png'],
      outcome: 'import',
      items: 1,
      report: /link\.png: not imported: a symbolic link/,
    });
    d = withGood('txt-fifo');
    fifo(join(d, 'good.txt'));
    cases.push({
      name: 'folder: the caption file is a FIFO',
      path: d,
      names: ['good.txt'],
      outcome: 'import',
      items: 1,
      report: /good\.txt: not imported: a FIFO/,
    });
    d = withGood('json-fifo');
    fifo(join(d, 'data.json'));
    cases.push({
      name: 'data.json is a FIFO',
      path: join(d, 'data.json'),
      names: ['data.json'],
      outcome: 'error',
      message: /not a regular file \(a FIFO/,
    });
    d = withGood('parquet-fifo');
    fifo(join(d, 'x.parquet'));
    cases.push({
      name: 'x.parquet is a FIFO',
      path: join(d, 'x.parquet'),
      names: ['x.parquet'],
      outcome: 'error',
      message: /not a regular file \(a FIFO/,
    });
    d = withGood('zip-fifo');
    fifo(join(d, 'x.zip'));
    cases.push({
      name: 'x.zip is a FIFO',
      path: join(d, 'x.zip'),
      names: ['x.zip'],
      outcome: 'error',
      message: /not a regular file \(a FIFO/,
    });
  }
  // --- 8. folder trees ---
  {
    let d = withGood('chain-2000');
    let p = join(d, 'deep');
    // built by relative mkdir steps: the full path is longer than PATH_MAX
    mkdirSync(p);
    const parts: string[] = [];
    for (let i = 0; i < 70; i++) parts.push('a');
    mkdirSync(join(p, ...parts), { recursive: true });
    cases.push({
      name: 'folder: a 70-level folder chain',
      path: d,
      names: ['deep'],
      outcome: 'error',
      message: /nested deeper than 64 levels/,
    });
    d = withGood('chain-60');
    p = join(d, ...Array.from({ length: 60 }, () => 'b'));
    put(join(p, 'deep.png'), good);
    cases.push({ name: 'folder: an image 60 levels down', path: d, names: ['b'], outcome: 'import', items: 2 });
  }
  // --- 9. zip archives ---
  const zip = (files: Record<string, string | Uint8Array>, level = 6) =>
    zipSync(Object.fromEntries(Object.entries(files).map(([k, v]) => [k, [u8(v), { level }]])) as never);
  const okZip = zip({ 'ds/good.png': good, 'ds/good.txt': 'a caption' });
  const zipCases: [string, () => Uint8Array, 'error' | 'import' | 'either', RegExp?][] = [
    ['zip-slip', () => zip({ '../evil.png': good, 'good.png': good }), 'error', /escapes the archive/],
    ['zip-slip deep', () => zip({ 'a/b/../../../evil.png': good }), 'error', /escapes the archive/],
    ['absolute entry', () => zip({ '/etc/evil.png': good }), 'error', /absolute entry path/],
    ['drive entry', () => zip({ 'C:/evil.png': good }), 'error', /absolute entry path/],
    ['backslash slip', () => zip({ '..\\evil.png': good }), 'error', /escapes the archive/],
    ['duplicate names', () => patchZip(zip({ 'a.png': good, 'A.png': good }), () => ({})), 'error', /duplicate entry/],
    [
      '2,000-level folder chain',
      () => zip({ [`${'d/'.repeat(2000)}x.png`]: good, 'good.png': good }),
      'error',
      /nested 2000 folders deep \(limit 64\)/,
    ],
    [
      '65-level folder chain',
      () => zip({ [`${'d/'.repeat(65)}x.png`]: good }),
      'error',
      /nested 65 folders deep \(limit 64\)/,
    ],
    [
      '2,000-character entry name',
      () => zip({ [`${'n'.repeat(2000)}.png`]: good }),
      'error',
      /too long \(2004 characters; limit 1024\)/,
    ],
    [
      'entry declares 4 GiB (shipped limits)',
      () => patchZip(okZip, (i) => (i === 0 ? { original: 0xffffffff } : {})),
      'error',
      /too large once decompressed \(4294967295 bytes; limit 1073741824\)|compression ratio/,
    ],
    [
      'entries declare 9 GiB in all at 100:1 (shipped limits)',
      () =>
        patchZip(zip(Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`f${i}.bin`, 'x']))), () => ({
          original: 0x3fffffff,
          compressed: 0x3fffffff / 100,
        })),
      'error',
      /expands to more than 8589934592 bytes/,
    ],
    [
      '300 entries of 256 KiB at ~1000:1 (ratio per entry)',
      () =>
        zip(Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`z${i}.txt`, new Uint8Array(256 * 1024)])), 9),
      'error',
      /suspicious compression ratio \(\d+:1; limit 200:1/,
    ],
    [
      '2,000 entries of 32 KiB at ~1000:1 (overall ratio)',
      () =>
        zip(Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`s${i}.txt`, new Uint8Array(32 * 1024)])), 9),
      'error',
      /suspicious overall compression ratio/,
    ],
    [
      'unsupported method',
      () => patchZip(okZip, () => ({ method: 99 })),
      'error',
      /unsupported compression method 99|not a readable zip/,
    ],
    ['not a zip', () => u8('hello, not a zip'), 'error', /not a readable zip archive/],
    ['empty zip', () => zip({}), 'error', /no images or dataset files found/],
    ['zip in a zip', () => zip({ 'inner.zip': okZip }), 'error', /no images or dataset files found/],
    ['good zip', () => okZip, 'import'],
  ];
  for (const [nm, make, outcome, msg] of zipCases) {
    const d = dirFor(`zip-${nm}`);
    cases.push({
      name: `zip: ${nm}`,
      path: put(join(d, 'x.zip'), make()),
      names: ['x.zip'],
      outcome,
      message: msg,
      items: outcome === 'import' ? 1 : undefined,
    });
  }
  for (let k = 1; k <= 20; k++) {
    const d = dirFor(`zip-trunc-${k}`);
    cases.push({
      name: `zip truncated (${k}/21)`,
      path: put(join(d, 'x.zip'), okZip.subarray(0, Math.floor((okZip.length * k) / 21))),
      names: ['x.zip'],
      outcome: 'either',
    });
  }
  for (let s = 1; s <= 30; s++) {
    const d = dirFor(`zip-flip-${s}`);
    cases.push({
      name: `zip with flipped bytes (seed ${s})`,
      path: put(join(d, 'x.zip'), flip(okZip, 500 + s, 1 + (s % 6))),
      names: ['x.zip'],
      outcome: 'either',
    });
  }
  // --- 10. Parquet: lying footers, truncation, flipped bytes ---
  const pq = parquetOf([1, 2, 3].map((i) => ({ image: new Uint8Array(good), text: `caption ${i}` })));
  const pqDv = new DataView(pq.buffer, pq.byteOffset, pq.byteLength);
  const footerLen = pqDv.getUint32(pq.length - 8, true);
  const dataEnd = pq.length - 8 - footerLen;
  const pqCases: [string, () => Uint8Array, 'error' | 'import' | 'either', RegExp?][] = [
    [
      'footer claims 2^50 rows',
      () => parquetWithRows(pq, 2n ** 50n, false),
      'error',
      /declares 1125899906842624 rows \(limit MAX_PARQUET_ROWS/,
    ],
    [
      'footer claims 2^50 rows, and a column 2^50 values',
      () => parquetWithRows(pq, 2n ** 50n, true),
      'error',
      /declares 1125899906842624 rows/,
    ],
    [
      'footer claims 4 rows, row group 3',
      () => parquetWithRows(pq, 4n, false),
      'error',
      /declares 4 rows but its row groups hold 3/,
    ],
    [
      'footer claims 1000 rows, and a column 1000 values',
      () => parquetWithRows(pq, 1000n, true),
      'error',
      /declares 1000 rows but its row groups hold 3/,
    ],
    ['negative rows', () => parquetWithRows(pq, -5n, false), 'error', /invalid row count/],
    ['good', () => pq, 'import'],
    ['PAR1 only', () => u8('PAR1'), 'error', /not a readable Parquet file/],
    [
      'footer length beyond the file',
      () => {
        const b = new Uint8Array(pq);
        new DataView(b.buffer).setUint32(b.length - 8, 0x7fffffff, true);
        return b;
      },
      'error',
      /not a readable Parquet file/,
    ],
  ];
  for (let k = 1; k <= 8; k++) {
    // data cut out of the middle: the footer's page offsets now lie past the end of the data
    const cut = Math.floor((dataEnd - 4) * (k / 9));
    pqCases.push([
      `pages past the end (${k}/9 of the data kept)`,
      () => {
        const b = new Uint8Array(4 + cut + footerLen + 8);
        b.set(pq.subarray(0, 4 + cut), 0);
        b.set(pq.subarray(dataEnd), 4 + cut);
        return b;
      },
      'error',
      /lie past the end of the data/,
    ]);
  }
  for (const [nm, make, outcome, msg] of pqCases) {
    const d = dirFor(`pq-${nm}`);
    cases.push({
      name: `parquet: ${nm}`,
      path: put(join(d, 'x.parquet'), make()),
      names: ['x.parquet'],
      outcome,
      message: msg,
      items: outcome === 'import' ? 3 : undefined,
    });
  }
  for (let k = 1; k <= 20; k++) {
    const d = dirFor(`pq-trunc-${k}`);
    cases.push({
      name: `parquet truncated (${k}/21)`,
      path: put(join(d, 'x.parquet'), pq.subarray(0, Math.floor((pq.length * k) / 21))),
      names: ['x.parquet'],
      outcome: 'error',
    });
  }
  for (let s = 1; s <= 40; s++) {
    const d = dirFor(`pq-footer-flip-${s}`);
    cases.push({
      name: `parquet footer with flipped bytes (seed ${s})`,
      path: put(join(d, 'x.parquet'), flip(pq, 600 + s, 1 + (s % 4), dataEnd, pq.length - 8)),
      names: ['x.parquet'],
      outcome: 'either',
    });
  }
  for (let s = 1; s <= 30; s++) {
    const d = dirFor(`pq-data-flip-${s}`);
    cases.push({
      name: `parquet data with flipped bytes (seed ${s})`,
      path: put(join(d, 'x.parquet'), flip(pq, 700 + s, 1 + (s % 6), 4, dataEnd)),
      names: ['x.parquet'],
      outcome: 'either',
    });
  }
  // --- 11. icon-VQA (train.jsonl of pids naming image folders): pids that are not folder names, image folders
  // that are links out of the import, a pid with several images, a huge line ---
  {
    const iconDir = (tag: string, lines: unknown[], pids: string[] = ['1']) => {
      const d = dirFor(`icon-${tag}`);
      for (const pid of pids) put(join(d, 'train_fill_in_blank', 'train_fill_in_blank', pid, 'image.png'), good);
      put(join(d, 'train.jsonl'), lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
      return d;
    };
    const ok = { pid: '1', question: 'How many?', answer: '1' };
    for (const [nm, pid, why] of [
      ['escaping pid', '../../../outside', /is not a folder name/],
      ['absolute pid', '/etc', /is not a folder name/],
      ['pid with a NUL', 'a\u0000b', /is not a folder name/],
      ['1 MiB pid', 'p'.repeat(1024 * 1024), /is not a folder name/],
      ['object pid', { toString: 'x' }, /expected a string or an integer/],
      ['float pid', 1.5, /expected a string or an integer/],
    ] as [string, unknown, RegExp][]) {
      cases.push({
        name: `icon-vqa: ${nm}`,
        path: iconDir(nm, [ok, { ...ok, pid }]),
        names: ['train.jsonl:2'],
        outcome: 'import',
        items: 1,
        report: new RegExp(`train\\.jsonl:2\\.pid.*(${why.source})`),
      });
    }
    let d = iconDir('link-out', [ok, { ...ok, pid: '2' }]);
    mkdirSync(join(d, 'train_fill_in_blank', 'train_fill_in_blank', '2'), { recursive: true });
    symlinkSync(join(root, 'outside.png'), join(d, 'train_fill_in_blank', 'train_fill_in_blank', '2', 'image.png'));
    cases.push({
      name: 'icon-vqa: the image of a pid is a link out of the import',
      path: d,
      names: ['train.jsonl:2'],
      outcome: 'import',
      items: 1,
      report: /train\.jsonl:2\.pid: no image for pid "2"/,
    });
    d = iconDir('two-images', [ok, { ...ok, pid: '2' }], ['1', '2']);
    put(join(d, 'train_extra', '2', 'image.png'), jpg);
    cases.push({
      name: 'icon-vqa: two image folders for one pid',
      path: d,
      names: ['train.jsonl:2'],
      outcome: 'import',
      items: 1,
      report: /train\.jsonl:2\.pid: several images for pid "2"/,
    });
    d = iconDir('huge-line', [ok, JSON.stringify({ ...ok, question: 'q'.repeat(17 * 1024 * 1024) })]);
    cases.push({
      name: 'icon-vqa: a 17 MiB line',
      path: d,
      names: ['train.jsonl:2'],
      outcome: 'import',
      items: 1,
      report: /train\.jsonl:2.*line is too large/,
    });
  }
  return { cases, close: () => servers.forEach((s) => s.close()) };
}
