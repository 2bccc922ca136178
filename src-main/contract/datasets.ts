import { z } from 'zod';
import { defineEvents, defineMethods } from './define';
import { Id, Name, NoParams, Timestamp } from './common';

export const Dataset = z.object({
  id: Id,
  name: z.string(),
  description: z.string(),
  itemCount: z.int().nonnegative(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});
export type Dataset = z.infer<typeof Dataset>;

const Description = z.string().max(2000, 'must be at most 2000 characters');

export const datasetsMethods = defineMethods({
  'datasets.list': {
    input: NoParams,
    output: z.object({ datasets: z.array(Dataset) }),
    summary: 'All datasets, most recently updated first.',
  },
  'datasets.get': { input: z.strictObject({ id: Id }), output: Dataset, summary: 'One dataset.' },
  'datasets.find': {
    input: z
      .strictObject({
        /** The dataset with this exact name ... */
        name: z.string().min(1).max(200).optional(),
        /** ... or the one most recently imported from this path (as datasets.import received it, resolved). */
        importedFrom: z.string().min(1).max(4096).optional(),
      })
      .refine((p) => (p.name === undefined) !== (p.importedFrom === undefined), {
        message: 'give name or importedFrom (one of them)',
        path: ['name'],
      }),
    output: z.object({ dataset: Dataset.nullable() }),
    summary: 'Look a dataset up by name or by the path it was imported from; null when there is none.',
  },
  'datasets.create': {
    input: z.strictObject({ name: Name, description: Description.optional() }),
    output: Dataset,
    summary: 'Create an empty dataset (name must be unique).',
  },
  'datasets.update': {
    input: z.strictObject({ id: Id, name: Name.optional(), description: Description.optional() }),
    output: Dataset,
    summary: 'Rename a dataset and/or change its description.',
  },
  'datasets.delete': {
    input: z.strictObject({ id: Id }),
    output: z.object({ deleted: z.literal(true), id: Id }),
    summary: 'Delete a dataset with its items and annotations (runs keep their history).',
  },
});

export const datasetsEvents = defineEvents({
  'datasets.changed': z.object({ kind: z.enum(['created', 'updated', 'deleted']), id: Id }),
});
