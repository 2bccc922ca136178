// A real drop onto the Datasets page's DropZone in Chromium against `lenslab serve`: dragenter/dragover/drop
// events carrying a DataTransfer with the dataset's files (built in the page from bytes, each with its
// folder-relative path), the drag-over highlight, the import report, then labeling with the keyboard, undo,
// redo, and a server restart that keeps the label. (ui-datasets.test.ts imports through the folder picker.)
//
// A DataTransfer made by a script gives no entries (Chromium's webkitGetAsEntry() returns null), so this drop
// goes through useDropImport's entry-less path, which keeps folders from each file's webkitRelativePath.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
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

interface DropFile {
  relativePath: string;
  base64: string;
  type: string;
}

/** Every file under `root`, as 'name/sub/file' paths below root's parent (the way a dropped folder reads). */
function folderFiles(root: string, name: string): DropFile[] {
  const out: DropFile[] = [];
  const walk = (dir: string, rel: string) => {
    for (const n of readdirSync(dir).sort()) {
      const p = join(dir, n);
      if (statSync(p).isDirectory()) walk(p, `${rel}/${n}`);
      else
        out.push({
          relativePath: `${rel}/${n}`,
          base64: readFileSync(p).toString('base64'),
          type: n.endsWith('.png') ? 'image/png' : n.endsWith('.json') ? 'application/json' : '',
        });
    }
  };
  walk(root, name);
  return out;
}

/** Build the files in the page, put them in a DataTransfer (kept on window for the drop), and fire dragenter + dragover. */
async function dragOver(
  page: Page,
  selector: string,
  files: DropFile[],
): Promise<{ entries: number; prevented: boolean }> {
  return page.evaluate(
    ({ selector, files }) => {
      const g = globalThis as any;
      const target = g.document.querySelector(selector);
      if (!target) throw new Error(`no drop target ${selector}`);
      const dt = new g.DataTransfer();
      for (const f of files) {
        const bytes = Uint8Array.from(g.atob(f.base64), (c: string) => c.charCodeAt(0));
        const file = new g.File([bytes], f.relativePath.split('/').pop(), { type: f.type });
        // a File made by a script has an empty webkitRelativePath: give it the folder path a drop would carry
        Object.defineProperty(file, 'webkitRelativePath', { value: f.relativePath });
        dt.items.add(file);
      }
      g.__lenslabDrop = dt;
      const rect = target.getBoundingClientRect();
      const at = { clientX: rect.left + rect.width / 2, clientY: rect.top + rect.height / 2 };
      target.dispatchEvent(new g.DragEvent('dragenter', { dataTransfer: dt, bubbles: true, cancelable: true, ...at }));
      const over = new g.DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true, ...at });
      target.dispatchEvent(over);
      let entries = 0;
      for (const item of dt.items) if (item.webkitGetAsEntry()) entries++;
      return { entries, prevented: over.defaultPrevented };
    },
    { selector, files },
  );
}

async function drop(page: Page, selector: string): Promise<boolean> {
  return page.evaluate((selector) => {
    const g = globalThis as any;
    const target = g.document.querySelector(selector);
    const ev = new g.DragEvent('drop', { dataTransfer: g.__lenslabDrop, bubbles: true, cancelable: true });
    target.dispatchEvent(ev);
    delete g.__lenslabDrop;
    return ev.defaultPrevented;
  }, selector);
}

