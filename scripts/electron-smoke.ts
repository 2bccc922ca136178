// Smoke test of the packaged app with Playwright's _electron (run by .github/workflows/release.yml after
// electron-builder; it needs an Electron binary, so it cannot run on the project's CI machine): the window opens,
// the sample dataset is created, a short run of the demo model completes, and the fine-tune answers in Chat.
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { _electron as electron } from 'playwright-core';

/** The unpacked app electron-builder leaves in release/ (the installers' content), else the dev build. */
function appExecutable(): { executablePath?: string; args: string[] } {
  const rel = join(import.meta.dirname, '..', 'release');
  const candidates = [join(rel, 'linux-unpacked', 'lenslab'), join(rel, 'win-unpacked', 'Lenslab.exe')];
  if (existsSync(rel))
    for (const d of readdirSync(rel))
      if (d.startsWith('mac')) candidates.push(join(rel, d, 'Lenslab.app', 'Contents', 'MacOS', 'Lenslab'));
  const found = candidates.find((c) => existsSync(c));
  return found ? { executablePath: found, args: [] } : { args: [join(import.meta.dirname, '..')] };
}

const userData = mkdtempSync(join(tmpdir(), 'lenslab-smoke-'));
const app = await electron.launch({
  ...appExecutable(),
  args: [...appExecutable().args, `--user-data-dir=${userData}`],
  timeout: 120_000,
});
try {
  const page = await app.firstWindow();
  await page.getByRole('heading', { name: 'Datasets', level: 1 }).waitFor({ timeout: 60_000 });
  await page.getByRole('button', { name: 'Try the sample dataset' }).click();
  await page.getByRole('heading', { name: 'Train', level: 1 }).waitFor({ timeout: 120_000 });
  await page
    .getByRole('button', { name: 'Add the demo model' })
    .click()
    .catch(() => undefined);
  await page.getByRole('button', { name: 'Quick start preset' }).click();
  await page.getByRole('textbox', { name: 'Steps', exact: true }).fill('20');
  await page.getByRole('button', { name: 'Start training' }).click();
  await page.getByRole('heading', { name: /completed$/ }).waitFor({ timeout: 300_000 });
  await page.getByRole('link', { name: 'Chat' }).first().click();
  await page.getByLabel('Your question').fill('What shape is this?');
  await page.keyboard.press('Enter');
  await page.locator('.msg.role-assistant .meta').waitFor({ timeout: 120_000 });
  console.log('smoke test passed: window, sample dataset, demo run, chat');
} finally {
  await app.close();
}
