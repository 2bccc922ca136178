// Getting a model from the Hub through the UI: the catalog (sizes, fits, unsupported families greyed with the
// reason), a download from a local fake Hub that is cut short once (retried automatically) and then stopped by the
// user mid-file, resumed with a Range request from the bytes on disk, registered, and chatted with: in the app,
// then through the OpenAI-compatible endpoint with an image_url data URL.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { screenshotPath } from './harness';
import { call, uiFixture, until, type UiFixture } from './ui-helpers';
import { FakeHub, filesOf } from '../helpers/fake-hub';
import { BUNDLED_DEMO_DIR } from '../../src-main/services/models';
import { writeDemoDataset } from '../../src-main/models/demo/dataset';

let ui: UiFixture;
const hub = new FakeHub();
const saved = { ...process.env };
before(async () => {
  await hub.start();
  hub.addRepo('lenslab/demo-llava', { files: { ...filesOf(BUNDLED_DEMO_DIR), 'pytorch_model.bin': Buffer.alloc(64) } });
  ui = await uiFixture();
});
after(async () => {
  await ui?.cleanup();
  await hub.close();
  process.env = saved;
});

test('pull a model from the Hub with an interruption, stop and resume it, then chat with it', async () => {
  const dir = ui.dataDir();
  process.env.HF_ENDPOINT = hub.endpoint;
  process.env.HF_HUB_CACHE = join(ui.dataDir('e2e-hf-'), 'hub');
  delete process.env.HF_TOKEN;
  // the first transfer of the weights breaks off at 100 kB (retried by itself); the retry stalls at 400 kB in all
  hub.fault({ file: 'model.safetensors', kind: 'truncate', afterBytes: 100_000 });
  hub.fault({ file: 'model.safetensors', kind: 'stall', afterBytes: 300_000 });
  const server = await ui.serve(dir);
  const page = await ui.newPage();
  await page.goto(`${server.url}#/models`);
  await page.getByRole('heading', { name: 'Get models' }).waitFor();

  // the catalog: a supported model with its sizes and a fit mark, unsupported families greyed with the reason
  const catalog = page.getByRole('table', { name: 'Model catalog' });
  const llava = catalog.getByRole('row').filter({ hasText: 'LLaVA-Interleave Qwen 0.5B' });
  assert.match(await llava.innerText(), /1\.7 GB|1\.7 GiB/);
  assert.match(await llava.innerText(), /Fits: chat and train|Chat only|Too big/);
  const blip = catalog.getByRole('row').filter({ hasText: 'BLIP VQA base' });
  assert.equal(await blip.getAttribute('aria-disabled'), 'true');
  assert.match(await blip.innerText(), /Not supported yet/);
  assert.match(await blip.innerText(), /blip/);
  assert.equal(await blip.getByRole('button').count(), 0);

  await page.getByLabel('Model on the Hub').fill('lenslab/demo-llava');
  await page.getByRole('button', { name: 'Download', exact: true }).click();
  const item = page.locator('[data-pull="lenslab/demo-llava"]');
  await item.waitFor();
  // it keeps going after the cut transfer, then hangs at 400 kB: the progress shows where it is
  await until(
    async () => {
      const p = (await call(server, 'hub.pulls', {})).pulls[0];
      return p && p.progress.bytes >= 400_000 && p.progress.retries >= 1 ? p : null;
    },
    'the download to reach the stall',
    30_000,
  ).catch(async (e) => {
    throw new Error(
      `${e.message}\npulls: ${JSON.stringify((await call(server, 'hub.pulls', {})).pulls)}\nhub log: ${JSON.stringify(hub.log)}\nserve: ${server.output()}`,
    );
  });
  await until(async () => /KB|kB|KiB/.test(await item.innerText()), 'bytes shown');
  await page.screenshot({ path: screenshotPath('ui-hub-pulling') });
  await item.getByRole('button', { name: 'Stop downloading lenslab/demo-llava' }).click();
  await page.locator('[data-pull="lenslab/demo-llava"][data-status="cancelled"]').waitFor();
  assert.match(await item.innerText(), /Stopped: .* kept, Resume continues from there/);
  hub.release();

  const before = hub.log.length;
  await item.getByRole('button', { name: 'Resume lenslab/demo-llava' }).click();
  await page.locator('[data-pull="lenslab/demo-llava"][data-status="done"]').waitFor({ timeout: 30_000 });
  const ranged = hub.log.slice(before).filter((l) => l.path.startsWith('/cdn-lfs/'));
  assert.deepEqual(
    ranged.map((l) => l.range),
    ['bytes=400000-'],
    'the resumed pull asked only for the rest',
  );
  assert.ok(!hub.log.some((l) => l.path.includes('pytorch_model.bin')), 'no pickle was fetched');
  assert.match(await item.innerText(), /Added to your models/);
  const { models } = await call(server, 'models.list', {});
  const model = models.find((m) => m.name === 'lenslab/demo-llava');
  assert.ok(model, 'registered');
  assert.match(model!.path, /models--lenslab--demo-llava\/snapshots\/[0-9a-f]{40}$/);
  await page.screenshot({ path: screenshotPath('ui-hub-done') });

  // chat with it
  const src = join(ui.dataDir('e2e-src-'), 'icons');
  await writeDemoDataset(src, { seed: 4, count: 1, families: ['colors'] });
  await item.getByRole('link', { name: 'Chat' }).click();
  await page.getByRole('heading', { name: 'Chat', level: 1 }).waitFor();
  await until(
    async () =>
      (await page
        .getByRole('combobox', { name: 'Model', exact: true })
        .locator('option:checked')
        .innerText()
        .catch(() => '')) === 'lenslab/demo-llava',
    'the pulled model picked',
  );
  await page.getByTestId('chat-image-input').setInputFiles(join(src, 'images', '00000.png'));
  await page.getByRole('img', { name: /Attached: 00000\.png/ }).waitFor();
  await page.getByLabel('Your question').fill('What color is the circle?');
  await page.keyboard.press('Enter');
  await page.getByRole('button', { name: 'Send' }).waitFor({ timeout: 90_000 });
  const chats = await until(
    async () => {
      const r = await call(server, 'chats.list', {});
      return r.chats.length === 1 && r.chats[0].messageCount === 2 ? r.chats : null;
    },
    'the saved chat',
    30_000,
  );
  assert.equal(chats[0].modelId, model!.id);
  const got = await call(server, 'chats.get', { id: chats[0].id });
  assert.ok(got.messages[1].content.length > 0, 'the pulled model answered');

  // the same model through the OpenAI-compatible endpoint of this `lenslab serve`, with an image_url data URL
  const { readFileSync } = await import('node:fs');
  const png = readFileSync(join(src, 'images', '00000.png')).toString('base64');
  const res = await fetch(`${server.origin}/v1/chat/completions`, {
    method: 'POST',
    headers: {
      Authorization: `Bearer ${server.token}`,
      'Content-Type': 'application/json',
      'User-Agent': 'OpenAI/Python 1.54.0',
    },
    body: JSON.stringify({
      model: 'lenslab/demo-llava',
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What color is the circle?' },
            { type: 'image_url', image_url: { url: `data:image/png;base64,${png}` } },
          ],
        },
      ],
      temperature: 0,
    }),
  });
  assert.equal(res.status, 200);
  const completion = (await res.json()) as {
    object: string;
    choices: Array<{ message: { content: string }; finish_reason: string }>;
  };
  assert.equal(completion.object, 'chat.completion');
  assert.equal(
    completion.choices[0].message.content.trim(),
    got.messages[1].content.trim(),
    'the endpoint answers as the chat did (greedy)',
  );
  await ui.closePage(page);
});
