// The image-feature cache: a run whose image path is frozen computes each image's features once (epoch 2 and a
// second run skip the vision tower) and trains to the same losses as feeding pixels; the disk cache rebuilds files
// of another version, damaged or foreign, keeps to its size by LRU, and degrades to memory on a full disk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { writeDemoDataset } from '../../src-main/models/demo/dataset';
import { type DataSnapshot } from '../../src-main/training/data';
import { vlmTrainerModule } from '../../src-main/training/vlm-trainer';
import {
  encodeEntry,
  FeatureCache,
  FEATURE_CACHE_ENV,
  parseEntry,
  type ImageFeatures,
} from '../../src-main/training/feature-cache';
import { featureCacheLayer } from '../../src-main/models/program';
import { loadHfFolder } from '../../src-main/models/hf-folder';
import { writeTinyModel } from './vlm-fixture';
import { writeIconSnapshot } from '../helpers/icon-snapshot';

interface Probe {
  visionCalls: { runs: number; images: number };
  featureStats(): { layer: string; diskHits: number; memoryHits: number; misses: number } | null;
}

async function setup(root: string): Promise<{ model: string; data: string }> {
  const model = writeTinyModel(join(root, 'model'));
  const icons = join(root, 'icons');
  await writeDemoDataset(icons, { seed: 7, count: 8, size: 32, families: ['colors'] });
  const data = writeIconSnapshot(icons, join(root, 'data.json'));
  return { model, data };
}

/** Train 2 epochs (4 steps of 4); the losses and, after each step, the vision program's image count. */
async function train(root: string, model: string, data: string, method: string, featureCache: boolean) {
  const config = {
    model,
    data: { file: data },
    hparams: {
      method,
      rank: 4,
      alpha: 8,
      dropout: 0,
      epochs: 2,
      batchSize: 4,
      saveEvery: 0,
      evalEvery: 0,
      evalAtStart: false,
      lr: 5e-3,
      seed: 3,
    },
    eval: { maxItems: 1 },
    featureCache,
  };
  const logs: string[] = [];
  const tr = vlmTrainerModule.createTrainer(config, {
    outDir: mkdtempSync(join(root, 'run-')),
    log: (m) => logs.push(m),
  });
  await tr.init(null);
  const probe = tr as unknown as Probe;
  const losses: number[] = [];
  const images: number[] = [];
  const epochs: number[] = [];
  let samples = 0;
  try {
    while (tr.step < tr.plan.totalSteps) {
      const r = await tr.trainStep();
      losses.push(r.loss);
      epochs.push(r.epoch ?? -1);
      samples += r.samples;
      images.push(probe.visionCalls.images);
    }
    await tr.evaluate();
    return { losses, images, epochs, samples, runs: probe.visionCalls.runs, stats: probe.featureStats(), logs };
  } finally {
    await tr.dispose?.();
  }
}

test('epoch 2 and a second run skip the vision tower and train to the same losses as pixels', async () => {
  const root = mkdtempSync(join(tmpdir(), 'lenslab-featcache-'));
  const prev = process.env[FEATURE_CACHE_ENV];
  process.env[FEATURE_CACHE_ENV] = join(root, 'features');
  try {
    const { model, data } = await setup(root);
    const snap = JSON.parse(readFileSync(data, 'utf8')) as DataSnapshot;
    const distinct = new Set(snap.items.map((it) => readFileSync(it.image!).toString('base64'))).size;
    assert.ok(distinct >= 4, `${distinct} distinct images`);
    const cfg = loadHfFolder(model).config;
    assert.equal(
      featureCacheLayer(cfg, 'lora', { rank: 4, alpha: 8, dropout: 0, targetModules: ['q_proj'] }),
      'projected',
    );
    assert.equal(
      featureCacheLayer(cfg, 'lora+projector', { rank: 4, alpha: 8, dropout: 0, targetModules: ['q_proj'] }),
      'tower',
    );
    assert.equal(
      featureCacheLayer(cfg, 'lora', { rank: 4, alpha: 8, dropout: 0, targetModules: ['q_proj'], includeVision: true }),
      null,
    );

    for (const [method, layer] of [
      ['lora', 'projected'],
      ['lora+projector', 'tower'],
    ] as const) {
      const plain = await train(root, model, data, method, false);
      assert.equal(plain.stats, null);
      assert.equal(plain.runs, 0, 'pixels go into the step: no separate vision program');
      rmSync(join(root, 'features'), { recursive: true, force: true });
      const cached = await train(root, model, data, method, true);
      assert.equal(cached.stats?.layer, layer);
      assert.deepEqual(cached.epochs, [0, 0, 1, 1]); // 0-based epochs
      // epoch 1 computes each distinct image once (keys are the files' bytes: equal icons share features);
      // epoch 2 runs the vision program not at all
      assert.ok(
        cached.images[1] > 0 && cached.images[1] <= distinct,
        `${cached.images[1]} images computed, ${distinct} distinct`,
      );
      assert.equal(cached.images[3], cached.images[1], `vision calls by step: ${cached.images.join(', ')}`);
      assert.equal(cached.stats!.misses, cached.images[1]);
      assert.equal(cached.stats!.memoryHits + cached.stats!.misses, cached.samples, JSON.stringify(cached.stats));
      assert.ok(
        cached.logs.some((l) => l.includes('image features: computed once per image')),
        cached.logs.join('\n'),
      );
      assert.ok(
        cached.logs.some((l) => l.includes('the vision program is released')),
        cached.logs.join('\n'),
      );
      for (let i = 0; i < plain.losses.length; i++)
        assert.ok(
          Math.abs(plain.losses[i] - cached.losses[i]) <= 1e-5 * Math.max(1, Math.abs(plain.losses[i])),
          `${method} step ${i + 1}: loss ${cached.losses[i]} with the cache, ${plain.losses[i]} without`,
        );
      assert.notEqual(plain.losses[0], plain.losses[3], 'training moved the loss');
      // a second run on the same model and images reads every feature from disk
      const again = await train(root, model, data, method, true);
      assert.equal(again.runs, 0);
      assert.equal(again.stats!.diskHits, cached.images[1]);
      assert.ok(
        again.logs.some((l) => l.includes('0 computed') && l.includes(`(${cached.images[1]} from disk)`)),
        again.logs.join('\n'),
      );
      assert.deepEqual(again.losses, cached.losses);
    }
  } finally {
    if (prev === undefined) delete process.env[FEATURE_CACHE_ENV];
    else process.env[FEATURE_CACHE_ENV] = prev;
    rmSync(root, { recursive: true, force: true });
  }
});

