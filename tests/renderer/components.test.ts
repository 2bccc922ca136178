// Component behaviour in real Chromium: the gallery demos (tests/renderer/gallery) are served by Vite
// and driven with playwright-core. Covers what the Node unit tests cannot: DOM windowing, focus,
// key handling inside text fields, drag-and-drop events, live chart updates.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { createServer, type ViteDevServer } from 'vite';
import { chromium, type Browser, type Page } from 'playwright-core';

// Browser globals used only inside page.evaluate callbacks (they run in Chromium); this file is
// type-checked by tsconfig.node.json, which has no DOM lib.
/* eslint-disable @typescript-eslint/no-explicit-any */
declare const document: any;
declare const window: any;
declare const DataTransfer: any;
declare const DragEvent: any;
declare const getComputedStyle: any;

const here = fileURLToPath(new URL('.', import.meta.url));
let server: ViteDevServer;
let browser: Browser;
let base = '';
const pageErrors: string[] = [];

before(async () => {
  server = await createServer({
    configFile: join(here, 'gallery', 'vite.config.ts'),
    server: { port: 0 },
    logLevel: 'error',
  });
  await server.listen();
  base = server.resolvedUrls?.local[0] ?? '';
  browser = await chromium.launch({
    executablePath: process.env.LENSLAB_CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
});
after(async () => {
  await browser?.close();
  await server?.close();
});

async function open(name: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
  page.on('pageerror', (e) => pageErrors.push(`${name}: ${e.message}`));
  await page.goto(`${base}?c=${name}`);
  await page.waitForSelector('[data-demo] > *', { timeout: 30_000 });
  return page;
}

test('VirtualGrid keeps the DOM small with 10,000 items and handles mouse and keyboard selection', async () => {
  const page = await open('VirtualGrid');
  const grid = page.getByRole('listbox', { name: 'Items in demo dataset' });
  await grid.locator('[role=option]').first().waitFor();
  const initial = await grid.locator('[role=option]').count();
  assert.ok(initial > 10 && initial < 200, `rendered ${initial} cells`);

  // Scroll to the very end: the last item is rendered, still only a window of cells.
  await grid.evaluate((el) => {
    el.scrollTop = el.scrollHeight;
  });
  await page.waitForSelector('[role=option][aria-posinset="10000"]');
  assert.ok((await grid.locator('[role=option]').count()) < 200);
  await grid.evaluate((el) => {
    el.scrollTop = 0;
  });
  await page.waitForSelector('[role=option][aria-posinset="1"]');

  // Click, shift-click (range), ctrl-click (toggle).
  const cell = (n: number) => grid.locator(`[role=option][aria-posinset="${n}"]`);
  await cell(1).click();
  await page.getByText('1 selected').waitFor();
  await cell(4).click({ modifiers: ['Shift'] });
  await page.getByText('4 selected').waitFor();
  await cell(10).click({ modifiers: ['Control'] });
  await page.getByText('5 selected').waitFor();
  assert.equal(await cell(3).getAttribute('aria-selected'), 'true');
  assert.equal(await cell(7).getAttribute('aria-selected'), 'false');

  // Keyboard: focus follows arrows with a roving tabindex; End jumps (and scrolls) to the last item; Enter opens.
  await page.keyboard.press('ArrowRight');
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-posinset')), '11');
  assert.equal(await grid.locator('[role=option][tabindex="0"]').count(), 1);
  await page.keyboard.press('Shift+ArrowRight');
  await page.getByText('2 selected').waitFor();
  await page.keyboard.press('End');
  await page.waitForFunction(() => document.activeElement?.getAttribute('aria-posinset') === '10000');
  await page.keyboard.press('Enter');
  await page.getByText('opened IMG_10000.jpg').waitFor();
  await page.keyboard.press('Control+a');
  await page.getByText('10000 selected').waitFor();
  await page.keyboard.press('Escape');
  await page.getByText('0 selected').waitFor();

  // Scrolling the focused cell out of the window (its element is recycled) leaves focus on the grid,
  // and the next arrow key brings the focused item back.
  await grid.evaluate((el) => {
    el.scrollTop = 0;
  });
  await page.waitForSelector('[role=option][aria-posinset="1"]');
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('role')), 'listbox');
  await page.keyboard.press('ArrowLeft');
  await page.waitForFunction(() => document.activeElement?.getAttribute('aria-posinset') === '9999');
  assert.equal(await cell(9999).getAttribute('aria-selected'), 'true');
  await page.close();
});

