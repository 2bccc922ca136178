import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { createBridge, INVOKE_CHANNEL, EVENT_CHANNEL, type IpcRendererLike } from '../../src-main/app/bridge';
import type { LenslabBridge } from '../../src-main/contract/index';

function fakeIpc() {
  const emitter = new EventEmitter();
  const invoked: unknown[][] = [];
  const ipc = {
    invoke: async (...args: unknown[]) => {
      invoked.push(args);
      return { ok: true, result: { echoed: args } };
    },
    on: (channel: string, l: (...a: any[]) => void) => emitter.on(channel, l),
    removeListener: (channel: string, l: (...a: any[]) => void) => emitter.removeListener(channel, l),
  };
  return { ipc: ipc as unknown as IpcRendererLike, emitter, invoked };
}

test('preload bridge: invoke goes over lenslab:invoke with params defaulting to {}', async () => {
  const { ipc, invoked } = fakeIpc();
  const bridge: LenslabBridge = createBridge(ipc);
  await bridge.invoke('datasets.list');
  await bridge.invoke('datasets.create', { name: 'x' });
  assert.deepEqual(invoked, [
    [INVOKE_CHANNEL, 'datasets.list', {}],
    [INVOKE_CHANNEL, 'datasets.create', { name: 'x' }],
  ]);
});

test('preload bridge: events are filtered by name, never expose the IPC event, and unsubscribe', () => {
  const { ipc, emitter } = fakeIpc();
  const bridge = createBridge(ipc);
  const got: unknown[][] = [];
  const off = bridge.on('datasets.changed', (...args: unknown[]) => got.push(args));
  const sender = { sender: 'secret' };
  emitter.emit(EVENT_CHANNEL, sender, 'datasets.changed', { kind: 'created', id: 1 });
  emitter.emit(EVENT_CHANNEL, sender, 'runs.status', { runId: 1, status: 'running' });
  assert.deepEqual(got, [[{ kind: 'created', id: 1 }]]);
  assert.equal(emitter.listenerCount(EVENT_CHANNEL), 1);
  off();
  assert.equal(emitter.listenerCount(EVENT_CHANNEL), 0);
  emitter.emit(EVENT_CHANNEL, sender, 'datasets.changed', { kind: 'deleted', id: 1 });
  assert.equal(got.length, 1);
});
