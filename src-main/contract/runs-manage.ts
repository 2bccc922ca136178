// Finding a run by its folder, and keeping the Runs list tidy: rename, archive (hidden unless asked for, nothing deleted) and delete (with its
// folder when Lenslab made it, after the user confirmed in the app). Pure TS + zod.
import { z } from 'zod';
import { defineMethods } from './define';
import { Id, Name } from './common';
import { Run } from './runs';

export const runsManageMethods = defineMethods({
  'runs.find': {
    input: z.strictObject({ outDir: z.string().min(1, 'must not be empty').max(4096) }),
    output: z.object({ run: Run.nullable() }),
    summary: 'The latest run whose folder is outDir (resolved), or null: what `lenslab train --out DIR` resumes.',
  },
  'runs.rename': { input: z.strictObject({ id: Id, name: Name }), output: Run, summary: 'Rename a run.' },
  'runs.archive': {
    input: z.strictObject({ id: Id, archived: z.boolean() }),
    output: Run,
    summary: 'Archive a run (hidden from the Runs list by default) or bring it back.',
  },
  'runs.delete': {
    input: z.strictObject({ id: Id, deleteFiles: z.boolean().optional() }),
    output: z.object({ deleted: z.literal(true), id: Id, filesDeleted: z.boolean(), folder: z.string().nullable() }),
    summary:
      'Delete a run that is not running, its metrics, checkpoints and evaluations; with deleteFiles also its folder when it is inside the data folder.',
  },
});