test('ItemEditor: type, save with Mod+S, undo/redo with Mod+Z / Mod+Shift+Z, Alt+Q adds a pair, empty fields block saving', async () => {
  const page = await open('ItemEditor');
  const caption = page.locator('[data-field="caption-0"]');
  await caption.click();
  await page.keyboard.press('Control+a');
  await page.keyboard.type('A blackbird');
  assert.equal(await page.getByTestId('dirty').textContent(), 'true');
  // QA 2 has an empty answer: saving is refused with a message at the field.
  await page.keyboard.press('Control+s');
  await page.getByText('The answer is empty.').waitFor();
  assert.equal(await page.getByTestId('saved').textContent(), '');
  assert.equal(
    await page.evaluate(() => document.activeElement?.getAttribute('data-field')),
    'qa-2-answer',
    'focus moves to the problem',
  );
  await page.keyboard.type('A cattail');
  await page.keyboard.press('Control+s');
  await page.waitForFunction(() => document.querySelector('[data-testid=saved]')?.textContent?.includes('A blackbird'));
  const saved = JSON.parse((await page.getByTestId('saved').textContent()) ?? '[]');
  assert.deepEqual(saved[0], { id: 1, kind: 'caption', data: { text: 'A blackbird' } });
  assert.deepEqual(saved[2].data, { question: 'What is the bird standing on?', answer: 'A cattail' });
  assert.equal(saved[3].data.messages[1].content, '<image>\nWhich species is this?', 'the image token survives');
  assert.equal(await page.getByTestId('dirty').textContent(), 'false');

  // Undo restores the text before the last typing burst; redo brings it back.
  await caption.click();
  await page.keyboard.press('End');
  await page.keyboard.type(' on a reed');
  assert.equal(await caption.inputValue(), 'A blackbird on a reed');
  await page.keyboard.press('Control+z');
  assert.equal(await caption.inputValue(), 'A blackbird');
  assert.equal(await page.getByTestId('dirty').textContent(), 'false');
  await page.keyboard.press('Control+Shift+Z');
  assert.equal(await caption.inputValue(), 'A blackbird on a reed');
  await page.keyboard.press('Control+y'); // nothing more to redo: no change
  assert.equal(await caption.inputValue(), 'A blackbird on a reed');

  // Alt+Q adds a QA pair and focuses its question.
  const before = await page.locator('.qa').count();
  await page.keyboard.press('Alt+q');
  assert.equal(await page.locator('.qa').count(), before + 1);
  assert.match(
    (await page.evaluate(() => document.activeElement?.getAttribute('data-field'))) ?? '',
    /^qa-\d+-question$/,
  );
  // Toggling the <image> chip rewrites the user turn.
  await page.getByRole('button', { name: '<image>' }).click();
  assert.equal(await page.getByRole('button', { name: '<image>' }).getAttribute('aria-pressed'), 'false');
  await page.close();
});

test('DropZone highlights while dragging and emits the dropped files', async () => {
  const page = await open('DropZone');
  const zone = page.getByTestId('dz-main');
  await zone.evaluate((el) => {
    const dt = new DataTransfer();
    dt.items.add(new File(['x'], 'a.jpg', { type: 'image/jpeg' }));
    dt.items.add(new File(['y'], 'a.txt', { type: 'text/plain' }));
    dt.items.add(new File([''], '.DS_Store'));
    window.__dt = dt;
    el.dispatchEvent(new DragEvent('dragenter', { dataTransfer: dt, bubbles: true, cancelable: true }));
    el.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
  });
  assert.match((await zone.getAttribute('class')) ?? '', /dragging/);
  await page.getByText('Release to import').waitFor();
  await zone.evaluate((el) => {
    const dt = window.__dt;
    el.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  });
  await page.getByText('files: a.jpg, a.txt').waitFor();
  assert.doesNotMatch((await zone.getAttribute('class')) ?? '', /dragging/);

  // The file picker path: set files on the hidden input.
  await zone
    .locator('input[type=file]:not([webkitdirectory])')
    .setInputFiles([{ name: 'b.png', mimeType: 'image/png', buffer: Buffer.from('png') }]);
  await page.getByText('files: b.png').waitFor();
  await page.close();
});

test('LineChart appends live points without re-creating the chart', async () => {
  const page = await open('LineChart');
  await page.waitForSelector('canvas');
  const firstStep = await page.evaluate(() => {
    window.__canvas = document.querySelector('canvas');
    return Number(document.querySelector('.u-legend .u-value')?.textContent);
  });
  // The demo appends a step every 50 ms.
  await page.waitForFunction(
    (s) => Number(document.querySelector('.u-legend .u-value')?.textContent) > s + 3,
    firstStep,
  );
  const same = await page.evaluate(() => document.querySelector('canvas') === window.__canvas);
  assert.ok(same, 'the same canvas keeps being drawn on');
  assert.equal(await page.locator('canvas').count(), 5);
  // long tick labels (0.001995): the y axis has room for them next to its tick marks (4 px) and gap (5 px)
  const room = await page.evaluate(() => {
    const fig = [...document.querySelectorAll('figure')].find((f: any) =>
      f.textContent.includes('Constant learning rate'),
    ) as any;
    const ctx = document.createElement('canvas').getContext('2d');
    ctx.font = `11px ${getComputedStyle(fig).fontFamily}`;
    return { plotLeft: fig.querySelector('.u-over').offsetLeft, label: ctx.measureText('0.001995').width };
  });
  assert.ok(room.plotLeft >= room.label + 9, `y axis ${room.plotLeft}px wide for a ${room.label.toFixed(1)}px label`);
  const label = await page.getByRole('img').first().getAttribute('aria-label');
  assert.match(label ?? '', /^Loss: train [\d.]+ at step \d+ \(\d+ points\); eval /);
  await page.close();
});

