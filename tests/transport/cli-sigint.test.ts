// Ctrl-C in a long CLI command cancels its request through the request's AbortSignal: the handler stops cleanly
// (an import stores nothing), the command reports it and exits 1, and the SIGINT listener is gone afterwards.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { runCli } from '../../src-main/cli';
import { tempDir } from '../helpers/tmp';
import { png, write } from '../datasets/fixtures';

const tmp = tempDir('cli-sigint-');
after(() => tmp.cleanup());

test('Ctrl-C during `lenslab import` cancels the import; nothing is stored', async () => {
  const src = join(tmp.dir, 'src');
  const n = 300;
  for (let i = 0; i < n; i++) write(src, `img${i}.png`, await png(2000 + i));
  write(
    src,
    'data.jsonl',
    Array.from({ length: n }, (_, i) =>
      JSON.stringify({ image: `img${i}.png`, question: `q${i}`, answer: `a${i}` }),
    ).join('\n'),
  );
  const dataDir = join(tmp.dir, 'data');
  const listeners = process.listenerCount('SIGINT');
  // the command must not be killed by the signal below: keep a listener of our own, as a terminal's default would kill
  const keep = () => {};
  process.on('SIGINT', keep);
  const out: string[] = [];
  const err: string[] = [];
  let sent = false;
  try {
    const code = await runCli(
      ['import', src, '--dataset', 'big', '--data-dir', dataDir],
      {
        out: (t) => out.push(t),
        err: (t) => {
          err.push(t);
          // the first progress line: the import is under way
          if (!sent && /^images \d+\/\d+$/.test(t)) {
            sent = true;
            process.emit('SIGINT', 'SIGINT');
          }
        },
      },
      {},
    );
    assert.ok(sent, `progress was reported (${err.join(' | ')})`);
    assert.equal(code, 1, out.join('\n'));
    assert.match(err.join('\n'), /import cancelled; nothing was stored/);
  } finally {
    process.removeListener('SIGINT', keep);
  }
  assert.equal(process.listenerCount('SIGINT'), listeners, 'the command removed its SIGINT listener');
  const list = await runCli(
    ['datasets', 'list', '--json', '--data-dir', dataDir],
    { out: (t) => out.push(t), err: (t) => err.push(t) },
    {},
  );
  assert.equal(list, 0);
  assert.deepEqual(JSON.parse(out.at(-1)!), [], 'no dataset, no items');
});
