import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRelay, type ParentSideLike } from '../../src-main/transport/ipc';
import { tempDir } from '../helpers/tmp';

const tmp = tempDir('backend-process-');
after(() => tmp.cleanup());
const entry = fileURLToPath(new URL('../../src-main/app/backend-process.ts', import.meta.url));
const fakePort = fileURLToPath(new URL('./fake-parent-port.mjs', import.meta.url));

test('backend-process hosts the services over parentPort (run in plain Node with a stand-in port)', async () => {
  const dataDir = join(tmp.dir, 'data');
  const child = fork(entry, [], {
    execArgv: ['--import', 'tsx', '--import', fakePort],
    env: { ...process.env, LENSLAB_DATA_DIR: dataDir },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const side: ParentSideLike = {
    postMessage: (m) => child.send(m as object),
    on: ((event: string, l: (...a: any[]) => void) => child.on(event, l)) as ParentSideLike['on'],
  };
  const relay = createRelay(side);
  const events: unknown[] = [];
  relay.onEvent((e, p) => events.push([e, p]));
  assert.deepEqual(await relay.ready, { dataDir });
  const info: any = await relay.invoke('system.info', {});
  assert.equal(info.result.host, 'electron');
  assert.equal(info.result.dataDir, dataDir);
  const created: any = await relay.invoke('datasets.create', { name: 'In the utility process' });
  assert.equal(created.ok, true);
  const bad: any = await relay.invoke('datasets.create', { name: '' });
  assert.equal(bad.error.field, 'name');
  assert.deepEqual(events, [['datasets.changed', { kind: 'created', id: created.result.id }]]);
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
  const after: any = await relay.invoke('datasets.list', {});
  assert.equal(after.error.code, 'unavailable');
});

test('backend-process refuses to run outside a utilityProcess', async () => {
  const child = fork(entry, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  let err = '';
  child.stderr!.on('data', (c) => (err += c));
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  assert.equal(code, 1);
  assert.match(err, /utilityProcess/);
});
