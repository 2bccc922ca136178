import type { CommandGroup } from './command';
import { UsageError, parse, printJson, table, withBackend } from './command';
import { RUN_STATUSES, type RunStatus } from '../../contract/runs';

const usage = `lenslab runs <command>

  list [--status STATUS]     list training runs (STATUS: ${RUN_STATUSES.join(', ')})

Options: --json, --data-dir DIR`;

export const runsCommand: CommandGroup = {
  name: 'runs',
  summary: 'list training runs',
  usage,
  async run(argv, ctx) {
    const [sub, ...rest] = argv;
    if (sub !== 'list') throw new UsageError(sub ? `unknown runs command "${sub}"` : 'missing runs command');
    const { values } = parse(rest, { status: { type: 'string' } }, false);
    const { runs } = await withBackend(
      ctx,
      (call) => call('runs.list', { status: values.status as RunStatus | undefined }),
      { readonly: true },
    );
    if (ctx.json) printJson(ctx, runs);
    else if (runs.length === 0)
      ctx.io.out(
        values.status
          ? `No runs with status ${values.status}.`
          : 'No runs yet. Start one with `lenslab train` or from the Train section of the app.',
      );
    else
      ctx.io.out(
        table(
          ['ID', 'NAME', 'STATUS', 'STEP', 'DATASET', 'MODEL', 'CREATED'],
          runs.map((r) => [
            r.id,
            r.name,
            r.status,
            r.totalSteps ? `${r.step}/${r.totalSteps}` : r.step,
            r.datasetName,
            r.modelName,
            r.createdAt,
          ]),
        ),
      );
    return 0;
  },
};
