// The labeling view of audio and video items: an imported WAV plays in an <audio> player above its waveform
// (drawn from the clip decoded with WebAudio), and an imported WebM plays in a <video> player with a strip of
// 8 sampled frames, in time order (the fixture's square moves right: each frame's square lies further right).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { screenshotPath } from './harness';
import { call, uiFixture, until, type UiFixture } from './ui-helpers';

const MEDIA = join(import.meta.dirname, '..', 'fixtures', 'media');
let ui: UiFixture;
before(async () => {
  ui = await uiFixture();
});
after(async () => {
  await ui?.cleanup();
});

test('audio items show a player and a waveform; video items a player and a frame strip in order', async () => {
  const src = join(ui.dataDir('e2e-src-'), 'clips');
  mkdirSync(src, { recursive: true });
  copyFileSync(join(MEDIA, 'pcm16-stereo-44100.wav'), join(src, 'chirp.wav'));
  writeFileSync(join(src, 'chirp.txt'), 'a rising chirp');
  copyFileSync(join(MEDIA, 'square-right.webm'), join(src, 'square.webm'));
  writeFileSync(join(src, 'square.txt'), 'a square moves right');
  const server = await ui.serve(ui.dataDir());
  const imp = await call(server, 'datasets.import', { path: src, dataset: 'clips' });
  assert.equal(imp.imported, 2, JSON.stringify(imp));
  const { items } = await call(server, 'items.list', { datasetId: imp.datasetId });
  const audio = items.find((it) => it.media?.kind === 'audio')!;
  const video = items.find((it) => it.media?.kind === 'video')!;
  assert.ok(audio && video, JSON.stringify(items));

  const page = await ui.newPage();
  await page.goto(`${server.url}#/datasets/${imp.datasetId}/items/${audio.id}`);
  const player = page.getByLabel(`Play item ${audio.id}`);
  await player.waitFor();
  assert.equal(await player.evaluate((e) => e.tagName), 'AUDIO');
  const wave = page.getByRole('img', { name: `Waveform of item ${audio.id}` });
  await until(async () => (await wave.getAttribute('data-drawn')) !== null, 'the waveform to be drawn');
  // the canvas holds ink: some column is not blank
  const inked = await wave.evaluate((c) => {
    const cv = c as any; // tsconfig.node has no DOM types
    const d = cv.getContext('2d')!.getImageData(0, 0, cv.width, cv.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
    return n;
  });
  assert.ok(inked > 100, `${inked} inked pixels`);
  await until(async () => (await player.evaluate((e) => (e as any).duration)) > 0, 'the clip to load');
  assert.ok(Math.abs((await player.evaluate((e) => (e as any).duration)) - 0.06) < 0.01);
  await page.getByText('0.06 s · 44.1 kHz · stereo').waitFor();
  await page.screenshot({ path: screenshotPath('ui-media-audio') });

  await page.goto(`${server.url}#/datasets/${imp.datasetId}/items/${video.id}`);
  const vplayer = page.getByLabel(`Play item ${video.id}`);
  await vplayer.waitFor();
  assert.equal(await vplayer.evaluate((e) => e.tagName), 'VIDEO');
  const strip = page.getByRole('list', { name: '8 sampled frames' });
  const frames = strip.getByRole('img');
  await until(async () => (await frames.count()) === 8, 'the frame strip');
  // where the white square starts in each strip image (row through its middle), left to right over time
  const xs = await frames.evaluateAll(async (imgs) =>
    Promise.all(
      imgs.map(async (img) => {
        const im = img as any;
        await im.decode();
        const c = (globalThis as any).document.createElement('canvas');
        c.width = im.naturalWidth;
        c.height = im.naturalHeight;
        const g = c.getContext('2d')!;
        g.drawImage(im, 0, 0);
        const row = Math.round(c.height * (16 / 32));
        const d = g.getImageData(0, row, c.width, 1).data;
        for (let x = 0; x < c.width; x++) if (d[x * 4] > 128) return x / c.width;
        return -1;
      }),
    ),
  );
  assert.ok(
    xs.every((x) => x >= 0),
    JSON.stringify(xs),
  );
  for (let k = 1; k < xs.length; k++)
    assert.ok(xs[k] >= xs[k - 1], `frame ${k + 1} is not left of frame ${k}: ${JSON.stringify(xs)}`);
  assert.ok(xs[7] - xs[0] > 0.4, `the square travels across the strip: ${JSON.stringify(xs)}`);
  await page.getByText('32×32 · 12 fps').waitFor();
  await page.screenshot({ path: screenshotPath('ui-media-video') });
  await ui.closePage(page);
});
