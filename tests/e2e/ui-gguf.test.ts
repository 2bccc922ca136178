// Exporting GGUF from the Models view: pick the demo model and a precision, write to a folder, watch the progress,
// read the result (files, Ollama and llama.cpp commands); a folder that holds other files is refused by name.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, openSync, readSync, closeSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { screenshotPath } from './harness';
import { call, uiFixture, type UiFixture } from './ui-helpers';

let ui: UiFixture;
before(async () => {
  ui = await uiFixture();
});
after(async () => {
  await ui?.cleanup();
});

function magic(file: string): string {
  const fd = openSync(file, 'r');
  const b = Buffer.alloc(4);
  readSync(fd, b, 0, 4, 0);
  closeSync(fd);
  return b.toString('latin1');
}

test('Models view: export the demo model as q8_0 GGUF with progress, then a non-empty folder is refused', async () => {
  const dir = ui.dataDir();
  const server = await ui.serve(dir);
  const demo = await call(server, 'models.installDemo', {});
  const out = join(ui.dataDir('e2e-gguf-'), 'icons-q8');

  const page = await ui.newPage({ height: 1400 });
  await page.goto(`${server.url}#/models`);
  await page.getByRole('heading', { name: 'Models', level: 1 }).waitFor();
  const form = page.getByRole('form', { name: 'Export to GGUF' });
  await form.getByLabel('Model').selectOption(String(demo.model.id));
  await form.getByLabel('Precision').selectOption('q8_0');
  await form.getByLabel('Empty folder to write to').fill(out);
  await form.getByRole('button', { name: 'Export GGUF' }).click();

  const result = form.getByRole('status', { name: 'GGUF export result' });
  await result.waitFor({ timeout: 60_000 });
  const text = await result.innerText();
  assert.match(text, /Wrote \S+\.gguf \+ mmproj-\S+-q8_0\.gguf/);
  assert.match(text, /ollama create my-model -f Modelfile/);
  assert.match(text, /--mmproj mmproj-/);
  // llama.cpp's known LLaVA bug, in words beside the result
  assert.match(await result.getByRole('note').innerText(), /^Note: llama\.cpp's LLaVA graph .*first \(top-left\) patch/);
  const files = readdirSync(out).sort();
  assert.ok(files.includes('Modelfile'), `Modelfile in ${files.join(', ')}`);
  const ggufs = files.filter((f) => f.endsWith('.gguf'));
  assert.equal(ggufs.length, 2, `two GGUF files: ${files.join(', ')}`);
  for (const f of ggufs) assert.equal(magic(join(out, f)), 'GGUF', `${f} starts with the GGUF magic`);
  await page.screenshot({ path: screenshotPath('ui-gguf-exported') });

  // a folder with other files in it: refused, naming the folder; nothing there is touched
  const busy = join(ui.dataDir('e2e-gguf-'), 'busy');
  mkdirSync(busy, { recursive: true });
  writeFileSync(join(busy, 'notes.txt'), 'keep me');
  await form.getByLabel('Empty folder to write to').fill(busy);
  await form.getByRole('button', { name: 'Export GGUF' }).click();
  const alert = form.getByRole('alert');
  await alert.waitFor({ timeout: 30_000 });
  assert.match(await alert.innerText(), /not empty/);
  assert.equal(await form.getByLabel('Empty folder to write to').getAttribute('aria-invalid'), 'true');
  assert.deepEqual(readdirSync(busy), ['notes.txt']);
  assert.ok(existsSync(join(out, 'Modelfile')));
  await ui.closePage(page);
  await server.stop();
});
