// The sample dataset: the demo's generated icon images with questions of one family, imported and split 80/20,
// so a first run needs nothing of the user's own. Pure TS + zod.
import { z } from 'zod';
import { defineMethods } from './define';
import { Id } from './common';

export const SAMPLE_FAMILIES = ['shapes', 'colors', 'counting', 'positions'] as const;

export const samplesMethods = defineMethods({
  'datasets.sample': {
    input: z.strictObject({
      /** Which questions: shapes (default), colors, counting or positions. */
      family: z.enum(SAMPLE_FAMILIES).optional(),
      /** Images to generate (default 1,200, as the demo). */
      count: z.int().min(20).max(5000).optional(),
    }),
    output: z.object({
      datasetId: Id,
      name: z.string(),
      items: z.int(),
      counts: z.object({ train: z.int(), val: z.int(), test: z.int() }),
      created: z.boolean(),
    }),
    summary:
      'Create the sample dataset (generated icon images with questions, split 80/20), or return it when it exists.',
  },
});
