// Serve mode's browser upload endpoint: token + origin checked, paths confined to the batch folder, then the
// staged folder imports like any path and the batch is deleted.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:http';
import { createBackend, type Backend } from '../../src-main/services/backend';
import { startServer, type RunningServer } from '../../src-main/transport/serve/server';
import { safeRelativePath, uploadsRoot } from '../../src-main/transport/serve/upload';
import { tempDir } from '../helpers/tmp';
import { writeDemoDataset } from '../../src-main/models/demo/dataset';

const tmp = tempDir('upload-');
const data = join(tmp.dir, 'data');
let backend: Backend;
let server: RunningServer;

before(async () => {
  const staticDir = join(tmp.dir, 'renderer');
  mkdirSync(staticDir, { recursive: true });
  writeFileSync(join(staticDir, 'index.html'), '<!doctype html><title>Lenslab</title>');
  // a leftover from an earlier run is cleared at start
  mkdirSync(join(uploadsRoot(data), 'stale-batch'), { recursive: true });
  writeFileSync(join(uploadsRoot(data), 'stale-batch', 'x.txt'), 'old');
  backend = createBackend({ dataDir: data, host: 'serve', log: { error() {}, warn() {} } });
  server = await startServer({ backend, staticDir });
});
after(async () => {
  await server.close();
  backend.close();
  tmp.cleanup();
});

function http(
  method: string,
  path: string,
  body?: Buffer | string,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: server.port,
        method,
        path,
        headers: { Authorization: `Bearer ${server.token}`, ...headers },
      },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, json: text ? JSON.parse(text) : null }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

test('relative upload paths: nested names pass, traversal and hidden or odd segments are refused', () => {
  assert.deepEqual(safeRelativePath('icons/images/00000.png'), ['icons', 'images', '00000.png']);
  for (const bad of ['../x', 'a/../../x', '/abs', 'a//b', '.hidden/x', 'a\\b', 'c:/x', 'a/./b', 'x\u0000y', '']) {
    assert.throws(() => safeRelativePath(bad), /upload path/, bad);
  }
});

test('stale uploads are cleared at start; uploads need the token and a same-origin browser', async () => {
  assert.equal(existsSync(join(uploadsRoot(data), 'stale-batch')), false);
  const noToken = await http('PUT', '/upload/batch-0001/a.txt', 'x', { Authorization: '' });
  assert.equal(noToken.status, 401);
  const foreign = await http('PUT', '/upload/batch-0001/a.txt', 'x', { Origin: 'http://evil.example' });
  assert.equal(foreign.status, 401);
  const traversal = await http('PUT', '/upload/batch-0001/..%2F..%2Fescape.txt', 'x');
  assert.equal(traversal.status, 400);
  assert.equal(traversal.json.error.field, 'path');
  assert.equal(existsSync(join(data, 'escape.txt')), false);
  const badBatch = await http('PUT', '/upload/..%2Fx/a.txt', 'x');
  assert.equal(badBatch.status, 400);
  const get = await http('GET', '/upload/batch-0001/a.txt');
  assert.equal(get.status, 400);
});

test('a dropped folder uploads file by file, imports from its staging path, and the batch is deleted', async () => {
  const src = join(tmp.dir, 'icons');
  await writeDemoDataset(src, { seed: 3, count: 3, families: ['colors'] });
  const batch = 'batch-abcdef12';
  const files = ['llava.json', ...readdirSync(join(src, 'images')).map((f) => `images/${f}`)];
  let root = '';
  for (const f of files) {
    const r = await http('PUT', `/upload/${batch}/${encodeURIComponent(`icons/${f}`)}`, readFileSync(join(src, f)), {
      'Content-Type': 'application/octet-stream',
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(readFileSync(r.json.result.path).length, readFileSync(join(src, f)).length);
    root = r.json.result.root;
  }
  assert.equal(root, join(uploadsRoot(data), batch));
  const imported = await http('POST', '/api/datasets.import', JSON.stringify({ path: join(root, 'icons') }), {
    'Content-Type': 'application/json',
  });
  assert.equal(imported.status, 200, JSON.stringify(imported.json));
  assert.equal(imported.json.result.datasetName, 'icons');
  assert.equal(imported.json.result.imported, 3);
  const del = await http('DELETE', `/upload/${batch}`);
  assert.equal(del.status, 200);
  assert.equal(existsSync(root), false);
});
