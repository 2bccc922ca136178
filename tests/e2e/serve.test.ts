import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import type { Browser, Page } from 'playwright-core';
import { launchBrowser, screenshotPath, startServe, type ServeProcess } from './harness';
import { tempDir } from '../helpers/tmp';
import { openDatabase, closeDatabase } from '../../src-main/storage/database';
import { databasePath } from '../../src-main/storage/data-dir';
import { insertDataset } from '../../src-main/storage/datasets-queries';
import { insertRun, updateRunStatus } from '../../src-main/storage/runs-queries';

let browser: Browser;
const servers: ServeProcess[] = [];
const dirs: { cleanup(): void }[] = [];

before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  for (const s of servers) await s.stop('SIGKILL');
  for (const d of dirs) d.cleanup();
});

async function serve(dataDir: string): Promise<ServeProcess> {
  const s = await startServe(dataDir);
  servers.push(s);
  return s;
}
function dataDir(): string {
  const t = tempDir('e2e-');
  dirs.push(t);
  return t.dir;
}
/** Errors the page logged (uncaught exceptions, console errors such as CSP violations or failed loads). */
const pageErrors = new WeakMap<Page, string[]>();
async function newPage(): Promise<Page> {
  const ctx = await browser.newContext({ viewport: { width: 1200, height: 760 } });
  const page = await ctx.newPage();
  const errors: string[] = [];
  pageErrors.set(page, errors);
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console error: ${m.text()} at ${m.location().url}`);
  });
  return page;
}
async function closePage(page: Page): Promise<void> {
  const errors = pageErrors.get(page) ?? [];
  await page.context().close();
  assert.deepEqual(errors, [], 'the page logged no errors');
}

test('create a dataset through the UI, restart the server, it is still there; rename and delete it', async () => {
  const dir = dataDir();
  let server = await serve(dir);
  let page = await newPage();
  await page.goto(server.url);
  await page.getByRole('heading', { name: 'Datasets', level: 1 }).waitFor();
  await page.getByText('No datasets yet').waitFor();
  assert.equal(await page.getByRole('status', { name: /Backend connection: open/ }).count(), 1);
  // the token leaves the address bar (history, bookmarks) once the page has it; a reload still works
  assert.ok(!page.url().includes('token='), page.url());
  await page.reload();
  await page.getByText('No datasets yet').waitFor();
  await page.getByRole('status', { name: /Backend connection: open/ }).waitFor();

  // a validation error from the backend is shown next to the form
  await page.getByLabel('Name', { exact: true }).fill('   ');
  await page.getByRole('button', { name: 'Create dataset' }).click();
  await page.getByRole('alert').filter({ hasText: 'name: must not be empty' }).waitFor();

  await page.getByLabel('Name', { exact: true }).fill('Garden birds');
  await page.getByLabel(/Description/).fill('Feeder camera, spring');
  await page.getByRole('button', { name: 'Create dataset' }).click();
  // the new (empty) dataset opens, ready for images
  await page.getByRole('heading', { name: 'Garden birds', level: 1 }).waitFor();
  await page.getByText('This dataset is empty').waitFor();
  await page.getByRole('navigation', { name: 'Breadcrumb' }).getByRole('link', { name: 'Datasets' }).click();
  const row = page.getByRole('row').filter({ hasText: 'Garden birds' });
  await row.waitFor();
  assert.match(await row.innerText(), /Feeder camera, spring/);
  await page.screenshot({ path: screenshotPath('datasets') });
  await closePage(page);

  await server.stop('SIGTERM');
  server = await serve(dir);
  page = await newPage();
  await page.goto(server.url);
  await page.getByRole('row').filter({ hasText: 'Garden birds' }).waitFor();
  assert.equal(await page.getByText('No datasets yet').count(), 0);

  await page.getByRole('button', { name: 'Rename Garden birds' }).click();
  await page.getByLabel('New name for Garden birds').fill('Backyard birds');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByRole('row').filter({ hasText: 'Backyard birds' }).waitFor();

  page.once('dialog', (d) => void d.accept());
  await page.getByRole('button', { name: 'Delete Backyard birds' }).click();
  await page.getByText('No datasets yet').waitFor();
  await closePage(page);
  await server.stop();
});

test('every section renders; runs and datasets come from the backend', async () => {
  const dir = dataDir();
  const db = openDatabase(databasePath(dir));
  const ds = insertDataset(db, { name: 'Receipts' });
  const run = insertRun(db, { name: 'receipts-lora-r8', config: { rank: 8 }, datasetId: ds.id, totalSteps: 200 });
  updateRunStatus(db, run.id, 'running', { step: 50 });
  closeDatabase(db);

  const server = await serve(dir);
  const page = await newPage();
  await page.goto(server.url);
  await page.getByRole('row').filter({ hasText: 'Receipts' }).waitFor();
  for (const [section, expectText] of [
    ['Train', 'Choose a dataset'],
    ['Runs', 'receipts-lora-r8'],
    ['Chat', 'No conversations yet'],
    ['Models', 'No models yet'],
    ['Datasets', 'Receipts'],
  ] as const) {
    await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: section }).click();
    await page.getByRole('heading', { name: section, level: 1 }).waitFor();
    await page.getByText(expectText).first().waitFor();
    assert.equal(await page.title(), `${section} · Lenslab`);
    // the sections that need a model offer the demo model in one click
    // Train names the problem with the (empty) dataset next to its picker
    if (section === 'Train') await page.getByText('“Receipts” has no items yet').waitFor();
    if (section === 'Chat' || section === 'Models')
      assert.equal(await page.getByRole('button', { name: 'Add the demo model' }).count(), 1);
    await page.screenshot({ path: screenshotPath(section.toLowerCase()) });
  }
  // the run row shows the interrupted status: serve marks runs left running by a dead process
  await page.getByRole('link', { name: 'Runs' }).click();
  const runRow = page.getByRole('row').filter({ hasText: 'receipts-lora-r8' });
  assert.match(await runRow.innerText(), /interrupted/);
  assert.match(await runRow.innerText(), /Receipts/);
  // its page says so over the progress bar (not "Training") and offers Resume
  await runRow.getByRole('link', { name: 'receipts-lora-r8' }).click();
  const monitor = page.getByRole('region', { name: 'Run receipts-lora-r8' });
  await monitor.getByText('Interrupted: resume to continue').waitFor();
  assert.equal(await monitor.getByRole('button', { name: /Resume/ }).count(), 1);
  await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Runs' }).click();

  // dark theme via prefers-color-scheme
  await page.emulateMedia({ colorScheme: 'dark' });
  // evaluated in the page (tsconfig.node has no DOM types, so reach the globals through globalThis)
  const bg = await page.evaluate(() => {
    const g = globalThis as any;
    return g.getComputedStyle(g.document.body).backgroundColor as string;
  });
  assert.equal(bg, 'rgb(20, 22, 26)');
  await page.screenshot({ path: screenshotPath('runs-dark') });
  await closePage(page);
  await server.stop();
});

test('without the token every HTTP and WebSocket request is refused; garbage gets a validation error', async () => {
  const server = await serve(dataDir());
  for (const path of ['/', '/index.html', '/assets/', '/api/datasets.list', '/ws', '/media/images/00/x.png']) {
    const res = await fetch(`${server.origin}${path}`, { method: path.startsWith('/api/') ? 'POST' : 'GET' });
    assert.equal(res.status, 401, path);
  }
  // the browser, pointed at the app without a token, gets the 401 and no app
  const page = await newPage();
  const resp = await page.goto(`${server.origin}/`);
  assert.equal(resp?.status(), 401);
  assert.equal(await page.locator('#app').count(), 0);
  await page.context().close();

  const wsStatus = await new Promise<number>((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws`);
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.once('open', () => resolve(101));
    ws.once('error', () => resolve(-1));
  });
  assert.equal(wsStatus, 401);

  const bad = await fetch(`${server.origin}/api/datasets.create`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${server.token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: 7, bogus: true }),
  });
  assert.equal(bad.status, 400);
  const body = (await bad.json()) as { error: { code: string; field: string; message: string } };
  assert.equal(body.error.code, 'invalid_request');
  assert.equal(body.error.field, 'name');
  assert.match(body.error.message, /bogus: unknown field/);
  await server.stop();
});
