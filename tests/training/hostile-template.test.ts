// A downloaded folder's chat template is an untrusted program: one that never ends or that would allocate
// gigabytes fails the request naming the file, and the server keeps answering.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { createBackend } from '../../src-main/services/backend';
import { importIcons, writeTinyModel } from './vlm-fixture';

const tmp = tempDir('hostile-template-');
process.env.LENSLAB_GRAPH_CACHE = join(tmp.dir, 'graph-cache');
const backend = createBackend({ dataDir: join(tmp.dir, 'app'), host: 'test', log: { error() {}, warn() {} } });
after(async () => {
  await backend.shutdown();
  backend.close();
  tmp.cleanup();
});

const modelDir = writeTinyModel(join(tmp.dir, 'model'));
const datasetId = await importIcons(backend.db, join(tmp.dir, 'app'), join(tmp.dir, 'icons'));

function withTemplate(name: string, template: string): string {
  const dir = join(tmp.dir, name);
  cpSync(modelDir, dir, { recursive: true });
  writeFileSync(join(dir, 'chat_template.jinja'), template);
  return dir;
}

test('runs.estimate on folders with runaway templates fails naming the file; the server survives', async () => {
  const hparams = { maxSteps: 2, batchSize: 2 };
  const data = { datasetId };
  const cases: Array<[string, string, RegExp]> = [
    ['huge-range', '{% for i in range(1000000000) %}x{% endfor %}', /range too big/],
    [
      'nested',
      '{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}',
      /stopped after 2000 ms \(time limit\)|exceeds 4000000 characters/,
    ],
    ['include', "{% include 'evil.jinja' %}", /unsupported Jinja feature: the \{% include %\} tag/],
  ];
  for (const [name, template, want] of cases) {
    const dir = withTemplate(name, template);
    const t0 = Date.now();
    const env = await backend.dispatcher.dispatch('runs.estimate', { model: { path: dir }, data, hparams });
    if (env.ok) assert.fail(`${name}: runs.estimate succeeded`);
    assert.ok(env.error.message.includes(join(dir, 'chat_template.jinja')), `${name}: ${env.error.message}`);
    assert.match(env.error.message, want, name);
    assert.ok(Date.now() - t0 < 20000, `${name}: ${Date.now() - t0} ms`);
  }
  // the same server still estimates a sound folder
  const est = (await backend.dispatcher.call('runs.estimate', { model: { path: modelDir }, data, hparams })) as {
    plan: { totalSteps: number };
  };
  assert.equal(est.plan.totalSteps, 2);
});
