// Datasets + labeling through the UI in Chromium against `lenslab serve`: import a dropped folder (uploaded to
// the server), browse the grid, label an item with the keyboard, undo and redo through the backend's history,
// restart the server, and find the label and the history still there.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { screenshotPath } from './harness';
import { call, uiFixture, until, type UiFixture } from './ui-helpers';
import { writeDemoDataset } from '../../src-main/models/demo/dataset';

let ui: UiFixture;
before(async () => {
  ui = await uiFixture();
});
after(async () => {
  await ui?.cleanup();
});

test('drop a folder, label an item with the keyboard, undo, redo, restart: the label and its history persist', async () => {
  const dir = ui.dataDir();
  const src = join(ui.dataDir('e2e-src-'), 'icons');
  await writeDemoDataset(src, { seed: 11, count: 6, families: ['colors'] });
  let server = await ui.serve(dir);
  let page = await ui.newPage();
  await page.goto(server.url);
  await page.getByRole('heading', { name: 'Datasets', level: 1 }).waitFor();

  // "drop" the folder: the DropZone's folder picker (webkitdirectory) gets the whole folder, as a drop would
  await page.locator('input[webkitdirectory]').setInputFiles(src);
  const report = page.getByRole('status', { name: /Import report for icons/ });
  await report.waitFor({ timeout: 20_000 });
  assert.match(await report.innerText(), /Imported 6 items into “icons”/);
  await page.screenshot({ path: screenshotPath('ui-datasets-imported') });
  await report.getByRole('button', { name: 'Open dataset' }).click();

  // the grid of thumbnails
  await page.getByRole('heading', { name: 'icons', level: 1 }).waitFor();
  const grid = page.getByRole('listbox', { name: 'Items in icons' });
  await grid.getByRole('option').first().waitFor();
  assert.equal(await grid.getByRole('option').count(), 6);
  await until(
    () =>
      page.evaluate(() =>
        [...(globalThis as any).document.querySelectorAll('.vgrid img')].every(
          (i: any) => i.complete && i.naturalWidth > 0,
        ),
      ),
    'thumbnails to load',
  );
  await page.screenshot({ path: screenshotPath('ui-dataset-grid') });

  // filter to one split after a bulk action: select two items, move them to "test"
  await grid.getByRole('option').nth(0).click();
  await grid
    .getByRole('option')
    .nth(1)
    .click({ modifiers: ['Shift'] });
  const bulk = page.getByRole('toolbar', { name: 'Actions on the selected items' });
  await bulk.getByText('2 selected').waitFor();
  await bulk.getByLabel('Split for the selected items').selectOption('test');
  await bulk.getByRole('button', { name: 'Set split' }).click();
  await page.getByText('Split: 2 items changed.').waitFor();
  await page.getByLabel('Filter by split').selectOption('test');
  await until(async () => (await grid.getByRole('option').count()) === 2, 'the split filter');
  await page.screenshot({ path: screenshotPath('ui-dataset-filtered') });
  await page.getByRole('button', { name: 'Clear filters' }).first().click();
  await until(async () => (await grid.getByRole('option').count()) === 6, 'all items again');

  // lint: the panel lists what the backend found
  await page.getByRole('button', { name: 'Check for problems' }).click();
  const lint = page.getByRole('region', { name: 'Dataset problems' });
  await lint.waitFor();
  await until(async () => !(await lint.innerText()).includes('checking'), 'the lint to finish');
  const datasetId = Number(/datasets\/(\d+)/.exec(page.url())![1]);
  const findings = (await call(server, 'datasets.lintResults', { datasetId })).findings;
  assert.equal(Number(await lint.locator('.total').innerText()), findings.length);
  // export: the result shows in the Export card, where the button is
  const exportCard = page.getByRole('region', { name: 'Export' });
  const exportDir = join(ui.dataDir('e2e-export-'), 'out');
  await exportCard.getByLabel('Folder on the Lenslab machine').fill(exportDir);
  await exportCard.getByRole('button', { name: 'Export' }).click();
  await exportCard
    .getByRole('status')
    .filter({ hasText: /^Exported 6 items/ })
    .waitFor({ timeout: 30_000 });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: screenshotPath('ui-dataset-grid-dark') });
  await page.emulateMedia({ colorScheme: 'light' });

  // open the first item with the keyboard (Enter on the focused cell)
  await grid.getByRole('option').first().focus();
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: /Label item/ }).waitFor();
  const itemId = Number(/items\/(\d+)/.exec(page.url())![1]);
  const before = await call(server, 'items.get', { id: itemId });

  // add a QA pair (Alt+Q focuses its question), type, save with Ctrl+S
  await page.getByRole('form', { name: `Annotations of item ${itemId}` }).waitFor();
  await page.keyboard.press('Alt+q');
  await page.keyboard.type('What is in the corner?');
  await page.keyboard.press('Tab');
  await page.keyboard.type('a keyboard-made label');
  await page.keyboard.press('Control+s');
  const saved = await until(async () => {
    const it = await call(server, 'items.get', { id: itemId });
    return it.annotations.length === before.annotations.length + 1 ? it : null;
  }, 'the saved QA pair');
  const added = saved.annotations[saved.annotations.length - 1];
  assert.equal(added.kind, 'qa');
  assert.deepEqual(added.data, { question: 'What is in the corner?', answer: 'a keyboard-made label' });
  await page.getByRole('button', { name: /Undo/ }).and(page.locator(':not([disabled])')).first().waitFor();
  await page.screenshot({ path: screenshotPath('ui-labeling') });
  // a narrow window stacks the image above the editor; the editor still starts inside the window
  await page.setViewportSize({ width: 900, height: 700 });
  await until(async () => {
    const box = await page.getByRole('form', { name: `Annotations of item ${itemId}` }).boundingBox();
    return box !== null && box.y < 700 - 60;
  }, 'the editor to start inside a 900x700 window');
  await page.setViewportSize({ width: 1280, height: 800 });

  // Ctrl+Z with a clean draft undoes the saved change in the backend; Ctrl+Shift+Z redoes it
  await page.keyboard.press('Control+z');
  await until(
    async () => (await call(server, 'items.get', { id: itemId })).annotations.length === before.annotations.length,
    'the undo',
  );
  await page.getByText(/^Undid:/).waitFor();
  assert.equal(await page.getByText('a keyboard-made label').count(), 0);
  await page.keyboard.press('Control+Shift+z');
  await until(
    async () => (await call(server, 'items.get', { id: itemId })).annotations.length === before.annotations.length + 1,
    'the redo',
  );
  await page.getByText(/^Redid:/).waitFor();

  // next item with the keyboard
  await page.keyboard.press('Alt+ArrowDown');
  await until(() => !page.url().includes(`/items/${itemId}`), 'the next item');
  await page.getByText('2 of 6').waitFor();

  // restart: the page says the backend is gone while it is; the label is stored, and the history still knows how to undo it
  await server.stop('SIGTERM');
  await page.getByRole('alert').filter({ hasText: 'Lost the connection to Lenslab' }).waitFor();
  // the stopped server refuses new connections; one racing its stop on a kept-alive socket is reset
  await ui.closePage(page, { allow: /ERR_CONNECTION_REFUSED|ERR_CONNECTION_RESET|WebSocket connection/ });
  server = await ui.serve(dir);
  page = await ui.newPage();
  await page.goto(`${server.url}#/datasets/${saved.datasetId}/items/${itemId}`);
  await page.getByRole('heading', { name: /Label item/ }).waitFor();
  await until(
    () => page.locator('textarea').evaluateAll((els) => els.some((e) => (e as any).value === 'a keyboard-made label')),
    'the label in the editor',
  );
  const history = await call(server, 'datasets.history', { datasetId: saved.datasetId });
  assert.equal(history.canUndo, true);
  await page.getByRole('toolbar', { name: 'Item navigation' }).getByRole('button', { name: /Undo/ }).click();
  await until(
    async () => (await call(server, 'items.get', { id: itemId })).annotations.length === before.annotations.length,
    'the undo after a restart',
  );
  await page.screenshot({ path: screenshotPath('ui-labeling-after-restart') });
  await ui.closePage(page);
  await server.stop();
});
