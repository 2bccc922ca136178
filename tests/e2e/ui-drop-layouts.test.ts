// The BLIP / BLIP-2 recipes' dataset layouts dropped on the Datasets page's DropZone in Chromium against
// `lenslab serve` (upload, then import): the icon-VQA parent, its train folder and its test_data folder, a Hugging Face
// `datasets` parquet folder (two shards, README.md card, dataset_info.json) and a COCO-Karpathy folder; a parquet
// whose image paths do not exist fails naming file, row and column, and stores nothing. The Train view then evaluates
// the icon-VQA dataset on its test items and fills its form from the blip-vqa-lora preset.
//
// The drop is a script-made DataTransfer (no entries), as in ui-drop.test.ts: useDropImport's entry-less path keeps
// the folders from each file's webkitRelativePath.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { screenshotPath } from './harness';
import { call, uiFixture, type UiFixture } from './ui-helpers';
import {
  HF_CAPTIONS,
  ICON_TEST,
  ICON_TRAIN,
  KARPATHY,
  cocoKarpathy,
  hfParquet,
  hfParquetPaths,
  iconVqa,
} from '../datasets/blip-layouts';

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
}

/** Every file under `root`, as 'name/sub/file' paths (the way a dropped folder reads). */
function folderFiles(root: string, name: string): DropFile[] {
  const out: DropFile[] = [];
  const walk = (dir: string, rel: string) => {
    for (const n of readdirSync(dir).sort()) {
      const p = join(dir, n);
      if (statSync(p).isDirectory()) walk(p, `${rel}/${n}`);
      else out.push({ relativePath: `${rel}/${n}`, base64: readFileSync(p).toString('base64') });
    }
  };
  walk(root, name);
  return out;
}

/** dragenter + dragover + drop of the files on the import zone; returns whether the drop was taken. */
async function dropFiles(page: Page, files: DropFile[]): Promise<boolean> {
  return page.evaluate((files) => {
    const g = globalThis as any;
    const target = g.document.querySelector('.dropzone.import');
    if (!target) throw new Error('no import drop zone');
    const dt = new g.DataTransfer();
    for (const f of files) {
      const bytes = Uint8Array.from(g.atob(f.base64), (c: string) => c.charCodeAt(0));
      const name: string = f.relativePath.split('/').pop() ?? '';
      const type = name.endsWith('.png')
        ? 'image/png'
        : name.endsWith('.jpg')
          ? 'image/jpeg'
          : name.endsWith('.json')
            ? 'application/json'
            : '';
      const file = new g.File([bytes], name, { type });
      Object.defineProperty(file, 'webkitRelativePath', { value: f.relativePath });
      dt.items.add(file);
    }
    const rect = target.getBoundingClientRect();
    const at = { clientX: rect.left + rect.width / 2, clientY: rect.top + rect.height / 2 };
    target.dispatchEvent(new g.DragEvent('dragenter', { dataTransfer: dt, bubbles: true, cancelable: true, ...at }));
    target.dispatchEvent(new g.DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true, ...at }));
    const ev = new g.DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true, ...at });
    target.dispatchEvent(ev);
    return ev.defaultPrevented;
  }, files);
}

