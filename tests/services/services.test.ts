import { test, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createBackend, type Backend } from '../../src-main/services/backend';
import { insertRun, updateRunStatus, insertMetrics } from '../../src-main/storage/runs-queries';
import { LENSLAB_VERSION } from '../../src-main/services/version';
import { methods } from '../../src-main/contract/index';
import { registry } from '../../src-main/services/registry';
import { tempDir } from '../helpers/tmp';
import { dispatchTo } from '../helpers/dispatch';

const tmp = tempDir('services-');
after(() => tmp.cleanup());

let backend: Backend;
const seen: { event: string; payload: unknown }[] = [];
const quiet = { error() {}, warn() {} };

beforeEach(() => {
  backend = createBackend({ dataDir: tmp.dir, dbFile: ':memory:', host: 'test', log: quiet });
  seen.length = 0;
  backend.events.subscribe((event, payload) => seen.push({ event, payload }));
});
afterEach(() => backend.close());

const { ok, fail } = dispatchTo(() => backend);

test('every contract method has a handler and vice versa', () => {
  assert.deepEqual(Object.keys(registry).sort(), Object.keys(methods).sort());
});

test('system.info reports version, data dir and schema', async () => {
  const info = await ok('system.info');
  assert.equal(info.name, 'lenslab');
  assert.equal(info.version, JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version);
  assert.equal(info.version, LENSLAB_VERSION);
  assert.equal(info.dataDir, tmp.dir);
  assert.ok(info.schemaVersion >= 1);
  assert.equal(info.host, 'test');
  assert.equal((await ok('system.ping', { echo: 'hi' })).echo, 'hi');
});

test('datasets: create, list, update, delete, with events', async () => {
  assert.deepEqual(await ok('datasets.list'), { datasets: [] });
  const a = await ok('datasets.create', { name: '  Street signs  ', description: 'photos' });
  assert.equal(a.name, 'Street signs', 'name is trimmed');
  assert.equal(a.itemCount, 0);
  assert.deepEqual(seen, [{ event: 'datasets.changed', payload: { kind: 'created', id: a.id } }]);
  const list = await ok('datasets.list', {});
  assert.deepEqual(
    list.datasets.map((d: any) => d.name),
    ['Street signs'],
  );
  const up = await ok('datasets.update', { id: a.id, name: 'Signs' });
  assert.equal(up.name, 'Signs');
  assert.equal(up.description, 'photos');
  assert.equal((await ok('datasets.get', { id: a.id })).name, 'Signs');
  assert.deepEqual(await ok('datasets.delete', { id: a.id }), { deleted: true, id: a.id });
  assert.deepEqual(
    seen.map((s) => (s.payload as any).kind),
    ['created', 'updated', 'deleted'],
  );
  assert.deepEqual(await ok('datasets.list'), { datasets: [] });
});

test('datasets: typed errors name the field', async () => {
  await ok('datasets.create', { name: 'cats' });
  const dup = await fail('datasets.create', { name: 'cats' });
  assert.equal(dup.code, 'conflict');
  assert.equal(dup.field, 'name');
  const empty = await fail('datasets.create', { name: '   ' });
  assert.equal(empty.code, 'invalid_request');
  assert.equal(empty.field, 'name');
  assert.match(empty.message, /name: must not be empty/);
  const wrongType = await fail('datasets.create', { name: 42 });
  assert.equal(wrongType.field, 'name');
  assert.match(wrongType.message, /expected string/);
  const extra = await fail('datasets.create', { name: 'x', colour: 'red' });
  assert.equal(extra.code, 'invalid_request');
  assert.equal(extra.field, 'colour');
  assert.match(extra.message, /colour: unknown field/);
  const missing = await fail('datasets.get', { id: 99 });
  assert.equal(missing.code, 'not_found');
  assert.equal(missing.field, 'id');
  const badId = await fail('datasets.delete', { id: -1 });
  assert.equal(badId.field, 'id');
  const nothing = await fail('datasets.update', { id: 1 });
  assert.equal(nothing.code, 'invalid_request');
  const ctrl = await fail('datasets.create', { name: 'a\u0007b' });
  assert.match(ctrl.message, /control characters/);
});

