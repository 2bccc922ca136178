import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createBackend, type Backend } from '../../src-main/services/backend';
import { BUNDLED_DEMO_DIR } from '../../src-main/services/models';
import { hubServiceOptions } from '../../src-main/services/hub';
import { FakeHub, filesOf } from '../helpers/fake-hub';
import { tempDir } from '../helpers/tmp';
import { until } from '../helpers/wait';
import { dispatchTo } from '../helpers/dispatch';

describe('hub service', () => {
  const hub = new FakeHub();
  const tmp = tempDir('hub-svc-');
  let backend: Backend;
  const { ok, fail } = dispatchTo(() => backend);
  const saved = { ...process.env };
  const events: any[] = [];
  before(async () => {
    await hub.start();
    hub.addRepo('lenslab/demo-llava', {
      files: { ...filesOf(BUNDLED_DEMO_DIR), 'pytorch_model.bin': randomBytes(10) },
    });
    hub.addRepo('HuggingFaceTB/SmolVLM-256M-Instruct', {
      files: { 'config.json': JSON.stringify({ model_type: 'idefics3' }), 'model.safetensors': randomBytes(5000) },
    });
    hub.addRepo('Salesforce/blip-vqa-base', {
      files: { 'config.json': JSON.stringify({ model_type: 'blip' }), 'model.safetensors': randomBytes(5000) },
    });
    process.env.HF_ENDPOINT = hub.endpoint;
    process.env.HF_HUB_CACHE = join(tmp.dir, 'hf');
    delete process.env.HF_TOKEN;
    delete process.env.HF_HUB_OFFLINE;
    hubServiceOptions.backoffMs = 5;
    backend = createBackend({ dataDir: join(tmp.dir, 'data'), dbFile: ':memory:' });
    backend.events.subscribe((event, payload) => {
      if (event === 'hub.progress') events.push(payload);
    });
  });
  after(async () => {
    backend.close();
    await hub.close();
    process.env = saved;
    tmp.cleanup();
  });

  const finished = (id: string) =>
    until(
      async () => (await ok('hub.pulls')).pulls.find((p: any) => p.id === id && p.status !== 'running'),
      'pull to finish',
    );

  it('pulls through a cut transfer, registers the snapshot in place and reports progress', async () => {
    hub.fault({ file: 'model.safetensors', kind: 'truncate', afterBytes: 300_000 });
    const { pull } = await ok('hub.pull', { repo: 'lenslab/demo-llava' });
    assert.equal(pull.status, 'running');
    // a second pull of the same repo while the first runs is the same pull
    assert.equal((await ok('hub.pull', { repo: 'lenslab/demo-llava' })).pull.id, pull.id);
    const done = await finished(pull.id);
    assert.equal(done.status, 'done', JSON.stringify(done.error));
    assert.equal(done.progress.retries, 1);
    assert.ok(done.dir.startsWith(join(tmp.dir, 'hf', 'models--lenslab--demo-llava', 'snapshots')));
    assert.ok(!readdirSync(done.dir).includes('pytorch_model.bin'));
    const model = await ok('models.get', { id: done.modelId });
    assert.equal(model.name, 'lenslab/demo-llava');
    assert.equal(model.path, done.dir);
    assert.equal(model.report.kind, 'llava');
    assert.ok(model.bytes > 800_000, `the size counts the linked blobs (${model.bytes})`);
    assert.ok(
      events.some(
        (e) =>
          e.id === pull.id &&
          e.progress.phase === 'downloading' &&
          e.progress.bytes > 0 &&
          e.progress.bytes < e.progress.totalBytes,
      ),
    );
    assert.equal(events.filter((e) => e.id === pull.id).at(-1).status, 'done');
    // pulled again: nothing downloaded, the same model
    const again = await finished((await ok('hub.pull', { repo: 'lenslab/demo-llava@main' })).pull.id);
    assert.equal(again.downloadedBytes, 0);
    assert.equal(again.modelId, done.modelId);
    const cached = await ok('hub.cached');
    assert.deepEqual(
      cached.snapshots.map((s: any) => [s.repo, s.modelId]),
      [['lenslab/demo-llava', done.modelId]],
    );
  });

  it('refuses an unsupported family after config.json, with the reason, before the weights', async () => {
    const { pull } = await ok('hub.pull', { repo: 'Salesforce/blip-vqa-base' });
    const done = await finished(pull.id);
    assert.equal(done.status, 'failed');
    assert.match(done.error.message, /cannot be used yet: BLIP family/);
    const blobs = readdirSync(join(tmp.dir, 'hf', 'models--Salesforce--blip-vqa-base', 'blobs'));
    assert.equal(blobs.length, 1, 'only config.json was fetched');
  });

  it('validates the repo name and reports Hub errors on the pull', async () => {
    assert.equal((await fail('hub.pull', { repo: '../etc' })).field, 'repo');
    const done = await finished((await ok('hub.pull', { repo: 'org/missing' })).pull.id);
    assert.equal(done.status, 'failed');
    assert.equal(done.error.code, 'unauthorized');
    assert.match(done.error.message, /HF_TOKEN/);
  });

  it('a stopped pull is cancelled and the next one resumes', async () => {
    hub.addRepo('lenslab/demo-2', { files: filesOf(BUNDLED_DEMO_DIR) });
    hub.fault({ file: 'model.safetensors', kind: 'stall', afterBytes: 400_000 });
    const { pull } = await ok('hub.pull', { repo: 'lenslab/demo-2', name: 'Second demo' });
    await until(
      async () => (await ok('hub.pulls')).pulls.find((p: any) => p.id === pull.id).progress.bytes >= 400_000,
      'bytes',
    );
    assert.deepEqual(await ok('hub.cancel', { id: pull.id }), { cancelled: true });
    const stopped = await finished(pull.id);
    assert.equal(stopped.status, 'cancelled');
    hub.release();
    const next = await finished((await ok('hub.pull', { repo: 'lenslab/demo-2', name: 'Second demo' })).pull.id);
    assert.equal(next.status, 'done');
    assert.ok(next.reusedBytes >= 400_000);
    assert.equal((await ok('models.get', { id: next.modelId })).name, 'Second demo');
  });

  it('lists the catalog with sizes, memory estimates and unsupported families greyed with the reason', async () => {
    const c = await ok('hub.catalog');
    assert.equal(c.endpoint, hub.endpoint);
    assert.equal(c.cacheDir, join(tmp.dir, 'hf'));
    const llava = c.entries.find((e: any) => e.id === 'llava-interleave-qwen-0.5b');
    assert.equal(llava.supported, true);
    assert.ok(llava.chatBytes > 3e9 && llava.chatBytes < 6e9, String(llava.chatBytes));
    assert.ok(llava.trainBytes > llava.chatBytes);
    assert.ok(['fits', 'chat-only', 'too-big'].includes(llava.fit));
    const smol = c.entries.find((e: any) => e.id === 'smolvlm-256m');
    assert.equal(smol.supported, true);
    assert.match(smol.note, /Idefics3/);
    const blip = c.entries.find((e: any) => e.id === 'blip-vqa-base');
    assert.equal(blip.supported, false);
    assert.match(blip.note, /blip/);
    assert.equal(blip.sources[0].cached, true);
    const demo = c.entries.find((e: any) => e.id === 'demo');
    assert.equal(demo.fit, 'fits');
    assert.ok(existsSync(c.cacheDir));
  });
});
