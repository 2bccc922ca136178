// `lenslab import PATH` and `lenslab export DATASET DIR`: dataset import/export from the command line.
import type { CommandGroup } from './command';
import { ApiError, UsageError, intArg, parse, printJson, withBackend } from './command';
import { EXPORT_FORMATS, IMPORT_FORMATS } from '../../contract/datasets-io';
import { GGUF_QUANTS } from '../../contract/models-export';

const importUsage = `lenslab import PATH [options]

Import a dataset from a folder, a .zip, a .json/.jsonl/.csv or a .parquet file. The format is detected
(${IMPORT_FORMATS.join(', ')}) unless --format is given. The import stores everything or nothing;
records with errors are skipped and listed (or, with --strict, make the whole import fail).

Options:
  --dataset NAME       dataset to import into (created if missing; default: the source's name)
  --dataset-id ID      existing dataset to append to
  --format F           one of ${IMPORT_FORMATS.join(', ')}
  --strict             fail (store nothing) if any record has an error
  --image-root DIR     also look for relative image paths here (LLaVA image folder)
  --text-column C      the caption column (imagefolder / parquet)
  --image-column C     the image column (parquet)
  --no-group           keep records about the same image as separate items (default: one item per image)
  --json, --data-dir DIR`;

const exportUsage = `lenslab export DATASET_ID DIR --format F [options]
lenslab export --model DIR [--adapter DIR | --run ID [--step N]] OUT --format gguf [--quant Q] [--name NAME]

Export a dataset into DIR (which must be empty) with its images copied alongside, or a model (LLaVA, LLaMA or
Qwen2; with an adapter merged in) as GGUF files for llama.cpp, Ollama and LM Studio: <name>-<quant>.gguf, for a
LLaVA mmproj-<name>-<quant>.gguf (the vision tower and projector), and an Ollama Modelfile
(\`ollama create NAME -f OUT/Modelfile\`).

Model options (--format gguf):
  --model DIR          the model folder, or a registered model's id
  --adapter DIR        a PEFT adapter folder to merge in (or --run ID [--step N]: a run's adapter)
  --quant Q            ${GGUF_QUANTS.join(', ')} (default q8_0; the mmproj stays q8_0 for q4_0)
  --name NAME          the name in the files (default: the model or adapter folder's name)

Options:
  --format F           ${EXPORT_FORMATS.join(', ')}
  --split S            only train, val or test
  --plain              leave out Lenslab's own "lenslab" field (kinds, tags, split) from records
  --overwrite          replace an earlier Lenslab export in DIR (other folders are refused)
  --json, --data-dir DIR`;

function oneOf<T extends string>(value: string | undefined, list: readonly T[], name: string): T | undefined {
  if (value === undefined) return undefined;
  if (!list.includes(value as T)) throw new UsageError(`${name} must be one of ${list.join(', ')}, got "${value}"`);
  return value as T;
}

export const importCommand: CommandGroup = {
  name: 'import',
  summary: 'import a dataset (folder, zip, LLaVA/messages JSON, VQA, imagefolder, parquet)',
  usage: importUsage,
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, {
      dataset: { type: 'string' },
      'dataset-id': { type: 'string' },
      format: { type: 'string' },
      strict: { type: 'boolean' },
      'image-root': { type: 'string' },
      'text-column': { type: 'string' },
      'image-column': { type: 'string' },
      'no-group': { type: 'boolean' },
    });
    if (positionals.length !== 1) throw new UsageError('import takes exactly one PATH');
    const rep = await withBackend(
      ctx,
      (call, backend) => {
        let shown = -1;
        const off = ctx.json
          ? () => {}
          : backend.events.subscribe((event, payload) => {
              if (event !== 'datasets.importProgress') return;
              const e = payload as { done: number; total: number };
              const pct = e.total ? Math.floor((100 * e.done) / e.total) : 100;
              if (pct >= shown + 10 || e.done === e.total) {
                shown = pct;
                ctx.io.err(`images ${e.done}/${e.total}`);
              }
            });
        return call('datasets.import', {
          path: positionals[0],
          dataset: values.dataset,
          datasetId: values['dataset-id'] === undefined ? undefined : intArg(values['dataset-id'], '--dataset-id'),
          format: oneOf(values.format, IMPORT_FORMATS, '--format'),
          strict: values.strict,
          imageRoot: values['image-root'],
          textColumn: values['text-column'],
          imageColumn: values['image-column'],
          groupByImage: values['no-group'] ? false : undefined,
        }).finally(off);
      },
      { interruptible: true },
    );
    if (ctx.json) {
      printJson(ctx, rep);
      return 0;
    }
    ctx.io.out(
      `Imported ${rep.imported} item(s) with ${rep.annotations} label(s) into dataset ${rep.datasetId} "${rep.datasetName}" (format ${rep.format}).`,
    );
    ctx.io.out(`Images: ${rep.imagesStored} stored, ${rep.imagesReused} already present.`);
    if (rep.alreadyPresentCount > 0)
      ctx.io.out(
        `Not imported again: ${rep.alreadyPresentCount} item(s) already in this dataset (same image, same labels).`,
      );
    const line = (p: { ref: string; field?: string; message: string }) =>
      `  ${p.ref}${p.field ? `${p.field.startsWith('[') ? '' : '.'}${p.field}` : ''}: ${p.message}`;
    if (rep.skippedCount > 0) {
      ctx.io.out(`Skipped ${rep.skippedCount} record(s):`);
      for (const p of rep.skipped.slice(0, 50)) ctx.io.out(line(p));
      if (rep.skippedCount > 50) ctx.io.out(`  … and ${rep.skippedCount - 50} more (use --json for all)`);
    }
    if (rep.warningCount > 0) {
      ctx.io.out(`${rep.warningCount} warning(s):`);
      for (const p of rep.warnings.slice(0, 20)) ctx.io.out(line(p));
      if (rep.warningCount > 20) ctx.io.out(`  … and ${rep.warningCount - 20} more`);
    }
    return 0;
  },
};

