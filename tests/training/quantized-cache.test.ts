// A quantized frozen base and what is cached for it: the compiled training graphs and the cached image features are
// keyed by the scheme and its version, so a run on another scheme or version rebuilds them (never reads an entry
// written for other weights) and a run on the same one reads them; a matrix that cannot take the blocks stays
// float32 and the run's log names it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { writeDemoDataset } from '../../src-main/models/demo/dataset';
import { writeTinyLlava } from '../../src-main/models/demo/tiny-llava';
import { vlmTrainerModule } from '../../src-main/training/vlm-trainer';
import { FEATURE_CACHE_ENV } from '../../src-main/training/feature-cache';
import { GRAPH_CACHE_ENV } from '../../src-main/storage/data-dir';
import { quantCacheKey, quantKeyVersion } from '../../src-main/models/quantize';
import { TINY } from './vlm-fixture';
import { writeIconSnapshot } from '../helpers/icon-snapshot';

interface Probe {
  featureStats(): { diskHits: number; memoryHits: number; misses: number } | null;
}

async function snapshot(root: string): Promise<string> {
  const icons = join(root, 'icons');
  await writeDemoDataset(icons, { seed: 7, count: 6, size: 32, families: ['colors'] });
  const data = writeIconSnapshot(icons, join(root, 'data.json'));
  return data;
}

/** Two steps of 3 with the feature cache on; the losses, the feature cache's counts and the log. */
async function train(root: string, model: string, data: string, quantizeBase: 'none' | 'int8' | 'int4') {
  const config = {
    model,
    data: { file: data },
    hparams: {
      method: 'lora',
      rank: 2,
      alpha: 4,
      dropout: 0,
      maxSteps: 2,
      batchSize: 3,
      saveEvery: 0,
      evalEvery: 0,
      evalAtStart: false,
      lr: 5e-3,
      seed: 3,
      quantizeBase,
    },
    eval: { maxItems: 1 },
    featureCache: true,
  };
  const logs: string[] = [];
  const tr = vlmTrainerModule.createTrainer(config, {
    outDir: mkdtempSync(join(root, 'run-')),
    log: (m) => logs.push(m),
  });
  await tr.init(null);
  try {
    const losses: number[] = [];
    while (tr.step < tr.plan.totalSteps) losses.push((await tr.trainStep()).loss);
    return { losses, stats: (tr as unknown as Probe).featureStats()!, logs };
  } finally {
    await tr.dispose?.();
  }
}

function graphEntries(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((f) => !f.startsWith('.')) : [];
}

test('a quantized base keys graphs and image features by scheme and version: another is rebuilt, the same is read', async () => {
  const root = mkdtempSync(join(tmpdir(), 'lenslab-qcache-'));
  const prev = { f: process.env[FEATURE_CACHE_ENV], g: process.env[GRAPH_CACHE_ENV] };
  const graphs = join(root, 'graphs');
  process.env[FEATURE_CACHE_ENV] = join(root, 'features');
  process.env[GRAPH_CACHE_ENV] = graphs;
  const version = quantKeyVersion.current;
  try {
    const model = join(root, 'model');
    writeTinyLlava(model, 0, TINY);
    const data = await snapshot(root);

    const a = await train(root, model, data, 'int4');
    assert.ok(a.stats.misses > 0 && a.stats.diskHits === 0, JSON.stringify(a.stats));
    const afterA = graphEntries(graphs);
    assert.ok(afterA.length > 0);
    const keys = afterA.map((h) => readFileSync(join(graphs, h, 'key.json'), 'utf8'));
    assert.ok(
      keys.some((k) => k.includes('"quantizeBase":"int4"') && k.includes(`"quantVersion":${version}`)),
      keys.join('\n'),
    );
    assert.ok(
      a.logs.some((l) => l.startsWith('frozen base held as int4 blocks of 32')),
      a.logs.join('\n'),
    );

    // the same scheme and version: every feature from disk, every graph from the cache, the same losses
    const b = await train(root, model, data, 'int4');
    assert.equal(b.stats.misses, 0, JSON.stringify(b.stats));
    assert.equal(b.stats.diskHits, a.stats.misses);
    assert.deepEqual(graphEntries(graphs).sort(), [...afterA].sort());
    assert.deepEqual(b.losses, a.losses);

    // another scheme, then the same scheme at another version, then a float base: nothing of the int4 run is read
    const c = await train(root, model, data, 'int8');
    const afterC = graphEntries(graphs).length;
    quantKeyVersion.current = version + 1;
    const d = await train(root, model, data, 'int4');
    const afterD = graphEntries(graphs).length;
    quantKeyVersion.current = version;
    const e = await train(root, model, data, 'none');
    for (const [what, r] of [
      ['int8', c],
      [`int4 v${version + 1}`, d],
      ['float32', e],
    ] as const) {
      assert.equal(r.stats.diskHits, 0, `${what}: ${JSON.stringify(r.stats)}`);
      assert.equal(r.stats.misses, a.stats.misses, `${what}: ${JSON.stringify(r.stats)}`);
    }
    assert.notDeepEqual(c.losses, a.losses);
    assert.deepEqual(d.losses, a.losses, 'the same arithmetic under a new key');
    // each quantized run compiles its own graphs (a float one may hold its small graphs in memory only)
    assert.deepEqual([afterC, afterD], [2 * afterA.length, 3 * afterA.length]);
    assert.ok(graphEntries(graphs).length >= afterD);
  } finally {
    quantKeyVersion.current = version;
    for (const [k, v] of [
      [FEATURE_CACHE_ENV, prev.f],
      [GRAPH_CACHE_ENV, prev.g],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    rmSync(root, { recursive: true, force: true });
  }
});

test('quantCacheKey: nothing for a float base, the scheme and version otherwise', () => {
  assert.deepEqual(quantCacheKey('none'), {});
  assert.deepEqual(quantCacheKey('int4'), { quantizeBase: 'int4', quantVersion: quantKeyVersion.current });
  assert.notDeepEqual(quantCacheKey('int8'), quantCacheKey('int4'));
});

test('a run on a base with a matrix that cannot take blocks of 32 names it in its log and trains', async () => {
  const root = mkdtempSync(join(tmpdir(), 'lenslab-qodd-'));
  const prev = { f: process.env[FEATURE_CACHE_ENV], g: process.env[GRAPH_CACHE_ENV] };
  process.env[FEATURE_CACHE_ENV] = join(root, 'features');
  process.env[GRAPH_CACHE_ENV] = join(root, 'graphs');
  try {
    // an MLP width of 72: down_proj [32, 72] keeps float32, gate/up [72, 32] take the blocks
    const model = join(root, 'model');
    writeTinyLlava(model, 0, { ...TINY, textIntermediate: 72 });
    const r = await train(root, model, await snapshot(root), 'int4');
    const note = r.logs.find((l) => l.startsWith('note: 1 frozen matrix stays float32 under int4:'));
    assert.ok(note, r.logs.join('\n'));
    assert.match(note, /down_proj\.weight \[32, 72\] \(input size 72 is not a multiple of 32\)/);
    assert.ok(r.losses.every(Number.isFinite) && r.losses[1] !== r.losses[0], `losses ${r.losses.join(', ')}`);
  } finally {
    for (const [k, v] of [
      [FEATURE_CACHE_ENV, prev.f],
      [GRAPH_CACHE_ENV, prev.g],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    rmSync(root, { recursive: true, force: true });
  }
});
