// The first hour in the app: the sample dataset from the empty Datasets page, the quick-start preset on the Train
// page (with the equivalent CLI line), a run whose curves start at step 0 (the base model) beside the
// majority-answer baseline, then a chat with the fine-tune using the sampling settings.
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

test('sample dataset → quick-start preset → run with a step-0 baseline → chat with sampling settings', async () => {
  const server = await ui.serve(ui.dataDir());
  await call(server, 'models.installDemo', {});
  const page = await ui.newPage({ height: 900 });
  await page.goto(`${server.url}#/datasets`);
  await page.getByText('No datasets yet').waitFor();
  await page.getByRole('button', { name: 'Try the sample dataset' }).click();

  // Train opens on it with the preset
  await page.getByRole('heading', { name: 'Train', level: 1 }).waitFor({ timeout: 120_000 });
  await page
    .getByText(/^Quick start: LoRA r16 on every projection, lr 3e-3, 400 steps of 16/)
    .waitFor({ timeout: 30_000 });
  const { datasets } = await call(server, 'datasets.list', {});
  assert.deepEqual(
    datasets.map((d) => d.name),
    ['Sample: icons (shapes)'],
  );
  assert.ok(datasets[0].itemCount > 1000, `${datasets[0].itemCount} items`);
  await page.locator('summary').filter({ hasText: 'The same run from a terminal' }).click();
  const cli = await page.getByTestId('train-cli').innerText();
  assert.match(cli, /^lenslab train --model \S+ --data \d+ --out \S+ .*--steps 400/);
  assert.match(cli, /--lr 0\.003 .*--target-modules q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj/);
  assert.match(cli, /--eval-at-start true/);
  await page.getByLabel('Run name').fill('first-run');
  await page
    .getByText('Fits', { exact: true })
    .waitFor({ timeout: 120_000 })
    .catch(async (e) => {
      await page.screenshot({ path: screenshotPath('ui-first-run-fail'), fullPage: true });
      throw e;
    });
  await page.getByRole('button', { name: 'Start training' }).click();
  const monitor = page.getByRole('region', { name: 'Run first-run' });
  await monitor.waitFor({ timeout: 60_000 });
  const runId = (await call(server, 'runs.list', {})).runs[0].id;
  await until(
    async () => {
      const r = await call(server, 'runs.get', { id: runId });
      if (r.status === 'failed') throw new Error(`the run failed: ${JSON.stringify(r)}`);
      return r.status === 'completed';
    },
    'the run to complete',
    300_000,
    1000,
  );
  const m = await call(server, 'runs.metrics', { id: runId, names: ['eval_exact_match', 'eval_majority_baseline'] });
  const em = m.series.eval_exact_match;
  assert.equal(em.steps[0], 0, 'the base model is evaluated at step 0');
  assert.equal(em.steps.at(-1), 400);
  const base = em.values[0]!;
  const tuned = em.values.at(-1)!;
  const majority = m.series.eval_majority_baseline.values[0]!;
  assert.ok(tuned > base, `exact match rose from ${base} to ${tuned}`);
  assert.ok(majority > 0 && majority < 1, `majority baseline ${majority}`);
  await monitor.getByRole('heading', { name: 'first-run completed' }).waitFor({ timeout: 60_000 });
  const evalChart = page.getByRole('figure', { name: 'Evaluation', exact: true });
  const summary = (await evalChart.getByRole('img').getAttribute('aria-label')) ?? '';
  assert.match(summary, /Exact match/);
  assert.match(summary, /Always the most common answer/);
  await page.screenshot({ path: screenshotPath('ui-first-run') });

  // chat with the fine-tune: greedy, at most 8 tokens
  const adapterDir = (await call(server, 'runs.checkpoints', { id: runId })).finalDir!;
  await page.goto(`${server.url}#/chat?adapter=${encodeURIComponent(adapterDir)}`);
  await page.getByLabel('Your question').waitFor();
  await page.getByRole('button', { name: 'Settings', exact: true }).click();
  const panel = page.getByRole('region', { name: 'Chat settings' });
  await panel.getByLabel('Temperature').fill('0');
  await panel.getByLabel('Max tokens').fill('8');
  const src = join(ui.dataDir('e2e-src-'), 'icons');
  await writeDemoDataset(src, { seed: 99, count: 1, families: ['shapes'] });
  await page.getByTestId('chat-image-input').setInputFiles(join(src, 'images', '00000.png'));
  await page.getByRole('img', { name: /Attached: 00000\.png/ }).waitFor();
  await page.getByLabel('Your question').fill('What shape is at the top left?');
  await page.keyboard.press('Enter');
  await page.getByRole('button', { name: 'Send' }).waitFor({ timeout: 60_000 });
  const meta = page.getByRole('log').locator('.msg.role-assistant .meta');
  await until(
    async () => /End of turn|Max tokens reached/.test(await meta.innerText().catch(() => '')),
    'the answer and its stop reason',
  );
  const [c] = (await call(server, 'chats.list', {})).chats;
  assert.equal(c.adapterDir, adapterDir);
  assert.deepEqual(c.settings.options, { temperature: 0, maxNewTokens: 8 });

  // Runs: rename, archive (hidden until asked for), delete with its files after confirming
  await page.goto(`${server.url}#/runs`);
  const table = page.getByRole('table', { name: 'Runs' });
  await table.getByRole('button', { name: 'Rename first-run' }).click();
  await table.getByLabel('New name for first-run').fill('shapes quick start');
  await table.getByRole('button', { name: 'Save' }).click();
  await table.getByRole('link', { name: 'shapes quick start' }).waitFor();
  await table.getByRole('button', { name: 'Archive shapes quick start' }).click();
  await until(
    async () => (await table.getByRole('link', { name: 'shapes quick start' }).count()) === 0,
    'the archived run hidden',
  );
  await page.getByLabel('Show archived (1)').check();
  await table.getByRole('button', { name: 'Unarchive shapes quick start' }).waitFor();
  page.once('dialog', (d) => void d.accept());
  await table.getByRole('button', { name: 'Delete shapes quick start' }).click();
  await until(async () => (await call(server, 'runs.list', {})).runs.length === 0, 'the run deleted');
  const { existsSync } = await import('node:fs');
  assert.ok(!existsSync(adapterDir), 'its folder went with it');
  await ui.closePage(page);
});
