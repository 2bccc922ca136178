// An audio LLM in the app: registered through the API, it gets a Chat button in Models; in Chat the composer offers
// attach-audio (and record) instead of an image, a WAV clip becomes a playable chip, the question is answered and
// saved with the clip, and the base model and a fine-tuned adapter answer side by side.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { screenshotPath } from './harness';
import { call, uiFixture, until, type UiFixture } from './ui-helpers';
import { writeTinyAudioLlm } from '../../src-main/models/demo/tiny-audio-llm';
import { toneSample } from '../../src-main/models/demo/tones';
import { loadAudioLlm } from '../../src-main/models/audio/ultravox';
import { buildTrainableAudioLlm } from '../../src-main/models/audio/train';
import { saveAudioAdapter } from '../../src-main/models/audio/adapter';
import { wav } from '../helpers/wav';

let ui: UiFixture;
before(async () => {
  ui = await uiFixture();
});
after(async () => {
  await ui?.cleanup();
});

test('an audio LLM: Chat from Models, attach a WAV clip, the answer is saved with the clip; base vs fine-tuned', async () => {
  const src = ui.dataDir('e2e-audio-src-');
  const modelDir = writeTinyAudioLlm(join(src, 'audio'), 5, { stackFactor: 4, initStd: 0.2 }).dir;
  const s = toneSample(7, 1);
  const clip = join(src, 'tones.wav');
  writeFileSync(clip, wav(s.samples, 16000));
  // a projector-only adapter with other projector weights: the fine-tuned pane hears differently
  const adapterDir = join(src, 'adapter');
  const m = loadAudioLlm(modelDir);
  try {
    const t = buildTrainableAudioLlm(m, 'projector', null, m.features.config.nbMaxFrames);
    const v = t.initialValues(0);
    for (const k of Object.keys(v)) v[k] = v[k].map((x, i) => x + 0.3 * Math.sin(i + 1));
    saveAudioAdapter(adapterDir, m, 'projector', null, v, modelDir);
  } finally {
    m.close();
  }

  const dir = ui.dataDir();
  const server = await ui.serve(dir);
  await call(server, 'models.import', { path: modelDir, name: 'Tiny audio LLM' });
  const page = await ui.newPage();
  await page.goto(`${server.url}#/models`);
  await page.getByRole('heading', { name: 'Models', level: 1 }).waitFor();
  const row = page.getByRole('table', { name: 'Models' }).getByRole('row').filter({ hasText: 'Tiny audio LLM' });
  await row.waitFor({ timeout: 20_000 });
  assert.match(await row.innerText(), /audio: whisper .* tokens/);
  assert.match(await row.innerText(), /not available for audio LLMs yet/);
  assert.equal(await row.getByRole('link', { name: 'Train' }).count(), 0, 'no Train button for an audio LLM yet');
  await row.getByRole('link', { name: 'Chat' }).click();
  await page.getByRole('heading', { name: 'Chat', level: 1 }).waitFor();

  // the composer offers audio, not an image
  await page.getByRole('button', { name: 'Attach audio' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Attach an image' }).count(), 0);
  // a file no browser can decode is refused in words
  const notes = join(src, 'notes.txt');
  writeFileSync(notes, 'not a sound');
  await page.getByTestId('chat-audio-input').setInputFiles(notes);
  await page
    .getByRole('alert')
    .filter({ hasText: 'Could not attach the audio' })
    .filter({ hasText: 'notes.txt is not an audio file' })
    .waitFor();
  await page.getByTestId('chat-audio-input').setInputFiles(clip);
  await page.getByTestId('chat-audio-chip').waitFor();
  await page.getByLabel('Your question').fill(s.question);
  await page.keyboard.press('Enter');
  const log = page.getByRole('log');
  await log.locator('.msg.role-user audio').waitFor();
  await page.getByRole('button', { name: 'Send' }).waitFor({ timeout: 120_000 });
  const chats = await until(
    async () => {
      const r = await call(server, 'chats.list', {});
      return r.chats.length === 1 && r.chats[0].messageCount === 2 ? r.chats : null;
    },
    'the saved chat',
    60_000,
  );
  const saved = await call(server, 'chats.get', { id: chats[0].id });
  assert.match(saved.messages[0].audioHash ?? '', /^[0-9a-f]{64}$/, 'the clip was stored with the question');
  assert.equal(saved.messages[0].audioExt, 'wav');
  assert.equal(saved.messages[1].role, 'assistant');
  assert.ok((saved.messages[1].stats as { tokens: number }).tokens > 0);
  // the stored clip plays from the media store
  const src0 = await log.locator('.msg.role-user audio').first().getAttribute('src');
  assert.match(src0 ?? '', new RegExp(`/media/media/[0-9a-f]{2}/${saved.messages[0].audioHash}\\.wav$`));
  await page.screenshot({ path: screenshotPath('ui-audio-chat') });

  // base vs fine-tuned, side by side
  await page.getByRole('combobox', { name: 'Adapter' }).selectOption('custom');
  await page.getByLabel('Adapter folder').fill(adapterDir);
  await page.getByLabel('Side by side with the base model').check();
  await until(async () => (await page.locator('.panes.two').count()) === 1, 'two panes');
  await page.getByTestId('chat-audio-input').setInputFiles(clip);
  await page.getByTestId('chat-audio-chip').waitFor();
  await page.getByLabel('Your question').fill(s.question);
  await page.keyboard.press('Enter');
  await until(async () => (await call(server, 'chats.list', {})).chats.length === 3, 'two more saved chats', 120_000);
  await page.getByRole('button', { name: 'Send' }).waitFor({ timeout: 120_000 });
  const all = (await call(server, 'chats.list', {})).chats;
  assert.deepEqual(all.map((c) => c.adapterDir).sort(), [adapterDir, null, null].sort());
  for (const c of all) {
    const g = await call(server, 'chats.get', { id: c.id });
    assert.equal(g.messages.length, 2, `chat ${c.id}: question and answer`);
    assert.ok(g.messages[0].audioHash, `chat ${c.id}: the clip is stored`);
  }
  await page.screenshot({ path: screenshotPath('ui-audio-chat-compare') });
});
