// Browser downloads: a dataset export and a model folder come back as zips with the token, never without it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import { createBackend, type Backend } from '../../src-main/services/backend';
import { startServer, type RunningServer } from '../../src-main/transport/serve/server';
import { writeDemoDataset } from '../../src-main/models/demo/dataset';
import { tempDir } from '../helpers/tmp';
import { okOn } from '../helpers/dispatch';

const tmp = tempDir('download-');
let backend: Backend;
let server: RunningServer;
before(async () => {
  backend = createBackend({ dataDir: join(tmp.dir, 'data'), host: 'serve', log: { error() {}, warn() {} } });
  server = await startServer({ backend, staticDir: join(tmp.dir, 'none') });
});
after(async () => {
  await server.close();
  backend.close();
  tmp.cleanup();
});

const get = (path: string, auth = true) =>
  fetch(`${server.origin}${path}`, { headers: auth ? { Authorization: `Bearer ${server.token}` } : {} });

test('a dataset downloads as a zip of its export; the temporary folder is gone afterwards', async () => {
  const src = join(tmp.dir, 'icons');
  await writeDemoDataset(src, { seed: 1, count: 4, families: ['colors'] });
  const imp = await okOn(backend, 'datasets.import', { path: join(src, 'vqa.jsonl'), dataset: 'icons' });
  assert.equal((await get(`/download/dataset/${imp.datasetId}.zip`, false)).status, 401);
  const res = await get(`/download/dataset/${imp.datasetId}.zip?format=llava`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/zip');
  assert.match(res.headers.get('content-disposition') ?? '', /attachment; filename="icons-llava\.zip"/);
  const files = unzipSync(new Uint8Array(await res.arrayBuffer()));
  const names = Object.keys(files).sort();
  assert.ok(names.includes('data.json') || names.some((n) => n.endsWith('.json')), names.join());
  assert.ok(names.filter((n) => /\.(png|jpg|jpeg|webp)$/.test(n)).length >= 1, names.join());
  const downloads = join(backend.dataDir, 'downloads');
  assert.ok(!existsSync(downloads) || readdirSync(downloads).length === 0, 'nothing left behind');
  assert.equal((await get('/download/dataset/999.zip')).status, 404);
  assert.equal((await get('/download/dataset/1.zip?format=pdf')).status, 400);
});

test('a model folder downloads as a zip with its weights byte for byte', async () => {
  const demo = await okOn(backend, 'models.installDemo', {});
  const res = await get(`/download/model/${demo.model.id}.zip`);
  assert.equal(res.status, 200);
  const files = unzipSync(new Uint8Array(await res.arrayBuffer()));
  assert.deepEqual(Buffer.from(files['model.safetensors']), readFileSync(join(demo.model.path, 'model.safetensors')));
  assert.ok(files['config.json']);
});
