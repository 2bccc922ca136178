// Datasets with audio and video items: a folder with sidecar captions, JSONL with `audio` / `video` fields, and HF
// parquet with {bytes, path} audio structs import into the media store (content-addressed, media_* columns, a video
// poster as the thumbnail); corrupt, missing and unsupported files are skipped with the record, field and reason;
// a clip over the 30 s window gives a warning; re-importing finds everything already present; GC keeps what items
// (and undo) refer to.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { tempDir } from '../helpers/tmp';
import { openDatabase, closeDatabase } from '../../src-main/storage/database';
import { importDataset } from '../../src-main/datasets/import';
import { loadItems } from '../../src-main/datasets/rows';
import { mediaPath } from '../../src-main/datasets/media-store';
import { collectImageGarbage, thumbPath } from '../../src-main/datasets/images';
import * as ops from '../../src-main/datasets/ops';
import { write } from './fixtures';

const MEDIA = join(import.meta.dirname, '..', 'fixtures', 'media');
const WAV = readFileSync(join(MEDIA, 'pcm16-mono-16000-ext.wav'));
const FLAC = readFileSync(join(MEDIA, 'pcm24-stereo-22050.flac'));
const MP4 = readFileSync(join(MEDIA, 'square-right.mp4'));

/** A mono 16-bit WAV of `seconds` of a quiet tone. */
function toneWav(seconds: number, rate = 8000): Buffer {
  const n = Math.round(seconds * rate);
  const b = Buffer.alloc(44 + n * 2);
  b.write('RIFF', 0);
  b.writeUInt32LE(36 + n * 2, 4);
  b.write('WAVEfmt ', 8);
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(1, 22);
  b.writeUInt32LE(rate, 24);
  b.writeUInt32LE(rate * 2, 28);
  b.writeUInt16LE(2, 32);
  b.writeUInt16LE(16, 34);
  b.write('data', 36);
  b.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(3000 * Math.sin(i / 5)), 44 + i * 2);
  return b;
}

const tmp = tempDir('media-import-');
after(tmp.cleanup);
const dataDir = join(tmp.dir, 'data');
const db = openDatabase(join(dataDir, 'lenslab.db'));
after(() => closeDatabase(db));

test('a folder of audio and video with sidecar captions: stored by hash, metadata read, bad files named', async () => {
  const root = join(tmp.dir, 'folder');
  write(root, 'birds/robin.wav', WAV);
  write(root, 'birds/robin.txt', 'a robin sings\n');
  write(root, 'birds/wren.flac', FLAC);
  write(root, 'moves/square.mp4', MP4);
  write(root, 'moves/square.txt', 'the square moves right');
  write(root, 'broken.wav', Buffer.from('RIFF\x10\0\0\0WAVEjunkjunk'));
  write(root, 'song.mp3', Buffer.from('ID3\x04\0\0\0\0\0\0not really'));
  write(root, 'long.wav', toneWav(31));
  const r = await importDataset(db, dataDir, root, { dataset: 'sounds' });
  assert.equal(r.format, 'folder');
  assert.equal(r.imported, 4);
  const skipped = Object.fromEntries(r.skipped.map((p) => [p.ref, p]));
  assert.deepEqual(Object.keys(skipped).sort(), ['broken.wav', 'song.mp3']);
  assert.equal(skipped['broken.wav'].field, 'audio');
  assert.match(skipped['broken.wav'].message, /corrupt WAV: no 'fmt ' chunk.*\(broken\.wav\)/);
  assert.match(skipped['song.mp3'].message, /MP3 is not decoded headless/);
  const long = r.warnings.find((w) => w.ref === 'long.wav');
  assert.ok(long, JSON.stringify(r.warnings));
  assert.equal(long.field, 'audio');
  assert.match(long.message, /audio is 31\.0 s, longer than the 30 s encoder window: it will be split into 2 windows/);

  const items = loadItems(db, r.datasetId);
  const by = Object.fromEntries(items.map((it) => [it.sourcePath!, it]));
  const robin = by['birds/robin.wav'];
  assert.equal(robin.image, null);
  assert.equal(robin.media!.kind, 'audio');
  assert.equal(robin.media!.ext, 'wav');
  assert.deepEqual(robin.media!.meta, { seconds: 0.06, sampleRate: 16000, channels: 1, encoding: 'pcm16' });
  assert.deepEqual(
    robin.annotations.map((a) => a.data),
    [{ text: 'a robin sings' }],
  );
  assert.deepEqual(robin.tags, ['birds']);
  assert.ok(existsSync(mediaPath(dataDir, robin.media!.hash, 'wav')));
  assert.deepEqual(readFileSync(mediaPath(dataDir, robin.media!.hash, 'wav')), WAV);
  const wren = by['birds/wren.flac'];
  assert.deepEqual(
    { kind: wren.media!.kind, ext: wren.media!.ext, rate: wren.media!.meta.sampleRate, ch: wren.media!.meta.channels },
    { kind: 'audio', ext: 'flac', rate: 22050, ch: 2 },
  );
  assert.equal(wren.annotations.length, 0);
  const sq = by['moves/square.mp4'];
  assert.equal(sq.media!.kind, 'video');
  assert.deepEqual(
    { w: sq.media!.meta.width, h: sq.media!.meta.height, frames: sq.media!.meta.frames, fps: sq.media!.meta.fps },
    { w: 32, h: 32, frames: 12, fps: 12 },
  );
  assert.ok(existsSync(thumbPath(dataDir, sq.media!.hash)), 'the video poster is the thumbnail');

  // the same folder again: everything is already present, nothing is stored twice
  const again = await importDataset(db, dataDir, root, { dataset: 'sounds' });
  assert.equal(again.imported, 0);
  assert.equal(again.alreadyPresent.length, 4);

  // GC keeps referenced media and media a delete's undo may bring back
  ops.deleteItems(db, r.datasetId, [robin.id]);
  collectImageGarbage(db, dataDir, { minAgeMs: 0 });
  assert.ok(existsSync(mediaPath(dataDir, robin.media!.hash, 'wav')));
  ops.undo(db, r.datasetId);
  assert.equal(loadItems(db, r.datasetId).find((it) => it.id === robin.id)?.media?.hash, robin.media!.hash);
});

