// Serve the component gallery with Vite and screenshot every demo (light and dark) with headless Chromium.
// Usage: node --import tsx tests/renderer/gallery/shoot.ts [DemoName ...] [--theme=light|dark|both] [--width=1100]
// Screenshots land in tests/.tmp/gallery/<Demo>-<theme>.png. Exits 1 if a page logs an error.
import { createServer } from 'vite';
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const here = fileURLToPath(new URL('.', import.meta.url));
const outDir = join(here, '..', '..', '.tmp', 'gallery');
mkdirSync(outDir, { recursive: true });

const args = process.argv.slice(2);
const only = args.filter((a) => !a.startsWith('--'));
const themeArg = args.find((a) => a.startsWith('--theme='))?.split('=')[1] ?? 'both';
const width = Number(args.find((a) => a.startsWith('--width='))?.split('=')[1] ?? 1100);
const themes = themeArg === 'both' ? ['light', 'dark'] : [themeArg];

const server = await createServer({ configFile: join(here, 'vite.config.ts'), server: { port: 0 } });
await server.listen();
const base = server.resolvedUrls?.local[0];
if (!base) throw new Error('vite did not report a URL');
const browser = await chromium.launch({
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
const errors: string[] = [];
try {
  const page = await browser.newPage({ viewport: { width, height: 760 } });
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`${page.url()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`${page.url()}: ${e.message}`));
  await page.goto(base);
  const names = (await page.evaluate('window.__demos')) as string[];
  const chosen = only.length ? names.filter((n) => only.includes(n)) : names;
  for (const n of only) if (!names.includes(n)) errors.push(`no demo named ${n} (have: ${names.join(', ')})`);
  for (const theme of themes) {
    for (const name of chosen) {
      await page.goto(`${base}?c=${name}&theme=${theme}`);
      await page.waitForSelector('[data-demo] > *', { timeout: 15000 });
      await page.waitForLoadState('networkidle');
      await page.evaluate('new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))');
      await page.waitForTimeout(150);
      const file = join(outDir, `${name}-${theme}.png`);
      await page.screenshot({ path: file, fullPage: true });
      console.log(file);
    }
  }
} finally {
  await browser.close();
  await server.close();
}
if (errors.length) {
  console.error(errors.join('\n'));
  process.exit(1);
}