function feats(seed: number, frames = 1): ImageFeatures {
  const data = new Float32Array(frames * 4 * 8).map((_, i) => Math.sin(seed * 100 + i));
  return { dims: [frames, 4, 8], data };
}

test('disk cache: foreign, damaged and other-version files are rebuilt; LRU size; full disk warns once', () => {
  const root = mkdtempSync(join(tmpdir(), 'lenslab-featcache-unit-'));
  try {
    const dir = join(root, 'features');
    const imgs = [0, 1, 2, 3].map((i) => {
      const p = join(root, `img${i}.png`);
      writeFileSync(p, `image bytes ${i}`);
      return p;
    });
    const warns: string[] = [];
    const a = new FeatureCache({ dir, scope: 'model A', warn: (m) => warns.push(m) });
    const k0 = a.keyOf(imgs[0]);
    assert.equal(a.lookup(k0), null);
    a.store(k0, feats(0));
    // another process (a new cache object) reads it from disk, bit for bit
    const b = new FeatureCache({ dir, scope: 'model A', warn: (m) => warns.push(m) });
    assert.deepEqual(b.lookup(b.keyOf(imgs[0]))?.data, feats(0).data);
    assert.equal(b.stats.diskHits, 1);
    // another model (scope) or changed image bytes: another key, a miss
    const c = new FeatureCache({ dir, scope: 'model B', warn: (m) => warns.push(m) });
    assert.equal(c.lookup(c.keyOf(imgs[0])), null);
    writeFileSync(imgs[0], 'edited image');
    assert.notEqual(b.keyOf(imgs[0]), k0);

    const file = join(dir, `${k0}.feat`);
    const good = readFileSync(file);
    const check = (bytes: Buffer, why: string) => {
      writeFileSync(file, bytes);
      const fresh = new FeatureCache({ dir, scope: 'model A', warn: (m) => warns.push(m) });
      assert.equal(fresh.lookup(k0), null, why);
      assert.equal(fresh.stats.rebuilt, 1, why);
      assert.ok(!readdirSync(dir).includes(`${k0}.feat`), `${why}: the file is deleted for a rebuild`);
    };
    const damaged = Buffer.from(good);
    damaged[damaged.length - 3] ^= 0xff;
    check(damaged, 'a flipped data byte');
    const older = Buffer.from(good);
    older.writeUInt32LE(99, 8);
    check(older, 'another format version');
    check(good.subarray(0, good.length - 4), 'a file cut short');
    check(Buffer.concat(encodeEntry('f'.repeat(64), feats(0))), "another entry's key in the header");
    assert.equal(parseEntry(good, k0)?.dims.join(','), '1,4,8');

    // LRU: room for two entries; the least recently used goes when a third comes
    const entry = Buffer.concat(encodeEntry(k0, feats(0))).length;
    const lru = new FeatureCache({
      dir: join(root, 'lru'),
      scope: 'm',
      maxBytes: 2 * entry + 10,
      memoryBytes: 0,
      warn: (m) => warns.push(m),
    });
    const [x, y, z] = [1, 2, 3].map((i) => lru.keyOf(imgs[i]));
    lru.store(x, feats(1));
    lru.store(y, feats(2));
    assert.ok(lru.lookup(x)); // x is now the most recently used
    lru.store(z, feats(3));
    assert.equal(lru.stats.evicted, 1);
    assert.ok(lru.diskSize <= 2 * entry + 10);
    const lru2 = new FeatureCache({ dir: join(root, 'lru'), scope: 'm', memoryBytes: 0, warn: (m) => warns.push(m) });
    assert.ok(lru2.lookup(x) && lru2.lookup(z));
    assert.equal(lru2.lookup(y), null, 'the least recently used entry was evicted');
    assert.equal(warns.length, 0);

    // a full disk: one warning, features still served from memory, nothing half-written
    let writes = 0;
    const full = new FeatureCache({
      dir: join(root, 'full'),
      scope: 'm',
      warn: (m) => warns.push(m),
      writeFile: () => {
        writes++;
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      },
    });
    full.store(x, feats(1));
    full.store(y, feats(2));
    assert.equal(writes, 1, 'no further writes after the disk filled');
    assert.equal(warns.length, 1);
    assert.match(warns[0], /disk is full/);
    assert.deepEqual(full.lookup(y)?.data, feats(2).data);
    assert.deepEqual(readdirSync(join(root, 'full')), []);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
