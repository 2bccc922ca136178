// Video frames through the system ffmpeg: uniform frame indices, the frames themselves in time order, limits, and
// the errors for a corrupt file and for a machine without ffmpeg (.ci/run installs ffmpeg for these tests).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { extractVideoFrames, findFfmpeg, probeVideo, uniformFrameIndices } from '../../src-main/media/video';
import { MediaError } from '../../src-main/media/errors';
import { tempDir } from '../helpers/tmp';

const VIDEO = join(import.meta.dirname, '..', 'fixtures', 'media', 'square-right.mp4');

/** x of the white square's left edge in a 32×32 frame (fixture: frame k has it at x = 2k). */
async function squareX(png: Buffer): Promise<number> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const row = 14;
  for (let x = 0; x < info.width; x++) if (data[(row * info.width + x) * 3] > 128) return x;
  return -1;
}

test('uniform frame indices are numpy linspace(0, total-1, N) floored', () => {
  assert.deepEqual(uniformFrameIndices(12, 4), [0, 3, 7, 11]);
  assert.deepEqual(uniformFrameIndices(100, 8), [0, 14, 28, 42, 56, 70, 84, 99]);
  assert.deepEqual(uniformFrameIndices(3, 5), [0, 0, 1, 1, 2]);
  assert.deepEqual(uniformFrameIndices(10, 1), [0]);
});

test('ffmpeg is found and a video gives N frames in time order', async () => {
  assert.ok(findFfmpeg(), 'ffmpeg and ffprobe on PATH (.ci/run installs them)');
  const info = await probeVideo(VIDEO, 'square-right.mp4');
  assert.deepEqual(
    { w: info.width, h: info.height, frames: info.frames, fps: info.fps },
    { w: 32, h: 32, frames: 12, fps: 12 },
  );
  const v = await extractVideoFrames(VIDEO, 4, { file: 'square-right.mp4' });
  assert.deepEqual(v.indices, [0, 3, 7, 11]);
  assert.deepEqual(
    v.times.map((t) => Math.round(t * 1000)),
    [0, 250, 583, 917],
  );
  assert.deepEqual(await Promise.all(v.png.map(squareX)), [0, 6, 14, 22]);
  const many = await extractVideoFrames(VIDEO, 20);
  assert.equal(many.png.length, 20);
  assert.deepEqual((await Promise.all(many.png.map(squareX))).slice(0, 4), [0, 0, 2, 2]);
});

test('corrupt, missing, over-limit videos and a machine without ffmpeg give the file and the reason', async () => {
  const tmp = tempDir('video-');
  const check = async (p: Promise<unknown>, file: string, re: RegExp) =>
    assert.rejects(p, (e: unknown) => {
      assert.ok(e instanceof MediaError, String(e));
      assert.equal(e.file, file);
      assert.match(e.message, re);
      return true;
    });
  try {
    const bad = join(tmp.dir, 'bad.mp4');
    writeFileSync(bad, Buffer.from('\0\0\0\x18ftypmp42 this is not really a video'));
    await check(
      probeVideo(bad, 'bad.mp4'),
      'bad.mp4',
      /^bad\.mp4: (cannot decode video|no video stream|corrupt video)/,
    );
    await check(probeVideo(join(tmp.dir, 'none.mp4'), 'none.mp4'), 'none.mp4', /not found/);
    await check(
      extractVideoFrames(VIDEO, 4, { file: 'big.mp4', limits: { maxPixels: 100 } }),
      'big.mp4',
      /too large: 32×32/,
    );
    await check(
      extractVideoFrames(VIDEO, 4, { file: 'long.mp4', limits: { maxSeconds: 0.5 } }),
      'long.mp4',
      /too long: 1\.0 s/,
    );
    await check(extractVideoFrames(VIDEO, 0, { file: 'v.mp4' }), 'v.mp4', /frames to sample must be 1–256/);
    const path = process.env.PATH;
    process.env.PATH = tmp.dir;
    try {
      assert.equal(findFfmpeg(), null);
      await check(
        extractVideoFrames(VIDEO, 4, { file: 'clip.mp4' }),
        'clip.mp4',
        /decoded with ffmpeg, which was not found \(install it/,
      );
    } finally {
      process.env.PATH = path;
    }
  } finally {
    tmp.cleanup();
  }
});
