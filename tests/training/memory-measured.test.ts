// The memory estimate shown before a run (training/memory.ts, as checkVlmRun computes it) against the peak RSS of a
// real run, for a float32, an int8 and an int4 frozen base: a LLaVA whose ~80M decoder weights dominate (a 1024-wide,
// 6-layer LLaMA decoder, a tiny vision tower), LoRA on q/k/v/o, a few steps. Each run is its own child process
// (memory-worker.ts), so its VmHWM is the run's alone.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { writeTinyLlava } from '../../src-main/models/demo/tiny-llava';
import { writeDemoDataset } from '../../src-main/models/demo/dataset';
import { formatBytes } from '../../src-main/training/memory';
import { writeIconSnapshot } from '../helpers/icon-snapshot';

const { dir: tmp, cleanup } = tempDir('mem-measured-');
after(cleanup);

test('the memory estimate is within 15% of the measured peak RSS for float32, int8 and int4 bases', async () => {
  const model = join(tmp, 'model');
  writeTinyLlava(model, 1, {
    textHidden: 1024,
    textLayers: 6,
    textHeads: 8,
    textKvHeads: 8,
    textIntermediate: 2816,
    imageSize: 32,
    patchSize: 16,
    visionHidden: 64,
    visionLayers: 1,
    visionHeads: 2,
    visionIntermediate: 128,
  });
  const icons = join(tmp, 'icons');
  await writeDemoDataset(icons, { seed: 3, count: 8, size: 32, families: ['colors'] });
  const data = writeIconSnapshot(icons, join(tmp, 'data.json'), { name: 'mem icons' });
  const rows: string[] = [];
  const results: Record<string, { peakRss: number; estimate: number }> = {};
  for (const quantizeBase of ['none', 'int8', 'int4']) {
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        join(import.meta.dirname, 'memory-worker.ts'),
        JSON.stringify({ model, data, quantizeBase, steps: 3, batchSize: 2 }),
      ],
      {
        encoding: 'utf8',
        maxBuffer: 1 << 24,
        env: { ...process.env, LENSLAB_GRAPH_CACHE: join(tmp, `cache-${quantizeBase}`), LENSLAB_PROVIDER: 'cpu' },
      },
    );
    const line = r.stdout.trim().split('\n').pop() ?? '';
    assert.ok(
      r.status === 0 && line.startsWith('{'),
      `worker ${quantizeBase} failed (${r.status}): ${r.stderr.slice(-2000)}`,
    );
    const o = JSON.parse(line) as {
      peakRss: number;
      estimate: number;
      losses: number[];
      breakdown: Record<string, number>;
      logs: string[];
    };
    if (quantizeBase !== 'none')
      assert.ok(
        o.logs.some((l) => l.startsWith(`frozen base held as ${quantizeBase} blocks of 32`)),
        o.logs.join('\n'),
      );
    results[quantizeBase] = o;
    rows.push(
      `${quantizeBase}: measured ${formatBytes(o.peakRss)}, estimate ${formatBytes(o.estimate)} (${(o.estimate / o.peakRss).toFixed(2)}x); terms ${Object.entries(
        o.breakdown,
      )
        .map(([k, v]) => `${k} ${formatBytes(v)}`)
        .join(', ')}; losses ${o.losses.map((l) => l.toFixed(3)).join(' ')}`,
    );
    assert.ok(o.losses.every(Number.isFinite), `${quantizeBase}: finite losses`);
  }
  console.log(rows.join('\n'));
  for (const [q, o] of Object.entries(results))
    assert.ok(
      Math.abs(o.estimate / o.peakRss - 1) <= 0.15,
      `${q}: estimate ${formatBytes(o.estimate)} vs measured ${formatBytes(o.peakRss)}\n${rows.join('\n')}`,
    );
  assert.ok(
    results.int4.peakRss < 0.6 * results.none.peakRss,
    `int4 base peak ${formatBytes(results.int4.peakRss)} vs float32 ${formatBytes(results.none.peakRss)}`,
  );
});