test('HyperparamForm: scientific notation, messages in words for bad input, reset to default, advanced fields', async () => {
  const page = await open('HyperparamForm');
  const state = async () => JSON.parse((await page.getByTestId('state').textContent()) ?? '{}');
  assert.equal((await state()).valid, false);
  await page.getByText('Must be at least 1', { exact: true }).waitFor();
  const steps = page.getByLabel('Steps', { exact: true });
  await steps.fill('300');
  assert.equal((await state()).values.steps, 300);
  assert.equal((await state()).valid, true, 'warmup < steps now too');
  const lr = page.getByLabel('Learning rate', { exact: true });
  await lr.fill('1e-4');
  assert.equal((await state()).values.lr, 1e-4);
  await lr.fill('fast');
  await page.getByText('“fast” is not a number', { exact: true }).waitFor();
  assert.equal(await lr.getAttribute('aria-invalid'), 'true');
  assert.equal((await state()).valid, false);
  assert.equal(await lr.inputValue(), 'fast', 'what was typed stays while another field changes');
  await page.getByLabel('Batch size', { exact: true }).fill('8');
  assert.equal(await lr.inputValue(), 'fast');
  await page.getByRole('button', { name: /^Reset Learning rate to 2e-4$/ }).click();
  assert.equal(await lr.inputValue(), '2e-4');
  assert.equal((await state()).values.lr, 2e-4);
  // Projector-only hides the LoRA fields.
  await page.getByLabel('Method', { exact: true }).selectOption('projector');
  assert.equal(await page.getByLabel('LoRA rank', { exact: true }).count(), 0);
  await page.close();
});

test('ShortcutHelp opens with ?, closes with Escape; LintPanel filters; MemoryEstimate offers suggestions', async () => {
  const page = await open('ShortcutHelp');
  const dialog = page.getByRole('dialog', { name: 'Keyboard shortcuts' });
  await dialog.waitFor();
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  // the demo page prints the v-model after the emitted update re-renders it, which can trail the dialog's hiding
  await page
    .getByTestId('open')
    .filter({ hasText: /^false$/ })
    .waitFor({ timeout: 5_000 });
  await page.keyboard.press('Shift+Slash');
  await dialog.waitFor();
  assert.ok(await dialog.getByText('Jump to the next unlabeled item').isVisible());
  await page.close();

  const lint = await open('LintPanel');
  await lint.getByRole('button', { name: /Image missing\s*3/ }).click();
  assert.equal(await lint.getByTestId('filter').textContent(), 'missing_image');
  await lint.getByRole('button', { name: /Image missing\s*3/ }).click();
  assert.equal(await lint.getByTestId('filter').textContent(), 'none', 'clicking the active group clears the filter');
  await lint.getByRole('button', { name: 'Show examples of Empty caption' }).click();
  await lint.getByRole('button', { name: 'Item 200 has an empty caption' }).click();
  await lint.getByText('opened: 200').waitFor();
  await lint.close();

  const mem = await open('MemoryEstimate');
  await mem.getByRole('alert').getByText('This run would not fit in memory.').waitFor();
  await mem.getByRole('button', { name: 'Train the projector only' }).click();
  await mem.getByText('applied: projector').waitFor();
  await mem.close();
});

test('ChatTranscript streams into the last message and marks the log busy', async () => {
  const page = await open('ChatTranscript');
  const tuned = page.getByRole('region', { name: 'Fine-tuned · run 3, step 200' });
  const log = tuned.getByRole('log');
  const len0 = (await log.textContent())?.length ?? 0;
  await page.waitForFunction(
    (n) => (document.querySelectorAll('[role=log]')[1]?.textContent?.length ?? 0) > n + 10,
    len0,
  );
  assert.equal(await log.getAttribute('aria-busy'), 'true');
  assert.equal(await tuned.locator('.cursor').count(), 1);
  assert.equal(
    await page.getByRole('region', { name: 'Base · demo-llava' }).getByRole('log').getAttribute('aria-busy'),
    'false',
  );
  await page.close();
});

test('no component threw in the page', () => {
  assert.deepEqual(pageErrors, []);
});