test('garbage requests never throw', async () => {
  for (const [m, p] of [
    [undefined, undefined],
    [42, {}],
    ['', {}],
    ['nope.nothing', {}],
    ['__proto__', {}],
    ['toString', {}],
    ['datasets.create', 'a string'],
    ['datasets.create', [1, 2]],
    ['datasets.list', { x: 1 }],
  ] as [unknown, unknown][]) {
    const env = await backend.dispatcher.dispatch(m, p);
    assert.equal(env.ok, false, `${String(m)} should fail`);
    if (!env.ok) assert.ok(['invalid_request', 'not_found'].includes(env.error.code), JSON.stringify(env.error));
  }
  const unknown = await fail('nope.nothing');
  assert.equal(unknown.code, 'not_found');
  assert.equal(unknown.field, 'method');
});

test('a dataset in use by an unfinished run cannot be deleted', async () => {
  const d = await ok('datasets.create', { name: 'busy' });
  const r = insertRun(backend.db, { name: 'r1', config: {}, datasetId: d.id });
  const err = await fail('datasets.delete', { id: d.id });
  assert.equal(err.code, 'conflict');
  updateRunStatus(backend.db, r.id, 'completed');
  await ok('datasets.delete', { id: d.id });
  const run = await ok('runs.get', { id: r.id });
  assert.equal(run.datasetId, null, 'the run keeps its history without the dataset');
});

test('runs: list, filter, get, metrics', async () => {
  const d = await ok('datasets.create', { name: 'd' });
  const r1 = insertRun(backend.db, { name: 'one', config: { lr: 0.001, epochs: 2 }, datasetId: d.id, totalSteps: 20 });
  const r2 = insertRun(backend.db, { name: 'two', config: {} });
  updateRunStatus(backend.db, r1.id, 'running', { step: 3 });
  insertMetrics(backend.db, r1.id, [
    { step: 1, name: 'loss', value: 2.25 },
    { step: 2, name: 'loss', value: 1.5 },
  ]);
  const all = await ok('runs.list');
  assert.deepEqual(
    all.runs.map((r: any) => r.name),
    ['two', 'one'],
  );
  const running = await ok('runs.list', { status: 'running' });
  assert.deepEqual(
    running.runs.map((r: any) => r.id),
    [r1.id],
  );
  const one = await ok('runs.get', { id: r1.id });
  assert.deepEqual(one.config, { lr: 0.001, epochs: 2 });
  assert.equal(one.datasetName, 'd');
  assert.equal(one.step, 3);
  assert.deepEqual(
    (await ok('runs.metrics', { id: r1.id, name: 'loss' })).points.map((p: any) => p.value),
    [2.25, 1.5],
  );
  assert.equal((await fail('runs.list', { status: 'exploded' })).field, 'status');
  assert.equal((await fail('runs.metrics', { id: r2.id + 100 })).code, 'not_found');
});

test('a handler that breaks its output contract yields an internal error, not a crash', async () => {
  const original = (registry as any)['system.ping'];
  (registry as any)['system.ping'] = () => ({ pong: 'yes' });
  try {
    const err = await fail('system.ping');
    assert.equal(err.code, 'internal');
    assert.match(err.message, /invalid result for system.ping/);
  } finally {
    (registry as any)['system.ping'] = original;
  }
  (registry as any)['system.ping'] = () => {
    throw new TypeError('boom');
  };
  try {
    const err = await fail('system.ping');
    assert.equal(err.code, 'internal');
    assert.match(err.message, /boom/);
  } finally {
    (registry as any)['system.ping'] = original;
  }
});

test('events with payloads that break the contract are refused', () => {
  assert.throws(
    () => backend.ctx.emit('datasets.changed', { kind: 'exploded', id: 1 } as any),
    /payload of event datasets.changed: kind/,
  );
  assert.throws(() => backend.ctx.emit('nope' as any, {} as any), /unknown event/);
});
