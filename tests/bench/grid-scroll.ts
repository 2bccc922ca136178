// Benchmark: scrolling a grid of 10,000 thumbnails in Chromium (headless, software rendering).
// VirtualGrid (windowed) against a baseline measured in the same run: the same cells rendered all at
// once in a CSS grid. For each: time to first paint, DOM cells, and frame times while the list is
// flicked from top to bottom (scrollTop advanced every animation frame) and back.
//
//   npm run bench:grid [-- --n 10000 --frames 240]
import { createServer } from 'vite';
import { chromium, type Page } from 'playwright-core';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const args = process.argv.slice(2);
const opt = (name: string, def: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const N = opt('n', 10000);
const FRAMES = opt('frames', 240);
const here = fileURLToPath(new URL('.', import.meta.url));

interface Result {
  mode: string;
  mountMs: number;
  domCells: number;
  frames: number;
  meanMs: number;
  p95Ms: number;
  maxMs: number;
  over33: number;
  /** Main-thread CPU per frame from the DevTools protocol (less sensitive to a busy machine than wall time). */
  taskMs: number;
  scriptMs: number;
  layoutMs: number;
}

async function measure(page: Page, base: string, mode: string): Promise<Result> {
  await page.goto(`${base}?c=GridBench&mode=${mode}&n=${N}`);
  await page.waitForFunction('window.__bench', undefined, { timeout: 120_000 });
  const mount = (await page.evaluate('window.__bench')) as { mountMs: number };
  await page.waitForTimeout(300);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  const metrics = async () => {
    const { metrics: m } = (await cdp.send('Performance.getMetrics')) as { metrics: { name: string; value: number }[] };
    const get = (n: string) => (m.find((x) => x.name === n)?.value ?? 0) * 1000;
    return {
      task: get('TaskDuration'),
      script: get('ScriptDuration'),
      layout: get('LayoutDuration') + get('RecalcStyleDuration'),
    };
  };
  const before = await metrics();
  // Runs in the page: flick down to the bottom and back up, one scroll step per animation frame.
  const r = (await page.evaluate(`new Promise((resolve) => {
    const el = document.querySelector('[data-bench-scroller]');
    const frames = ${FRAMES};
    const max = el.scrollHeight - el.clientHeight;
    const step = (2 * max) / frames;
    const times = [];
    let i = 0;
    let last = performance.now();
    function tick(now) {
      times.push(now - last);
      last = now;
      i++;
      const pos = i <= frames / 2 ? i * step : max - (i - frames / 2) * step;
      el.scrollTop = Math.max(0, Math.min(max, pos));
      if (i < frames) requestAnimationFrame(tick);
      else resolve({ times: times.slice(2), cells: el.querySelectorAll('[role=option]').length });
    }
    requestAnimationFrame((t) => { last = t; requestAnimationFrame(tick); });
  })`)) as { times: number[]; cells: number };
  const after = await metrics();
  await cdp.detach();
  const t = r.times.slice().sort((a, b) => a - b);
  const mean = t.reduce((a, b) => a + b, 0) / t.length;
  return {
    mode,
    mountMs: mount.mountMs,
    domCells: r.cells,
    frames: t.length,
    meanMs: mean,
    p95Ms: t[Math.floor(t.length * 0.95)],
    maxMs: t[t.length - 1],
    over33: t.filter((x) => x > 33.4).length,
    taskMs: (after.task - before.task) / FRAMES,
    scriptMs: (after.script - before.script) / FRAMES,
    layoutMs: (after.layout - before.layout) / FRAMES,
  };
}

const server = await createServer({
  configFile: join(here, '..', 'renderer', 'gallery', 'vite.config.ts'),
  server: { port: 0 },
  logLevel: 'error',
});
await server.listen();
const base = server.resolvedUrls?.local[0] ?? '';
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
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await measure(page, base, 'virtual'); // warm-up: Vite transforms, image cache
  const virtual = await measure(page, base, 'virtual');
  const plain = await measure(page, base, 'plain');
  const f = (x: number) => x.toFixed(1);
  console.log(`grid scroll, ${N} items, ${FRAMES} frames flick down and up (headless Chromium, software rendering)`);
  console.log(
    'mode      mount ms  DOM cells  frame mean ms  p95 ms  max ms  frames >33ms  CPU/frame ms (script, style+layout)',
  );
  for (const r of [virtual, plain]) {
    console.log(
      `${r.mode.padEnd(9)} ${f(r.mountMs).padStart(8)}  ${String(r.domCells).padStart(9)}  ${f(r.meanMs).padStart(13)}  ${f(r.p95Ms).padStart(6)}  ${f(r.maxMs).padStart(6)}  ${String(r.over33).padStart(12)}  ${f(r.taskMs).padStart(6)} (${f(r.scriptMs)}, ${f(r.layoutMs)})`,
    );
  }
  console.log(
    `ratios virtual/plain: mount ${(virtual.mountMs / plain.mountMs).toFixed(3)}, DOM cells ${(virtual.domCells / plain.domCells).toFixed(4)}, ` +
      `mean frame ${(virtual.meanMs / plain.meanMs).toFixed(2)}, p95 frame ${(virtual.p95Ms / plain.p95Ms).toFixed(2)}, CPU per frame ${(virtual.taskMs / plain.taskMs).toFixed(2)}`,
  );
} finally {
  await browser.close();
  await server.close();
}
