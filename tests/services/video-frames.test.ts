// items.videoFrames: the labeling view's frame strip comes from the backend's ffmpeg with the model's uniform frame
// choice (not from seeking a browser player, which repeated stale frames under load): indices, times, order, the
// thumbnail height, and the errors for an item that is not a video or whose file is gone.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { createBackend } from '../../src-main/services/backend';
import { mediaPath } from '../../src-main/datasets/media-store';
import { tempDir } from '../helpers/tmp';
import { dispatchTo } from '../helpers/dispatch';

const MEDIA = join(import.meta.dirname, '..', 'fixtures', 'media');
const tmp = tempDir('video-frames-');
const backend = createBackend({
  dataDir: join(tmp.dir, 'data'),
  dbFile: ':memory:',
  host: 'test',
  log: { error() {}, warn() {} },
});
after(() => {
  backend.close();
  tmp.cleanup();
});
const { ok, fail } = dispatchTo(() => backend);

test('items.videoFrames gives the uniformly sampled frames in time order, scaled to the strip height', async () => {
  const src = join(tmp.dir, 'clips');
  mkdirSync(src);
  copyFileSync(join(MEDIA, 'square-right.webm'), join(src, 'square.webm'));
  writeFileSync(join(src, 'square.txt'), 'a square moves right');
  copyFileSync(join(MEDIA, 'pcm16-mono-32000.wav'), join(src, 'tone.wav'));
  writeFileSync(join(src, 'tone.txt'), 'a tone');
  const imp = await ok('datasets.import', { path: src, dataset: 'clips' });
  assert.equal(imp.imported, 2, JSON.stringify(imp));
  const { items } = await ok('items.list', { datasetId: imp.datasetId });
  const video = items.find((it: any) => it.media?.kind === 'video');
  const audio = items.find((it: any) => it.media?.kind === 'audio');

  const r = await ok('items.videoFrames', { id: video.id, frames: 8, height: 64 });
  assert.equal(r.total, 12);
  assert.equal(r.fps, 12);
  assert.deepEqual(
    r.frames.map((f: any) => f.index),
    [0, 1, 3, 4, 6, 7, 9, 11],
    'linspace(0, 11, 8) floored',
  );
  assert.deepEqual(
    r.frames.map((f: any) => f.time),
    [0, 1, 3, 4, 6, 7, 9, 11].map((i) => i / 12),
  );
  const xs: number[] = [];
  for (const f of r.frames) {
    const { data, info } = await sharp(Buffer.from(f.png, 'base64'))
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    assert.deepEqual([info.width, info.height], [64, 64], 'scaled from 32×32 to the asked height');
    const row = info.height >> 1;
    let x = 0;
    while (x < info.width && data[(row * info.width + x) * 3] <= 128) x++;
    xs.push(x / info.width);
  }
  for (let k = 1; k < xs.length; k++)
    assert.ok(xs[k] > xs[k - 1], `frame ${k + 1} is right of frame ${k}: ${JSON.stringify(xs)}`);

  assert.equal((await ok('items.videoFrames', { id: video.id })).frames.length, 8, 'eight by default');
  assert.match((await fail('items.videoFrames', { id: audio.id })).message, /is not a video/);
  assert.equal((await fail('items.videoFrames', { id: 99999 })).code, 'not_found');
  assert.equal((await fail('items.videoFrames', { id: video.id, frames: 0 })).field, 'frames');
  rmSync(mediaPath(join(tmp.dir, 'data'), video.media.hash, video.media.ext));
  const gone = await fail('items.videoFrames', { id: video.id });
  assert.equal(gone.code, 'not_found');
  assert.match(gone.message, /missing from the data folder/);
});