export const exportCommand: CommandGroup = {
  name: 'export',
  summary: 'export a dataset as LLaVA JSON, messages JSONL or imagefolder, images alongside',
  usage: exportUsage,
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, {
      format: { type: 'string' },
      split: { type: 'string' },
      plain: { type: 'boolean' },
      overwrite: { type: 'boolean' },
      model: { type: 'string' },
      adapter: { type: 'string' },
      run: { type: 'string' },
      step: { type: 'string' },
      quant: { type: 'string' },
      name: { type: 'string' },
    });
    if (values.format === 'gguf' || values.model !== undefined) return exportModel(values, positionals, ctx);
    if (positionals.length !== 2) throw new UsageError('export takes DATASET_ID and DIR');
    const format = oneOf(values.format, EXPORT_FORMATS, '--format');
    if (!format) throw new UsageError('--format is required');
    const rep = await withBackend(
      ctx,
      (call) =>
        call('datasets.export', {
          datasetId: intArg(positionals[0], 'DATASET_ID'),
          dir: positionals[1],
          format,
          split: oneOf(values.split, ['train', 'val', 'test'] as const, '--split'),
          lenslabFields: values.plain ? false : undefined,
          overwrite: values.overwrite,
        }),
      { readonly: true },
    ).catch((e: unknown) => {
      // the service speaks of "allow overwriting"; on the command line that is --overwrite
      if (e instanceof ApiError && e.code === 'conflict' && !values.overwrite)
        throw new ApiError(e.code, `${e.message}; --overwrite replaces an earlier export there`, e.field);
      throw e;
    });
    if (ctx.json) printJson(ctx, rep);
    else {
      ctx.io.out(
        `Exported ${rep.items} item(s) as ${rep.records} ${format} record(s) and ${rep.images} image(s) to ${rep.file}`,
      );
      for (const s of rep.skipped.slice(0, 50)) ctx.io.out(`  skipped item ${s.itemId}: ${s.reason}`);
    }
    return 0;
  },
};

type ExportValues = {
  format?: string;
  overwrite?: boolean;
  model?: string;
  adapter?: string;
  run?: string;
  step?: string;
  quant?: string;
  name?: string;
};

async function exportModel(
  values: ExportValues,
  positionals: string[],
  ctx: Parameters<CommandGroup['run']>[1],
): Promise<number> {
  if (values.format !== 'gguf') throw new UsageError('--model exports need --format gguf');
  if (!values.model) throw new UsageError('--format gguf needs --model DIR (or a registered model id)');
  if (positionals.length !== 1) throw new UsageError('a GGUF export takes one output folder OUT');
  if (values.adapter && values.run) throw new UsageError('give --adapter or --run, not both');
  if (values.step !== undefined && !values.run) throw new UsageError('--step needs --run');
  const model = /^\d+$/.test(values.model) ? { id: intArg(values.model, '--model') } : { path: values.model };
  const adapter = values.adapter
    ? { path: values.adapter }
    : values.run
      ? {
          runId: intArg(values.run, '--run'),
          step: values.step === undefined ? undefined : intArg(values.step, '--step'),
        }
      : undefined;
  const quant = oneOf(values.quant, GGUF_QUANTS, '--quant');
  const rep = await withBackend(ctx, (call, backend) => {
    let shown = -1;
    const off = ctx.json
      ? () => {}
      : backend.events.subscribe((event, payload) => {
          if (event !== 'models.exportProgress') return;
          const e = payload as { done: number; total: number };
          const pct = e.total ? Math.floor((100 * e.done) / e.total) : 100;
          if (pct >= shown + 25 || e.done === e.total) {
            shown = pct;
            ctx.io.err(`tensors ${e.done}/${e.total}`);
          }
        });
    return call('models.exportGguf', {
      model,
      adapter,
      dir: positionals[0],
      quant,
      name: values.name,
      overwrite: values.overwrite,
    }).finally(off);
  }).catch((e: unknown) => {
    if (e instanceof ApiError && e.code === 'conflict' && !values.overwrite)
      throw new ApiError(e.code, `${e.message}; --overwrite replaces an earlier GGUF export there`, e.field);
    throw e;
  });
  if (ctx.json) printJson(ctx, rep);
  else {
    const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
    ctx.io.out(`Exported ${rep.quant} GGUF to ${rep.dir}:`);
    ctx.io.out(`  ${rep.model.file} (${rep.model.tensors} tensors, ${mb(rep.model.bytes)})`);
    if (rep.mmproj) ctx.io.out(`  ${rep.mmproj.file} (${rep.mmproj.tensors} tensors, ${mb(rep.mmproj.bytes)})`);
    ctx.io.out(`  Modelfile: ollama create NAME -f ${rep.modelfile}`);
    for (const n of rep.notes) ctx.io.out(`Note: ${n}.`);
  }
  return 0;
}
