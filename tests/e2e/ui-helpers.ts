// Shared setup for the UI e2e tests (tests/e2e/ui-*.test.ts): one browser per file, a serve process per data
// dir, pages that record console errors (asserted empty on close), and typed API calls against a server.
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { launchBrowser, startServe, type ServeProcess } from './harness';
import { tempDir } from '../helpers/tmp';
export { until } from '../helpers/wait';
import type { MethodName, Params, Result } from '../../src-main/contract/index';

export interface UiFixture {
  browser: Browser;
  serve(dataDir: string): Promise<ServeProcess>;
  dataDir(prefix?: string): string;
  newPage(opts?: { colorScheme?: 'light' | 'dark'; width?: number; height?: number }): Promise<Page>;
  closePage(page: Page, opts?: { allow?: RegExp }): Promise<void>;
  cleanup(): Promise<void>;
}

export async function uiFixture(): Promise<UiFixture> {
  const browser = await launchBrowser();
  const servers: ServeProcess[] = [];
  const dirs: { cleanup(): void }[] = [];
  const errors = new WeakMap<Page, string[]>();
  return {
    browser,
    async serve(dataDir) {
      const s = await startServe(dataDir);
      servers.push(s);
      return s;
    },
    dataDir(prefix = 'e2e-ui-') {
      const t = tempDir(prefix);
      dirs.push(t);
      return t.dir;
    },
    async newPage(opts = {}) {
      const ctx = await browser.newContext({
        viewport: { width: opts.width ?? 1280, height: opts.height ?? 800 },
        colorScheme: opts.colorScheme ?? 'light',
      });
      const page = await ctx.newPage();
      const list: string[] = [];
      errors.set(page, list);
      page.on('pageerror', (e) => list.push(`page error: ${e.message}`));
      page.on('console', (m) => {
        if (m.type() === 'error') list.push(`console error: ${m.text()} at ${m.location().url}`);
      });
      return page;
    },
    async closePage(page, opts = {}) {
      const list = (errors.get(page) ?? []).filter((e) => !(opts.allow && opts.allow.test(e)));
      await page.context().close();
      assert.deepEqual(list, [], 'the page logged no errors');
    },
    async cleanup() {
      await browser.close();
      for (const s of servers) await s.stop('SIGKILL');
      for (const d of dirs) d.cleanup();
    },
  };
}

/** Call the API of a serve process over HTTP (the way a script would). Throws on an error envelope. */
export async function call<M extends MethodName>(
  server: ServeProcess,
  method: M,
  params: Params<M>,
): Promise<Result<M>> {
  const res = await fetch(`${server.origin}/api/${method}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${server.token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(params),
  });
  const body = (await res.json()) as { result?: Result<M>; error?: { code: string; message: string } };
  if (body.error) throw new Error(`${method}: ${body.error.code}: ${body.error.message}`);
  return body.result as Result<M>;
}

/** Poll until fn returns a truthy value (or throw after timeoutMs with the last value). */

/** How many pixels the page's content area is wider than the window shows (0: nothing is pushed off to the side). */
export async function horizontalOverflow(page: Page): Promise<number> {
  return page.locator('main.content').evaluate((el) => el.scrollWidth - el.clientWidth);
}
