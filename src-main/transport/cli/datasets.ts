import type { CommandGroup } from './command';
import { UsageError, intArg, parse, printJson, table, withBackend } from './command';

const usage = `lenslab datasets <command>

  list                                  list datasets
  create NAME [--description TEXT]      create an empty dataset
  rename ID NAME                        rename a dataset
  delete ID                             delete a dataset with its items

Options: --json, --data-dir DIR`;

export const datasetsCommand: CommandGroup = {
  name: 'datasets',
  summary: 'list, create, rename and delete datasets',
  usage,
  async run(argv, ctx) {
    const [sub, ...rest] = argv;
    switch (sub) {
      case 'list': {
        parse(rest, {}, false);
        const { datasets } = await withBackend(ctx, (call) => call('datasets.list'), { readonly: true });
        if (ctx.json) printJson(ctx, datasets);
        else if (datasets.length === 0) ctx.io.out('No datasets yet. Create one with: lenslab datasets create NAME');
        else
          ctx.io.out(
            table(
              ['ID', 'NAME', 'ITEMS', 'UPDATED'],
              datasets.map((d) => [d.id, d.name, d.itemCount, d.updatedAt]),
            ),
          );
        return 0;
      }
      case 'create': {
        const { values, positionals } = parse(rest, { description: { type: 'string' } });
        if (positionals.length !== 1) throw new UsageError('create takes exactly one NAME (quote names with spaces)');
        const d = await withBackend(ctx, (call) =>
          call('datasets.create', { name: positionals[0], description: values.description }),
        );
        if (ctx.json) printJson(ctx, d);
        else ctx.io.out(`Created dataset ${d.id} "${d.name}"`);
        return 0;
      }
      case 'rename': {
        const { positionals } = parse(rest, {});
        if (positionals.length !== 2) throw new UsageError('rename takes ID and NAME');
        const d = await withBackend(ctx, (call) =>
          call('datasets.update', { id: intArg(positionals[0], 'ID'), name: positionals[1] }),
        );
        if (ctx.json) printJson(ctx, d);
        else ctx.io.out(`Renamed dataset ${d.id} to "${d.name}"`);
        return 0;
      }
      case 'delete': {
        const { positionals } = parse(rest, {});
        if (positionals.length !== 1) throw new UsageError('delete takes one ID');
        const r = await withBackend(ctx, (call) => call('datasets.delete', { id: intArg(positionals[0], 'ID') }));
        if (ctx.json) printJson(ctx, r);
        else ctx.io.out(`Deleted dataset ${r.id}`);
        return 0;
      }
      default:
        throw new UsageError(sub ? `unknown datasets command "${sub}"` : 'missing datasets command');
    }
  },
};