test('JSONL with audio and video fields: labels per record, bad records named by line and field', async () => {
  const root = join(tmp.dir, 'jsonl');
  write(root, 'clips/a.wav', WAV);
  write(root, 'clips/v.mp4', MP4);
  write(root, 'outside.wav', WAV);
  const lines = [
    { audio: 'clips/a.wav', question: 'What sings?', answer: 'a robin' },
    { video: 'clips/v.mp4', question: 'Which way does the square move?', answer: 'right' },
    { audio: 'clips/missing.wav', question: 'Q?', answer: 'A' },
    { audio: '../x.wav', question: 'Q?', answer: 'A' },
  ];
  write(root, 'data.jsonl', lines.map((l) => JSON.stringify(l)).join('\n'));
  const r = await importDataset(db, dataDir, join(root, 'data.jsonl'), { dataset: 'qa-clips' });
  assert.equal(r.imported, 2);
  const refs = r.skipped.map((p) => `${p.ref} ${p.field}: ${p.message}`);
  assert.equal(refs.length, 2, refs.join('\n'));
  assert.match(refs[0], /data\.jsonl:3 audio: .*not found.*missing\.wav/);
  assert.match(refs[1], /data\.jsonl:4 audio: .*(outside|escapes|inside)/);
  const items = loadItems(db, r.datasetId);
  assert.deepEqual(
    items.map((it) => [it.media!.kind, it.annotations[0].data]),
    [
      ['audio', { question: 'What sings?', answer: 'a robin' }],
      ['video', { question: 'Which way does the square move?', answer: 'right' }],
    ],
  );
});

test('HF datasets parquet with audio structs {bytes, path}', async () => {
  const root = join(tmp.dir, 'parquet');
  const rows = [
    { bytes: new Uint8Array(WAV), path: 'robin.wav' },
    { bytes: new Uint8Array(FLAC), path: null },
    { bytes: new Uint8Array(Buffer.from('RIFFxxxxWAVEnothing')), path: 'bad.wav' },
  ];
  const buf = parquetWriteBuffer({
    columnData: [
      { name: 'audio', data: rows },
      { name: 'text', data: ['a robin sings', 'a wren', 'broken'] },
    ],
    schema: [
      { name: 'root', num_children: 2 },
      { name: 'audio', repetition_type: 'OPTIONAL', num_children: 2 },
      { name: 'bytes', type: 'BYTE_ARRAY', repetition_type: 'OPTIONAL' },
      { name: 'path', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      { name: 'text', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
    ],
  });
  write(root, 'data/train-00000-of-00001.parquet', new Uint8Array(buf));
  const r = await importDataset(db, dataDir, root, { dataset: 'parquet-audio' });
  assert.equal(r.format, 'parquet');
  assert.equal(r.imported, 2);
  assert.equal(r.skipped.length, 1);
  assert.equal(r.skipped[0].field, 'audio');
  assert.match(r.skipped[0].message, /corrupt WAV/);
  const items = loadItems(db, r.datasetId);
  assert.deepEqual(
    items.map((it) => [it.media?.kind, it.media?.ext, it.split, it.annotations[0]?.data]),
    [
      ['audio', 'wav', 'train', { text: 'a robin sings' }],
      ['audio', 'flac', 'train', { text: 'a wren' }],
    ],
  );
});

test('lint: a clip over 30 s is a warning, a missing media file an error', async () => {
  const { lintDataset } = await import('../../src-main/datasets/lint');
  const { rmSync } = await import('node:fs');
  const root = join(tmp.dir, 'lint');
  write(root, 'long.wav', toneWav(31));
  write(root, 'long.txt', 'a long hum');
  write(root, 'short.wav', toneWav(1));
  write(root, 'short.txt', 'a short hum');
  const r = await importDataset(db, dataDir, root, { dataset: 'lint-clips' });
  const items = loadItems(db, r.datasetId);
  const long = items.find((it) => it.sourcePath === 'long.wav')!;
  const short = items.find((it) => it.sourcePath === 'short.wav')!;
  rmSync(mediaPath(dataDir, short.media!.hash, 'wav'));
  const rep = await lintDataset(db, dataDir, r.datasetId);
  const f = rep.findings
    .filter((x) => x.rule === 'clip_too_long' || x.rule === 'media_missing')
    .map((x) => [x.itemId, x.rule, x.severity, x.message]);
  assert.deepEqual(f, [
    [
      long.id,
      'clip_too_long',
      'warning',
      'audio is 31.0 s, longer than the 30 s encoder window: it will be split into 2 windows (or truncated to the first 30 s)',
    ],
    [
      short.id,
      'media_missing',
      'error',
      `audio file is missing from the data folder (${short.media!.hash.slice(0, 12)}….wav)`,
    ],
  ]);
});
