// Training from the UI on the tiny demo model: set up a short run, start it, watch the loss chart gain points,
// pause, resume, and find the run in Runs with its curve.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { screenshotPath } from './harness';
import { call, horizontalOverflow, uiFixture, until, type UiFixture } from './ui-helpers';
import { writeDemoDataset } from '../../src-main/models/demo/dataset';

let ui: UiFixture;
before(async () => {
  ui = await uiFixture();
});
after(async () => {
  await ui?.cleanup();
});

/** Steps of the run (see the test). */
const STEPS = 2000;

/** A hyperparameter's text box (its label also names the reset button next to it). */
const field = (page: Page, name: string) => page.getByRole('textbox', { name, exact: true });

/** Points in a chart's series, read from its accessible summary ("train loss 2.1 at step 5 (5 points)"). */
async function chartPoints(page: Page, chart: string, series: string): Promise<number> {
  const label =
    (await page.getByRole('figure', { name: chart, exact: true }).getByRole('img').getAttribute('aria-label')) ?? '';
  const m = new RegExp(`${series} [^;]* \\((\\d+) points\\)`).exec(label);
  return m ? Number(m[1]) : 0;
}

test('start a short run on the demo model, the loss chart grows, pause, resume, the run shows in Runs with its curve', async () => {
  const dir = ui.dataDir();
  const src = join(ui.dataDir('e2e-src-'), 'icons');
  await writeDemoDataset(src, { seed: 5, count: 10, families: ['colors'] });
  const server = await ui.serve(dir);
  const ds = await call(server, 'datasets.import', { path: join(src, 'llava.json'), dataset: 'icons' });

  const page = await ui.newPage({ height: 900 });
  await page.goto(`${server.url}#/train?dataset=${ds.datasetId}`);
  await page.getByRole('heading', { name: 'Train', level: 1 }).waitFor();
  await page.getByRole('button', { name: 'Add the demo model' }).click();
  await until(
    async () => (await page.getByLabel('Base model').inputValue()) !== '',
    'the demo model in the picker',
    30_000,
  );

  // a run of STEPS steps of 2 samples, a checkpoint every STEPS / 4. A demo-model step takes a few ms, so the run
  // is long enough (seconds, more under load) for the Pause click, which follows the chart's first points, to land
  // mid-run: with 24 steps the run completed before the click arrived and never paused.
  await page.getByLabel('Train for').selectOption('steps');
  await field(page, 'Steps').fill(String(STEPS));
  await field(page, 'Batch size').fill('2');
  await field(page, 'Learning rate').fill('2e-3');
  // inline validation in words
  await field(page, 'LoRA rank').fill('0');
  await page.getByText('Must be at least 1').waitFor();
  await field(page, 'LoRA rank').fill('4');
  await page.locator('summary').filter({ hasText: 'Advanced' }).click();
  await field(page, 'Checkpoint every').fill(String(STEPS / 4));
  await page.getByLabel('Run name').fill('icons-demo-lora');
  await page.getByLabel('Device').selectOption('cpu');
  const plan = page.getByRole('definition').filter({ hasText: new RegExp(`^${STEPS} \\(`) });
  await plan.waitFor({ timeout: 60_000 });
  await page.getByText('Fits', { exact: true }).waitFor({ timeout: 60_000 });
  await page.screenshot({ path: screenshotPath('ui-train-setup') });

  await page.getByRole('button', { name: 'Start training' }).click();
  const monitor = page.getByRole('region', { name: 'Run icons-demo-lora' });
  await monitor.waitFor({ timeout: 60_000 });
  await until(async () => (await chartPoints(page, 'Loss', 'train loss')) >= 2, 'loss points', 120_000);
  // where it runs and why (the trainer's device line). A regex hasText sees the raw textContent, where the template's
  // line breaks leave a space at either end that the page does not show: allow it.
  await monitor
    .getByLabel('Device')
    .filter({ hasText: /^\s*Runs on CPU · chosen for this run\s*$/ })
    .waitFor({ timeout: 60_000 });
  await page.screenshot({ path: screenshotPath('ui-train-running') });

  // pause: the job finishes its step, checkpoints and stops
  await monitor.getByRole('button', { name: /Pause/ }).click();
  const settled = await until(
    async () => {
      const r = (await call(server, 'runs.list', {})).runs[0];
      return r && r.status !== 'running' && r;
    },
    'the run to stop running after Pause',
    120_000,
  );
  assert.equal(
    settled.status,
    'paused',
    `the run paused (it is ${settled.status} at step ${settled.step}/${settled.totalSteps})`,
  );
  await monitor.getByRole('heading', { name: 'icons-demo-lora paused' }).waitFor({ timeout: 60_000 });
  const runs = (await call(server, 'runs.list', {})).runs;
  assert.equal(runs.length, 1);
  const pausedAt = runs[0].step;
  assert.equal(runs[0].status, 'paused');
  assert.ok(pausedAt >= 2 && pausedAt < STEPS, `paused mid-run (step ${pausedAt})`);
  await page.screenshot({ path: screenshotPath('ui-train-paused') });

  await monitor.getByRole('button', { name: /Resume/ }).click();
  await until(
    async () => (await call(server, 'runs.get', { id: runs[0].id })).step > pausedAt,
    'steps after the resume',
    120_000,
  );
  await until(async () => (await chartPoints(page, 'Loss', 'train loss')) > pausedAt, 'the chart continuing', 60_000);
  await until(
    async () => (await call(server, 'runs.get', { id: runs[0].id })).status === 'completed',
    'the run to complete',
    180_000,
  );
  await monitor.getByRole('heading', { name: 'icons-demo-lora completed' }).waitFor({ timeout: 60_000 });
  const metrics = await call(server, 'runs.metrics', { id: runs[0].id, names: ['loss'] });
  assert.equal(metrics.series.loss.steps.length, STEPS, 'one loss point per step across the pause');

  // Runs: the row, and its curve in the comparison chart
  await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Runs' }).click();
  const row = page.getByRole('table', { name: 'Runs' }).getByRole('row').filter({ hasText: 'icons-demo-lora' });
  await row.waitFor({ timeout: 60_000 });
  assert.match(await row.innerText(), /completed/);
  assert.match(await row.innerText(), /lora r4/);
  await until(
    async () => (await chartPoints(page, 'loss', 'icons-demo-lora')) === STEPS,
    'the run curve in Runs',
    60_000,
  );
  await page.screenshot({ path: screenshotPath('ui-runs') });
  // a narrow window: the wide runs table scrolls in its own box, the page does not scroll sideways
  await page.setViewportSize({ width: 900, height: 900 });
  await until(async () => (await horizontalOverflow(page)) <= 0, 'the runs page to fit a 900 px window');
  await page.setViewportSize({ width: 1280, height: 900 });

  // the run page: charts, checkpoints, predictions of the final evaluation
  await row.getByRole('link', { name: 'icons-demo-lora' }).click();
  await page.getByRole('table', { name: 'Checkpoints' }).waitFor({ timeout: 60_000 });
  const preds = page.getByRole('region', { name: 'Predictions per evaluation' });
  await preds
    .getByRole('region', { name: 'Predictions' })
    .getByText(/^Question$/)
    .first()
    .waitFor({ timeout: 60_000 });
  // base vs fine-tuned on the same items: evaluate the base model, its answers appear beside the run's
  await preds.getByRole('button', { name: 'Evaluate the base model on the same items' }).click();
  await preds.getByRole('radio', { name: /Changed vs Base/ }).waitFor({ timeout: 120_000 });
  await preds.getByRole('definition').filter({ hasText: /./ }).first().waitFor({ timeout: 60_000 });
  assert.ok(
    (await preds
      .getByRole('term')
      .filter({ hasText: /^Base$/ })
      .count()) > 0,
    'the base answers are shown',
  );
  await page.locator('main.content').evaluate((el) => el.scrollTo(0, 0));
  await page.screenshot({ path: screenshotPath('ui-run-detail') });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.locator('main.content').evaluate((el) => el.scrollTo(0, 10_000));
  await page.screenshot({ path: screenshotPath('ui-run-detail-dark') });

  // from the run to a side-by-side chat with its final adapter
  await page.emulateMedia({ colorScheme: 'light' });
  await page.getByRole('button', { name: 'Chat: base vs fine-tuned' }).click();
  await page.getByRole('heading', { name: 'Chat', level: 1 }).waitFor({ timeout: 60_000 });
  await page.getByRole('region', { name: /^Base: Demo: tiny LLaVA/ }).waitFor({ timeout: 60_000 });
  await page.getByRole('region', { name: 'Fine-tuned: icons-demo-lora (final)' }).waitFor({ timeout: 60_000 });

  // the labeling view tokenizes an item for the model: which tokens are in the loss
  const item = (await call(server, 'items.list', { datasetId: ds.datasetId, limit: 1 })).items[0];
  await page.goto(`${server.url}#/datasets/${ds.datasetId}/items/${item.id}`);
  await page.getByRole('button', { name: 'Show tokens' }).click();
  const tokens = page.getByText(/tokens in the loss/).first();
  await tokens.waitFor({ timeout: 60_000 });
  assert.match(await tokens.innerText(), /[1-9]\d* of \d+ tokens in the loss/);
  await page.screenshot({ path: screenshotPath('ui-labeling-tokens'), fullPage: false });

  // Models: export the run's final adapter; the result shows next to the form (not out of sight at the page's top),
  // and the merge form already names the run's base model
  await page.goto(`${server.url}#/models`);
  const adapters = page.getByRole('region', { name: 'Fine-tuned adapters' });
  await adapters.getByLabel('Adapter', { exact: true }).selectOption({ label: 'icons-demo-lora (final)' });
  assert.equal(await adapters.getByLabel('Base model').inputValue(), String(runs[0].modelId));
  const exportDir = join(ui.dataDir('e2e-export-'), 'adapter');
  await adapters.getByLabel('Empty folder to write to').fill(exportDir);
  await adapters.getByRole('button', { name: 'Export adapter' }).click();
  await adapters
    .getByRole('status')
    .filter({ hasText: `to ${exportDir}` })
    .waitFor({ timeout: 30_000 });
  await ui.closePage(page);
  await server.stop();
});
