// Search a dataset's images by content in the grid: with no CLIP/SigLIP model the page says how to get one; with a
// tiny CLIP and a contrastive adapter trained on the generated colour/shape captions, a text query ranks the
// images of that colour and shape first (progress while the images are embedded once, then from the cache), and
// "More like this" on one item puts that item first.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { screenshotPath } from './harness';
import { call, uiFixture, until, type UiFixture } from './ui-helpers';
import { writeTinyContrastive } from '../../src-main/models/demo/tiny-contrastive';
import { writeContrastiveDataset } from '../../src-main/models/demo/contrastive-dataset';
import { loadContrastive } from '../../src-main/models/families/contrastive/model';
import { trainContrastiveToFolder } from '../../src-main/training/contrastive';
import { readPairs } from '../../src-main/transport/cli/contrastive';

// the contrastive demo's recipe (15 epochs of LoRA on the 160 training pairs, a few seconds); on these images the
// tiny model then ranks 7 of the 8 blue stars in the top 8 for "a blue star" (chance: 0.4)
const EPOCHS = 15;
const QUERY = 'a blue star';
const MIN_TOP8 = 5;

let ui: UiFixture;
before(async () => {
  ui = await uiFixture();
});
after(async () => {
  await ui?.cleanup();
});

const flat = (s: string) => s.replace(/\s+/g, ' ');

/** The grid's items in display order (their accessible names are their captions). */
async function gridCaptions(page: Page, name: string): Promise<string[]> {
  const opts = page.getByRole('listbox', { name }).getByRole('option');
  const list = await opts.evaluateAll((els) =>
    els.map((e) => [Number(e.getAttribute('aria-posinset')), e.getAttribute('aria-label') ?? ''] as const),
  );
  return list.sort((a, b) => a[0] - b[0]).map((x) => x[1]);
}

test('text search in the dataset grid ranks the matching images first; more like this puts the item first', async () => {
  const src = ui.dataDir('e2e-clip-');
  const model = join(src, 'clip');
  const data = join(src, 'shapes');
  const adapter = join(src, 'adapter');
  writeTinyContrastive(model, 'clip', 1, {
    imageSize: 32,
    patchSize: 8,
    hidden: 64,
    layers: 2,
    heads: 4,
    std: 0.1,
    textPositions: 32,
  });
  await writeContrastiveDataset(data);
  const m = loadContrastive(model);
  const pairs = (await readPairs(data, { split: 'train' })).map((p) => ({ image: p.image, text: p.text! }));
  await trainContrastiveToFolder(m, pairs, { method: 'lora', epochs: EPOCHS, batchSize: 16, lr: 3e-3 }, adapter);
  m.close();

  const server = await ui.serve(ui.dataDir());
  const imp = await call(server, 'datasets.import', { path: join(data, 'train'), dataset: 'shapes' });
  const page = await ui.newPage();
  await page.goto(`${server.url}#/datasets/${imp.datasetId}`);
  const gridName = 'Items in shapes';
  await page.getByRole('listbox', { name: gridName }).getByRole('option').first().waitFor();
  const finder = page.getByRole('region', { name: 'Search by image content' });

  // no CLIP / SigLIP registered: the page says what to add instead of offering a search that cannot run
  await finder.getByRole('note').waitFor();
  assert.match(await finder.innerText(), /add a CLIP or SigLIP model/);
  assert.equal(await finder.getByRole('search').count(), 0);

  await call(server, 'models.import', { path: model, name: 'tiny CLIP' });
  await page.reload();
  const form = finder.getByRole('search', { name: 'Search images by content' });
  await form.waitFor();
  assert.equal(
    await form.getByLabel('Search model').inputValue(),
    String((await call(server, 'models.list', {})).models[0].id),
  );
  await form.getByLabel('Contrastive adapter folder').fill(adapter);
  await form.getByLabel('Describe the images to find').fill(QUERY);
  await form.getByRole('button', { name: 'Find images' }).click();
  const status = finder.getByRole('status');
  await status.getByText('ranked by similarity').waitFor({ timeout: 60_000 });
  assert.match(
    flat(await status.innerText()),
    /160 images ranked by similarity to “a blue star”[\s\S]*tiny CLIP \+ adapter · 160 embedded, 0 from cache/,
  );
  const ranked = await gridCaptions(page, gridName);
  // the 8 blue stars of the 160 images: the first result is one, and most of them rank in the top 8
  assert.match(ranked[0], /blue star/, `first result: ${ranked[0]}`);
  const top8 = ranked.slice(0, 8).filter((c) => /blue star/.test(c)).length;
  assert.ok(top8 >= MIN_TOP8, `${top8} of the top 8 are blue stars: ${ranked.slice(0, 8).join(' | ')}`);
  await page.screenshot({ path: screenshotPath('ui-image-search-text') });

  // a second query reads every vector from the cache
  await form.getByLabel('Describe the images to find').fill('a red square');
  await form.getByRole('button', { name: 'Find images' }).click();
  await status.getByText('“a red square”').waitFor();
  assert.match(flat(await status.innerText()), /0 embedded, 160 from cache/);

  // more like this: select one item, its image is the query, it comes first
  const grid = page.getByRole('listbox', { name: gridName });
  const picked = (await gridCaptions(page, gridName))[5];
  await grid.locator('[aria-posinset="6"]').click();
  await page
    .getByRole('toolbar', { name: 'Actions on the selected items' })
    .getByRole('button', { name: 'More like this' })
    .click();
  await status.getByText('ranked by similarity to the image of').waitFor();
  assert.equal((await gridCaptions(page, gridName))[0], picked);
  assert.equal(await grid.locator('[aria-posinset="1"] .chip.score').innerText(), '1.00');

  await finder.getByRole('button', { name: 'Clear search' }).click();
  await until(async () => (await finder.getByRole('status').count()) === 0, 'the search to clear');
  await page.screenshot({ path: screenshotPath('ui-image-search-cleared') });

  // the linter compares the images with the same model: the random base model finds these generated icons alike
  await page
    .getByLabel('Model to find near-duplicate images with')
    .selectOption({ label: 'Near-duplicate images: tiny CLIP' });
  await page.getByLabel('Near-duplicate image threshold').fill('0.99');
  await page.getByRole('button', { name: 'Check for problems' }).click();
  const lint = page.getByRole('region', { name: 'Dataset problems' });
  await lint.getByText('Near-duplicate images').waitFor({ timeout: 60_000 });
  const { findings } = await call(server, 'datasets.lintResults', {
    datasetId: imp.datasetId,
    rule: 'near_duplicate_image',
  });
  assert.ok(findings.length > 0);
  assert.match(
    findings[0].message,
    /near-duplicate of the image of item \d+.*cosine (0\.99\d+|1\.0000) ≥ 0\.99 with tiny CLIP/,
  );
  await ui.closePage(page);
});
