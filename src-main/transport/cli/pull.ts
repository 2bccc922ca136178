// `lenslab pull ORG/NAME[@REVISION]`: download a model from the Hugging Face Hub into the standard Hub cache and
// register it (hub.pull + hub.progress events, as the app does). Ctrl-C stops it; the same command resumes.
import type { CommandGroup } from './command';
import { UsageError, parse, printJson, table, withBackend } from './command';
import { ApiError } from '../../contract/errors';
import type { Pull } from '../../contract/hub';
import { fmt } from '../../hub/pull';

const usage = `lenslab pull ORG/NAME[@REVISION] [--name NAME] [--no-register]
lenslab pull --catalog | --cached

Download a model from the Hugging Face Hub (only safetensors weights, configs, tokenizer and templates; never
pickles), verify every file (sha256 for LFS files), keep it in the Hub cache that Python tools share
(HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub) and register it as a model. An interrupted pull
(Ctrl-C, a lost connection) resumes where it stopped when run again.

  --name NAME       name of the registered model (default ORG/NAME)
  --no-register     download only
  --catalog         the models Lenslab supports, their download size and memory needs here
  --cached          model snapshots already in the Hub cache

Environment: HF_TOKEN (gated or private models), HF_ENDPOINT (a mirror), HF_HUB_CACHE / HF_HOME, HF_HUB_OFFLINE=1.
Options: --json, --data-dir DIR`;

function clock(s: number | null): string {
  if (s === null) return '--:--';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return `${h ? `${h}:${String(m).padStart(2, '0')}` : m}:${String(sec).padStart(2, '0')}`;
}

export function progressLine(p: Pull): string {
  const pr = p.progress;
  if (pr.phase === 'resolving') return `${p.repo}: asking the Hub…`;
  const pct = pr.totalBytes ? Math.floor((100 * pr.bytes) / pr.totalBytes) : 0;
  const speed = pr.bytesPerSecond ? `${fmt(Math.round(pr.bytesPerSecond))}/s` : '';
  return `${p.repo} ${pr.phase === 'verifying' ? 'verifying' : ''} ${pr.file ?? ''} ${pct}% ${fmt(pr.bytes)}/${fmt(pr.totalBytes)} (${pr.filesDone}/${pr.filesTotal} files) ${speed} ETA ${clock(pr.etaSeconds)}`.replace(
    /\s+/g,
    ' ',
  );
}

export const pullCommand: CommandGroup = {
  name: 'pull',
  summary: 'download a model from the Hugging Face Hub',
  usage,
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, {
      name: { type: 'string' },
      'no-register': { type: 'boolean' },
      catalog: { type: 'boolean' },
      cached: { type: 'boolean' },
    });
    if (values.catalog) {
      const c = await withBackend(ctx, (call) => call('hub.catalog'));
      if (ctx.json) printJson(ctx, c);
      else
        ctx.io.out(
          table(
            ['MODEL', 'REPOS', 'DOWNLOAD', 'CHAT', 'TRAIN', 'HERE'],
            c.entries.map((e) => [
              e.title,
              e.sources.map((s) => s.repo).join(' + ') || '(bundled)',
              e.downloadBytes ? fmt(e.downloadBytes) : '-',
              e.chatBytes ? fmt(e.chatBytes) : '-',
              e.trainBytes ? fmt(e.trainBytes) : '-',
              e.supported ? (e.fit ?? 'compose') : `not supported: ${e.note}`,
            ]),
          ) +
            `\n\nMemory available now: ${fmt(c.availableBytes)} of ${fmt(c.totalBytes)}. Hub: ${c.endpoint}, cache ${c.cacheDir}.`,
        );
      return 0;
    }
    if (values.cached) {
      const c = await withBackend(ctx, (call) => call('hub.cached'));
      if (ctx.json) printJson(ctx, c);
      else if (!c.snapshots.length) ctx.io.out(`No models in ${c.cacheDir}.`);
      else
        ctx.io.out(
          table(
            ['REPO', 'COMMIT', 'REFS', 'SIZE', 'MODEL ID', 'FOLDER'],
            c.snapshots.map((s) => [s.repo, s.commit.slice(0, 10), s.refs.join(','), fmt(s.bytes), s.modelId, s.dir]),
          ),
        );
      return 0;
    }
    if (positionals.length !== 1)
      throw new UsageError(positionals.length ? 'give one ORG/NAME[@REVISION]' : 'missing ORG/NAME');
    return withBackend(ctx, async (call, backend) => {
      const { pull } = await call('hub.pull', {
        repo: positionals[0],
        name: values.name,
        register: !values['no-register'],
      });
      const tty = !!process.stderr.isTTY && !ctx.json;
      let last = '';
      const final = await new Promise<Pull>((resolve) => {
        const off = backend.events.subscribe((event, payload) => {
          if (event !== 'hub.progress') return;
          const p = payload as Pull;
          if (p.id !== pull.id) return;
          if (p.status !== 'running') {
            off();
            process.removeListener('SIGINT', onSigint);
            resolve(p);
            return;
          }
          const line = progressLine(p);
          if (tty) process.stderr.write(`\r${line.padEnd(last.length)}`);
          else if (p.progress.message && p.progress.message !== last) ctx.io.err(p.progress.message);
          last = tty ? line : (p.progress.message ?? last);
        });
        const onSigint = () => void call('hub.cancel', { id: pull.id });
        process.once('SIGINT', onSigint);
      });
      if (tty) process.stderr.write('\n');
      if (ctx.json) printJson(ctx, final);
      if (final.status === 'cancelled') {
        ctx.io.err(
          `Stopped. Run the same command to resume (${fmt(final.progress.bytes)} of ${fmt(final.progress.totalBytes)} kept).`,
        );
        return 1;
      }
      if (final.status === 'failed') throw new ApiError(final.error!.code as never, final.error!.message);
      if (!ctx.json)
        ctx.io.out(
          `${final.repo}@${final.commit!.slice(0, 10)}: ${fmt(final.downloadedBytes)} downloaded, ${fmt(final.reusedBytes)} already in the cache\n` +
            `Folder: ${final.dir}\n` +
            (final.modelId
              ? `Registered as model ${final.modelId}. Chat: lenslab generate --model ${final.dir} --prompt "…"`
              : ''),
        );
      return 0;
    });
  },
};