test('drop the icon-VQA, HF parquet and COCO-Karpathy layouts: each imports with its splits and labels; a parquet with missing image paths stores nothing', async () => {
  const dir = ui.dataDir();
  const src = ui.dataDir('e2e-drop-layouts-src-');
  await iconVqa(join(src, 'iconqa'));
  await iconVqa(join(src, 'nested'), { train: 'icon_train' });
  await hfParquet(join(src, 'football-dataset'));
  await cocoKarpathy(join(src, 'coco'));
  await hfParquetPaths(join(src, 'broken-parquet'), false);

  const server = await ui.serve(dir);
  const page = await ui.newPage();
  await page.goto(server.url);
  await page.getByRole('heading', { name: 'Datasets', level: 1 }).waitFor();
  await page.getByRole('region', { name: 'Import a dataset: drop a folder or files here' }).waitFor();

  const datasetByName = async (name: string) =>
    (await call(server, 'datasets.list', {})).datasets.find((d) => d.name === name);
  const splitCount = async (datasetId: number, split: 'train' | 'val' | 'test') =>
    (await call(server, 'items.list', { datasetId, limit: 1, split })).total;
  const dropAndReport = async (root: string, name: string, expected: number) => {
    assert.equal(await dropFiles(page, folderFiles(root, name)), true, `the drop of ${name} is taken`);
    const report = page.getByRole('status', { name: `Import report for ${name}` });
    await report.waitFor({ timeout: 30_000 });
    assert.match(await report.innerText(), new RegExp(`Imported ${expected} items into “${name}”`));
    const ds = await datasetByName(name);
    assert.ok(ds, `dataset ${name} exists`);
    return ds!;
  };

  // icon-VQA, the parent: train.jsonl's pids with their images, test_data as the held-out split
  const icon = await dropAndReport(join(src, 'iconqa'), 'iconqa', ICON_TRAIN.length + ICON_TEST.length);
  assert.equal(await splitCount(icon.id, 'train'), ICON_TRAIN.length);
  assert.equal(await splitCount(icon.id, 'test'), ICON_TEST.length);
  const first = (await call(server, 'items.list', { datasetId: icon.id, limit: 1, split: 'train' })).items[0];
  const item = await call(server, 'items.get', { id: first.id });
  assert.deepEqual(
    item.annotations.map((a) => a.data),
    [{ question: ICON_TRAIN[0].question, answer: ICON_TRAIN[0].answer }],
  );
  assert.equal(
    item.provenance?.imageOriginal,
    `train_fill_in_blank/train_fill_in_blank/${ICON_TRAIN[0].pid}/image.png`,
  );
  await page.screenshot({ path: screenshotPath('ui-drop-layouts-icon') });

  // the train folder alone, then the test folder alone
  const train = await dropAndReport(join(src, 'nested', 'icon_train'), 'icon_train', ICON_TRAIN.length);
  assert.equal(await splitCount(train.id, 'train'), ICON_TRAIN.length);
  const testData = await dropAndReport(join(src, 'nested', 'test_data'), 'test_data', ICON_TEST.length);
  assert.equal(
    await splitCount(testData.id, 'test'),
    ICON_TEST.length,
    'a dropped test_data folder is the held-out split',
  );

  // train.jsonl and its image tree dropped together (two entries): the layout again, whatever the batch is named
  const pair = [
    { relativePath: 'train.jsonl', base64: readFileSync(join(src, 'iconqa', 'train.jsonl')).toString('base64') },
    ...folderFiles(join(src, 'iconqa', 'train_fill_in_blank'), 'train_fill_in_blank'),
  ];
  assert.equal(await dropFiles(page, pair), true);
  const pairReport = page.getByRole('status', { name: /^Import report for / });
  await pairReport.waitFor({ timeout: 30_000 });
  assert.match(await pairReport.innerText(), new RegExp(`Imported ${ICON_TRAIN.length} items into`));
  const newest = (await call(server, 'datasets.list', {})).datasets.reduce((a, b) => (b.id > a.id ? b : a));
  assert.equal(await splitCount(newest.id, 'train'), ICON_TRAIN.length);

  // HF datasets parquet: two shards, the card and dataset_info.json beside them
  const football = await dropAndReport(join(src, 'football-dataset'), 'football-dataset', HF_CAPTIONS.length);
  assert.equal(await splitCount(football.id, 'train'), HF_CAPTIONS.length);
  const captions = (await call(server, 'items.list', { datasetId: football.id, limit: 10 })).items;
  assert.equal(captions.length, HF_CAPTIONS.length);
  const texts = await Promise.all(
    captions.map(
      async (c) => ((await call(server, 'items.get', { id: c.id })).annotations[0].data as { text: string }).text,
    ),
  );
  assert.deepEqual(texts.sort(), [...HF_CAPTIONS].sort());

  // COCO-Karpathy: captions of one image are one item
  const coco = await dropAndReport(join(src, 'coco'), 'coco', new Set(KARPATHY.map((k) => k.image)).size);
  const cocoItems = (await call(server, 'items.list', { datasetId: coco.id, limit: 10 })).items;
  const counts = await Promise.all(
    cocoItems.map(async (c) => (await call(server, 'items.get', { id: c.id })).annotations.length),
  );
  assert.deepEqual(counts.sort(), [1, 1, 2]);
  await page.screenshot({ path: screenshotPath('ui-drop-layouts-coco') });

  // a parquet whose image structs name files that are not there: the error names file, row and column; no dataset
  const before = (await call(server, 'datasets.list', {})).datasets.length;
  assert.equal(await dropFiles(page, folderFiles(join(src, 'broken-parquet'), 'broken-parquet')), true);
  const alert = page.getByRole('alert').filter({ hasText: 'The import failed' });
  await alert.waitFor({ timeout: 30_000 });
  assert.match(
    await alert.innerText(),
    /train-00000-of-00001\.parquet\[0\]\.image\.path: file not found: images\/p0\.png/,
  );
  assert.equal((await call(server, 'datasets.list', {})).datasets.length, before, 'nothing stored');
  assert.equal(await datasetByName('broken-parquet'), undefined);
  await page.screenshot({ path: screenshotPath('ui-drop-layouts-error') });

  // the Train view on the icon-VQA dataset: no validation items, so it evaluates on the held-out test items; the
  // blip-vqa-lora preset fills the form with editable values and says plainly when BLIP cannot be trained here
  await page.goto(`${server.url}#/train?dataset=${icon.id}`);
  await page.getByRole('heading', { name: 'Train', level: 1 }).waitFor();
  await page
    .getByText(`This dataset has no validation items: the run evaluates on its ${ICON_TEST.length} test items`, {
      exact: false,
    })
    .waitFor();
  assert.equal(await page.locator('#eval-split').inputValue(), 'test');
  await page.locator('#train-recipe').selectOption('blip-vqa-lora');
  await page.getByText(/^Preset blip-vqa-lora:/).waitFor();
  assert.equal(await page.getByLabel('LoRA rank', { exact: true }).inputValue(), '16');
  assert.equal(await page.getByLabel('LoRA alpha', { exact: true }).inputValue(), '32');
  assert.equal(Number(await page.getByLabel('Learning rate', { exact: true }).inputValue()), 4e-5);
  assert.equal(await page.getByLabel('Batch size', { exact: true }).inputValue(), '8');
  assert.equal(await page.getByLabel('Epochs', { exact: true }).inputValue(), '1');
  const info = await call(server, 'system.info', {});
  const problem = page.getByTestId('recipe-problem');
  if (!(info.modelTypes ?? []).includes('blip')) {
    await problem.waitFor();
    assert.match(
      await problem.innerText(),
      /^The blip-vqa-lora preset is for BLIP models \(BlipForQuestionAnswering, config\.json model_type "blip"\)\. The app cannot train BLIP models yet; train them from a terminal: lenslab train --model BLIP_VQA_DIR/,
    );
  }
  // the values stay editable
  await page.getByLabel('LoRA rank', { exact: true }).fill('8');
  assert.equal(await page.getByLabel('LoRA rank', { exact: true }).inputValue(), '8');
  await page.screenshot({ path: screenshotPath('ui-drop-layouts-train-preset') });
  await ui.closePage(page, { allow: /Failed to load resource|the server responded with a status of/ });
  await server.stop();
});
