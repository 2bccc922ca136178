// The sample dataset: generated with the demo's icon generator into <data>/samples/, imported through the same
// datasets.import as any folder, split 80/20 with seed 0. Asking again returns the existing dataset.
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { handlers } from './context';
import { datasetIoHandlers } from './dataset-io';
import { datasetsHandlers } from './datasets';
import { writeDemoDataset } from '../models/demo/dataset';

export const sampleName = (family: string) => `Sample: icons (${family})`;

export const samplesHandlers = handlers({
  'datasets.sample': async (p, ctx) => {
    const family = p.family ?? 'shapes';
    const count = p.count ?? 1200;
    const name = sampleName(family);
    const list = (await datasetsHandlers['datasets.list']({}, ctx)) as {
      datasets: Array<{ id: number; name: string; itemCount: number }>;
    };
    const existing = list.datasets.find((d) => d.name === name && d.itemCount > 0);
    if (existing) {
      const n = async (split: 'train' | 'val' | 'test') =>
        (
          (await datasetIoHandlers['items.list']({ datasetId: existing.id, limit: 1, split } as never, ctx)) as {
            total: number;
          }
        ).total;
      return {
        datasetId: existing.id,
        name,
        items: existing.itemCount,
        counts: { train: await n('train'), val: await n('val'), test: await n('test') },
        created: false,
      };
    }
    const dir = join(ctx.dataDir, 'samples', `icons-${family}-${count}`);
    if (!existsSync(join(dir, 'vqa.jsonl'))) {
      rmSync(dir, { recursive: true, force: true });
      await writeDemoDataset(dir, { seed: 7, count, families: [family] });
    }
    // vqa.jsonl only: llava.json holds the same questions (importing both would double every sample)
    const imp = await datasetIoHandlers['datasets.import']({ path: join(dir, 'vqa.jsonl'), dataset: name }, ctx);
    const split = await datasetIoHandlers['datasets.split'](
      { datasetId: imp.datasetId, seed: 0, train: 0.8, val: 0.2, test: 0 },
      ctx,
    );
    return {
      datasetId: imp.datasetId,
      name,
      items: split.counts.train + split.counts.val + split.counts.test,
      counts: split.counts,
      created: true,
    };
  },
});
