// Models + chat through the UI: add the demo model, chat with it about an attached image (the answer streams
// into the transcript and is saved), then the base model and the same model with an adapter side by side.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { screenshotPath } from './harness';
import { call, horizontalOverflow, uiFixture, until, type UiFixture } from './ui-helpers';
import { writeDemoDataset } from '../../src-main/models/demo/dataset';
import { loadHfFolder } from '../../src-main/models/hf-folder';
import { adapterConfigJson, resolveLoraModules, saveAdapter, type LoraSpec } from '../../src-main/models/peft';
import type { LlavaModelConfig } from '../../src-main/models/config';
import { demoRng } from '../../src-main/models/demo/rng';

let ui: UiFixture;
before(async () => {
  ui = await uiFixture();
});
after(async () => {
  await ui?.cleanup();
});

test('add the demo model, ask about an image, the answer streams in and is saved; base vs fine-tuned side by side', async () => {
  const dir = ui.dataDir();
  const src = join(ui.dataDir('e2e-src-'), 'icons');
  await writeDemoDataset(src, { seed: 4, count: 1, families: ['colors'] });
  const server = await ui.serve(dir);
  const page = await ui.newPage();
  // Chat with no model yet: its empty state adds the demo model in one click and becomes the chat
  await page.goto(`${server.url}#/chat`);
  await page.getByRole('heading', { name: 'Chat', level: 1 }).waitFor();
  await page.getByText('No conversations yet').waitFor();
  await page.getByRole('button', { name: 'Add the demo model' }).click();
  await until(
    async () =>
      (await page
        .getByRole('combobox', { name: 'Model', exact: true })
        .inputValue()
        .catch(() => '')) !== '',
    "the demo model in the chat's model picker",
    30_000,
  );
  await page.getByLabel('Your question').waitFor();

  await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Models' }).click();
  await page.getByRole('heading', { name: 'Models', level: 1 }).waitFor();
  const row = page.getByRole('table', { name: 'Models' }).getByRole('row').filter({ hasText: 'Demo: tiny LLaVA' });
  await row.waitFor({ timeout: 20_000 });
  assert.match(await row.innerText(), /clip/);
  await page.screenshot({ path: screenshotPath('ui-models') });
  // a narrow window: the row's buttons wrap inside the table instead of running off the page
  await page.setViewportSize({ width: 900, height: 700 });
  await until(async () => (await horizontalOverflow(page)) <= 0, 'the models table to fit a 900 px window');
  const remove = await row.getByRole('button', { name: /^Remove / }).boundingBox();
  assert.ok(
    remove && remove.x + remove.width <= 900,
    `the Remove button is inside the window (${JSON.stringify(remove)})`,
  );
  await page.setViewportSize({ width: 1280, height: 800 });

  // chat with it about an attached image
  await row.getByRole('link', { name: 'Chat' }).click();
  await page.getByRole('heading', { name: 'Chat', level: 1 }).waitFor();
  // the attach button's icon is drawn: its paths are SVG elements with a size (slotted into the shared LineIcon)
  const icon = await page
    .getByRole('button', { name: 'Attach an image' })
    .locator('svg path, svg circle, svg rect')
    .first()
    .evaluate((el) => ({
      svg: el.namespaceURI,
      box: (el as unknown as { getBBox(): { width: number } }).getBBox().width,
    }));
  assert.equal(icon.svg, 'http://www.w3.org/2000/svg');
  assert.ok(icon.box > 0, 'the icon has a drawn path');
  // a file that is not an image is refused in words
  const notes = join(ui.dataDir('e2e-notes-'), 'notes.txt');
  writeFileSync(notes, 'not an image');
  await page.getByTestId('chat-image-input').setInputFiles(notes);
  const refused = page.getByRole('alert').filter({ hasText: 'Could not attach the image' });
  await refused.filter({ hasText: 'notes.txt is not an image' }).waitFor();
  await page.getByTestId('chat-image-input').setInputFiles(join(src, 'images', '00000.png'));
  await page.getByRole('img', { name: /Attached: 00000\.png/ }).waitFor();
  await page.getByLabel('Your question').fill('What color is the circle?');
  await page.keyboard.press('Enter');
  const log = page.getByRole('log');
  await log.locator('.msg.role-user img').waitFor();
  // the answer streams into the transcript, then the Send button comes back
  await page
    .getByRole('button', { name: /Stop/ })
    .or(page.getByRole('button', { name: 'Send' }))
    .first()
    .waitFor();
  await page.getByRole('button', { name: 'Send' }).waitFor({ timeout: 60_000 });
  const chats = await until(async () => {
    const r = await call(server, 'chats.list', {});
    return r.chats.length === 1 && r.chats[0].messageCount === 2 ? r.chats : null;
  }, 'the saved chat');
  const saved = await call(server, 'chats.get', { id: chats[0].id });
  const answer = saved.messages[1];
  assert.equal(answer.role, 'assistant');
  assert.ok(answer.content.length > 0, 'the model answered something');
  assert.ok((answer.stats as { tokens: number }).tokens > 0);
  assert.ok(saved.messages[0].imageHash, 'the image was stored with the question');
  const shown = await log.locator('.msg.role-assistant .text').innerText();
  assert.equal(shown.trim(), answer.content.trim(), 'the transcript shows the saved answer');
  await page.getByRole('complementary', { name: 'Saved chats' }).getByText('What color is the circle?').waitFor();
  await page.screenshot({ path: screenshotPath('ui-chat') });

  // an adapter for the demo model (random LoRA weights, so its answers differ from the base)
  const model = (await call(server, 'models.list', {})).models[0];
  const loaded = loadHfFolder(model.path);
  const config = loaded.config as LlavaModelConfig;
  loaded.close();
  const spec: LoraSpec = {
    mode: 'lora',
    r: 4,
    alpha: 64,
    dropout: 0,
    targets: ['q_proj', 'v_proj', 'o_proj'],
    includeVision: false,
    useRslora: false,
  };
  const rng = demoRng(3);
  const modules = resolveLoraModules(config, adapterConfigJson(config, spec).target_modules as string);
  const lora = new Map(
    modules.map((m) => [
      m.module,
      {
        a: Float32Array.from({ length: 4 * m.inFeatures }, () => rng.normal()),
        b: Float32Array.from({ length: m.outFeatures * 4 }, () => rng.normal()),
      },
    ]),
  );
  const adapterDir = join(ui.dataDir('e2e-adapter-'), 'adapter');
  saveAdapter(adapterDir, config, spec, lora);

  await page.getByLabel('Adapter', { exact: true }).selectOption('custom');
  await page.getByLabel('Adapter folder').fill(adapterDir);
  await page.getByLabel('Side by side with the base model').check();
  const panes = page.getByRole('log');
  await until(async () => (await panes.count()) === 2, 'two panes');
  await page.getByText(/^Fine-tuned: /).waitFor();
  await page.getByTestId('chat-image-input').setInputFiles(join(src, 'images', '00000.png'));
  await page.getByRole('img', { name: /Attached: 00000\.png/ }).waitFor();
  await page.getByLabel('Your question').fill('How many shapes are there?');
  await page.getByRole('button', { name: 'Send' }).click();
  await page.getByRole('button', { name: /Stop/ }).waitFor();
  await page.getByRole('button', { name: 'Send' }).waitFor({ timeout: 60_000 });
  const texts = await panes.locator('.msg.role-assistant .text').allInnerTexts();
  assert.equal(texts.length, 2);
  assert.ok(
    texts.every((t) => t.trim().length > 0),
    'both models answered',
  );
  assert.equal(await panes.locator('.error-text').count(), 0);
  const all = (await call(server, 'chats.list', {})).chats;
  assert.equal(all.length, 3);
  assert.equal(all.filter((c) => c.adapterDir === adapterDir).length, 1);
  await page.screenshot({ path: screenshotPath('ui-chat-side-by-side') });
  // a narrow window: the saved chats make room; the two panes stay side by side and the question box on screen
  await page.setViewportSize({ width: 900, height: 700 });
  await until(async () => {
    const [a, b] = await Promise.all([panes.nth(0).boundingBox(), panes.nth(1).boundingBox()]);
    const q = await page.getByLabel('Your question').boundingBox();
    return a && b && q && Math.abs(a.y - b.y) < 2 && q.y + q.height <= 700;
  }, 'side-by-side panes and the question box inside a 900x700 window').catch(async (e) => {
    await page.screenshot({ path: screenshotPath('ui-chat-side-by-side-narrow-fail'), fullPage: true });
    throw e;
  });
  await page.screenshot({ path: screenshotPath('ui-chat-side-by-side-narrow') });
  await page.setViewportSize({ width: 1280, height: 800 });

  // dark theme
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: screenshotPath('ui-chat-dark') });

  // opening a saved chat moves the pickers to its model and adapter (and does not start a new chat)
  const savedList = page.getByRole('complementary', { name: 'Saved chats' });
  const tuned = all.find((c) => c.adapterDir === adapterDir)!;
  const based = all.find((c) => c.title === 'What color is the circle?')!;
  await savedList.locator(`button.open[title="${based.title}"]`).click();
  await until(
    async () => (await page.getByLabel('Adapter', { exact: true }).inputValue()) === '',
    'the adapter picker back on "None" for the base chat',
  );
  assert.equal(await page.getByRole('combobox', { name: 'Model', exact: true }).inputValue(), String(based.modelId));
  assert.equal(await page.getByLabel('Side by side with the base model').isChecked(), false);
  assert.equal(await panes.count(), 1);
  assert.equal(await panes.locator('.msg.role-assistant .text').count(), 1, "the base chat's transcript is shown");
  // its title is the question alone: the list's "fine-tuned" tag says it has an adapter
  assert.equal(tuned.title, 'How many shapes are there?');
  await savedList
    .locator('li', { has: page.locator('.tag', { hasText: 'fine-tuned' }) })
    .locator('button.open')
    .click();
  await until(
    async () => (await page.getByLabel('Adapter', { exact: true }).inputValue()) === 'custom',
    "the adapter picker on the chat's adapter folder",
  );
  assert.equal(await page.getByLabel('Adapter folder').inputValue(), adapterDir);
  await page.getByText(/^Fine-tuned: /).waitFor();
  await new Promise((r) => setTimeout(r, 600)); // past the adapter folder field's debounce: the opened chat stays open
  assert.equal(
    await panes.locator('.msg.role-assistant .text').count(),
    1,
    "the fine-tuned chat's transcript is still shown",
  );
  assert.equal(await savedList.locator('li.active').count(), 1);
  await page.screenshot({ path: screenshotPath('ui-chat-reopened-dark') });
  await ui.closePage(page);
  await server.stop();
});