test('drop a folder on the DropZone (drag-over highlight, import report), label with the keyboard, undo, redo, restart: the label persists', async (t) => {
  const dir = ui.dataDir();
  const src = join(ui.dataDir('e2e-drop-src-'), 'icons');
  await writeDemoDataset(src, { seed: 5, count: 4, families: ['colors'] });
  const files = folderFiles(src, 'icons');
  assert.ok(
    files.some((f) => f.relativePath === 'icons/images/00000.png'),
    'the demo folder has images under images/',
  );

  let server = await ui.serve(dir);
  let page = await ui.newPage();
  await page.goto(server.url);
  await page.getByRole('heading', { name: 'Datasets', level: 1 }).waitFor();
  const zone = page.getByRole('region', { name: 'Import a dataset: drop a folder or files here' });
  await zone.waitFor();
  const selector = '.dropzone.import';
  assert.equal(await page.locator(selector).count(), 1);

  // drag over: the zone takes the drag (dragover prevented) and shows its highlight
  const over = await dragOver(page, selector, files);
  assert.equal(over.prevented, true, 'dragover is prevented so that the drop is allowed');
  t.diagnostic(
    `items with a webkitGetAsEntry() entry: ${over.entries} of ${files.length} (0: the entry-less path is used)`,
  );
  await page.locator(`${selector}.dragging`).waitFor();
  await zone.getByText('Release to import').waitFor();
  const border = await zone.locator('.box').evaluate((el) => (globalThis as any).getComputedStyle(el).borderTopStyle);
  assert.equal(border, 'solid', 'the dashed border turns solid while dragging');
  await page.screenshot({ path: screenshotPath('ui-drop-dragover') });

  // drop: the highlight goes, the files upload, and the report names the folder
  assert.equal(await drop(page, selector), true, 'the drop is handled (default prevented)');
  assert.equal(await page.locator(`${selector}.dragging`).count(), 0);
  const report = page.getByRole('status', { name: /Import report for icons/ });
  await report.waitFor({ timeout: 20_000 });
  assert.match(await report.innerText(), /Imported 4 items into “icons”/);
  await page.screenshot({ path: screenshotPath('ui-drop-imported') });
  await report.getByRole('button', { name: 'Open dataset' }).click();

  await page.getByRole('heading', { name: 'icons', level: 1 }).waitFor();
  const grid = page.getByRole('listbox', { name: 'Items in icons' });
  await grid.getByRole('option').first().waitFor();
  assert.equal(await grid.getByRole('option').count(), 4);
  const datasetId = Number(/datasets\/(\d+)/.exec(page.url())![1]);

  // open the first item with the keyboard and add a QA pair
  await grid.getByRole('option').first().focus();
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: /Label item/ }).waitFor();
  const itemId = Number(/items\/(\d+)/.exec(page.url())![1]);
  const before = await call(server, 'items.get', { id: itemId });
  // the images were found under the dropped folder's images/ (a flattened drop would lose them)
  assert.match(before.provenance?.imageOriginal ?? '', /images\/\d+\.png$/);
  await page.getByRole('form', { name: `Annotations of item ${itemId}` }).waitFor();
  await page.keyboard.press('Alt+q');
  await page.keyboard.type('Which color fills it?');
  await page.keyboard.press('Tab');
  await page.keyboard.type('a dropped label');
  await page.keyboard.press('Control+s');
  const saved = await until(async () => {
    const it = await call(server, 'items.get', { id: itemId });
    return it.annotations.length === before.annotations.length + 1 ? it : null;
  }, 'the saved QA pair');
  assert.deepEqual(saved.annotations[saved.annotations.length - 1].data, {
    question: 'Which color fills it?',
    answer: 'a dropped label',
  });
  // Mod+Z undoes the draft while it still differs from what is stored, so wait until the editor has taken the
  // saved annotations back (status "Saved") and the saved change is what Undo would take back.
  await page
    .getByRole('form', { name: `Annotations of item ${itemId}` })
    .getByRole('status')
    .getByText('Saved', { exact: true })
    .waitFor();
  await page.locator('button[title^="Undo: "]:not([disabled])').first().waitFor();

  // undo, redo with the keyboard
  await page.keyboard.press('Control+z');
  await until(
    async () => (await call(server, 'items.get', { id: itemId })).annotations.length === before.annotations.length,
    'the undo',
  );
  await page.getByText(/^Undid:/).waitFor();
  await page.keyboard.press('Control+Shift+z');
  await until(
    async () => (await call(server, 'items.get', { id: itemId })).annotations.length === before.annotations.length + 1,
    'the redo',
  );
  await page.getByText(/^Redid:/).waitFor();
  await ui.closePage(page);

  // restart: the redone label is still there, in the API and in the editor
  await server.stop('SIGTERM');
  server = await ui.serve(dir);
  const after = await call(server, 'items.get', { id: itemId });
  assert.deepEqual(
    after.annotations.map((a) => a.data),
    saved.annotations.map((a) => a.data),
  );
  page = await ui.newPage();
  await page.goto(`${server.url}#/datasets/${datasetId}/items/${itemId}`);
  await page.getByRole('heading', { name: /Label item/ }).waitFor();
  await until(
    () => page.locator('textarea').evaluateAll((els) => els.some((e) => (e as any).value === 'a dropped label')),
    'the label in the editor after a restart',
  );
  await page.screenshot({ path: screenshotPath('ui-drop-after-restart') });
  await ui.closePage(page);
  await server.stop();
});
