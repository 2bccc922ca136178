// Importing a folder whose files carry the same questions twice (the demo folder: llava.json and vqa.jsonl) is
// flagged in the dataset's problems panel ("Same question twice"), never shown as ready to train.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { unlinkSync } from 'node:fs';
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

test('a folder with the same questions in two files is flagged as duplicate samples', async () => {
  const src = join(ui.dataDir('e2e-src-'), 'icons');
  await writeDemoDataset(src, { seed: 2, count: 5, families: ['shapes'] });
  unlinkSync(join(src, 'captions.jsonl'));
  const server = await ui.serve(ui.dataDir());
  const imp = await call(server, 'datasets.import', { path: src, dataset: 'icons folder' });
  const page = await ui.newPage();
  await page.goto(`${server.url}#/datasets/${imp.datasetId}`);
  await page.getByRole('button', { name: 'Check for problems' }).click();
  const lint = page.getByRole('region', { name: 'Dataset problems' });
  await lint.waitFor();
  await until(async () => !(await lint.innerText()).includes('checking'), 'the lint to finish');
  await lint.getByText('Same question twice').waitFor();
  assert.ok(!(await lint.innerText()).includes('ready to train'));
  const { findings } = await call(server, 'datasets.lintResults', {
    datasetId: imp.datasetId,
    rule: 'duplicate_sample',
  });
  assert.ok(findings.length >= 5, `${findings.length} duplicates`);
  await page.screenshot({ path: screenshotPath('ui-lint-duplicates') });
  await ui.closePage(page);
});
