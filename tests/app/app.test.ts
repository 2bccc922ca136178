import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startApp, MEDIA_SCHEME } from '../../src-main/app/app';
import { INVOKE_CHANNEL, EVENT_CHANNEL } from '../../src-main/app/bridge';
import { createFakeElectron, FakeBrowserWindow } from './fake-electron';
import { tempDir } from '../helpers/tmp';

const tmp = tempDir('app-');
after(() => tmp.cleanup());

async function until(cond: () => boolean, what: string) {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(cond(), `timed out waiting for ${what}`);
}

test('main process: secure window, IPC relay to the backend utilityProcess, events, media protocol, lockdown', async () => {
  const userData = join(tmp.dir, 'userData');
  const mainDir = join(tmp.dir, 'out', 'main');
  const { electron, record } = createFakeElectron(userData);
  const started = startApp(electron, { mainDir, env: {} });
  const win = (await started.ready) as unknown as FakeBrowserWindow;

  // The window: isolated, sandboxed, no node, our preload, the built renderer.
  const prefs = win.options.webPreferences;
  assert.equal(prefs.contextIsolation, true);
  assert.equal(prefs.sandbox, true);
  assert.equal(prefs.nodeIntegration, false);
  assert.equal(prefs.nodeIntegrationInWorker, false);
  assert.equal(prefs.webSecurity, true);
  assert.equal(prefs.webviewTag, false);
  assert.equal(prefs.preload, join(tmp.dir, 'out', 'preload', 'preload.cjs'));
  const rendererIndex = join(tmp.dir, 'out', 'renderer', 'index.html');
  assert.deepEqual(win.loaded, { file: rendererIndex });
  win.emit('ready-to-show');
  assert.equal(win.shown, true);

  // The backend runs as a utilityProcess with the data dir from userData.
  assert.equal(record.forks.length, 1);
  assert.equal(record.forks[0].modulePath, join(mainDir, 'backend.js'));
  assert.equal(record.forks[0].options.env.LENSLAB_DATA_DIR, userData);
  assert.deepEqual(await started.relay.ready, { dataDir: userData });

  // IPC: a request from our renderer is relayed and answered with an envelope.
  const invoke = record.handlers.get(INVOKE_CHANNEL)!;
  assert.ok(invoke, 'lenslab:invoke is handled');
  const trusted = { senderFrame: { url: `${pathToFileURL(rendererIndex).href}#/datasets` } };
  const created: any = await invoke(trusted, 'datasets.create', { name: 'From Electron' });
  assert.equal(created.ok, true, JSON.stringify(created));
  assert.equal(created.result.name, 'From Electron');
  const listed: any = await invoke(trusted, 'datasets.list', {});
  assert.deepEqual(
    listed.result.datasets.map((d: any) => d.name),
    ['From Electron'],
  );
  // Invalid requests get typed errors, never a crash.
  const invalid: any = await invoke(trusted, 'datasets.create', { name: 3 });
  assert.deepEqual([invalid.ok, invalid.error.code, invalid.error.field], [false, 'invalid_request', 'name']);
  const noMethod: any = await invoke(trusted, { evil: true }, {});
  assert.equal(noMethod.error.field, 'method');
  const unknown: any = await invoke(trusted, 'shell.exec', {});
  assert.equal(unknown.error.code, 'not_found');
  // Frames that are not our renderer are refused.
  const foreign: any = await invoke({ senderFrame: { url: 'https://example.com/' } }, 'datasets.list', {});
  assert.equal(foreign.error.code, 'unauthorized');
  const noFrame: any = await invoke({ senderFrame: null }, 'datasets.list', {});
  assert.equal(noFrame.error.code, 'unauthorized');

  // Backend events reach every window.
  await until(() => win.webContents.sent.some((s) => s.channel === EVENT_CHANNEL), 'an event in the window');
  const ev = win.webContents.sent.find((s) => s.channel === EVENT_CHANNEL)!;
  assert.deepEqual(ev.args, ['datasets.changed', { kind: 'created', id: created.result.id }]);

  // Lockdown: permissions denied, new windows denied (web links go to the browser), navigation away blocked.
  let granted: boolean | undefined;
  record.permissionHandler!(null, 'media', (ok) => (granted = ok));
  assert.equal(granted, false);
  for (const permission of ['clipboard-read', 'notifications', 'hid', 'serial', 'usb', 'geolocation', 'media']) {
    assert.equal(record.permissionCheckHandler?.(null, permission, 'file://'), false, `permission check ${permission}`);
  }
  for (const url of [
    'javascript:alert(1)',
    'mailto:a@b.example',
    'lenslab-media://media/x',
    'smb://host/share',
    'HTTPS://x.example',
    ' https://x.example',
  ]) {
    assert.deepEqual(win.webContents.windowOpenHandler!({ url }), { action: 'deny' }, url);
  }
  assert.deepEqual(win.webContents.windowOpenHandler!({ url: 'https://lenslab.example/docs' }), { action: 'deny' });
  assert.deepEqual(win.webContents.windowOpenHandler!({ url: 'file:///etc/passwd' }), { action: 'deny' });
  assert.deepEqual(record.opened, ['https://lenslab.example/docs']);
  let prevented = false;
  win.webContents.emit('will-navigate', { preventDefault: () => (prevented = true) }, 'https://evil.example/');
  assert.equal(prevented, true);
  for (const url of [
    'file:///etc/passwd',
    `${pathToFileURL(join(tmp.dir, 'out', 'renderer', 'other.html')).href}`,
    `${MEDIA_SCHEME}://media/thumbs/x`,
    'javascript:alert(1)',
    `${pathToFileURL(rendererIndex).href}?x=1`,
  ]) {
    prevented = false;
    win.webContents.emit('will-navigate', { preventDefault: () => (prevented = true) }, url);
    assert.equal(prevented, true, url);
  }
  prevented = false;
  win.webContents.emit(
    'will-navigate',
    { preventDefault: () => (prevented = true) },
    `${pathToFileURL(rendererIndex).href}#/runs`,
  );
  assert.equal(prevented, false);

  // lenslab-media: serves content-addressed files from the data dir, nothing else.
  assert.deepEqual(
    record.privilegedSchemes.map((s) => s.scheme),
    [MEDIA_SCHEME],
  );
  const hash = 'cd'.padEnd(64, '0');
  mkdirSync(join(userData, 'thumbs', 'cd'), { recursive: true });
  writeFileSync(join(userData, 'thumbs', 'cd', `${hash}.webp`), 'thumb-bytes');
  const media = record.protocolHandlers.get(MEDIA_SCHEME)!;
  const okRes = await media(new Request(`${MEDIA_SCHEME}://media/thumbs/cd/${hash}.webp`));
  assert.equal(await okRes.text(), 'thumb-bytes');
  assert.equal((await media(new Request(`${MEDIA_SCHEME}://media/../lenslab.db`))).status, 404);
  assert.equal((await media(new Request(`${MEDIA_SCHEME}://media/thumbs/cd/..%2F..%2Flenslab.db`))).status, 404);

  // The backend dies: requests fail as unavailable, then it is restarted and answers again.
  record.forks[0].crash(3);
  const during: any = await invoke(trusted, 'datasets.list', {});
  assert.equal(during.error.code, 'unavailable');
  await until(() => record.forks.length === 2, 'the backend restart');
  const again: any = await invoke(trusted, 'datasets.list', {});
  assert.deepEqual(
    again.result.datasets.map((d: any) => d.name),
    ['From Electron'],
    'data survived the restart',
  );

  // Quitting stops restarts.
  record.appEvents.emit('before-quit');
  record.forks[1].crash(0);
  await new Promise((r) => setTimeout(r, 1200));
  assert.equal(record.forks.length, 2);
  record.appEvents.emit('window-all-closed');
  assert.equal(record.quitCalled, process.platform !== 'darwin');
});

test('dev mode loads the dev server URL and trusts only its origin', async () => {
  const { electron, record } = createFakeElectron(join(tmp.dir, 'dev'));
  FakeBrowserWindow.all = [];
  const started = startApp(electron, {
    mainDir: join(tmp.dir, 'out', 'main'),
    rendererUrl: 'http://localhost:5173',
    env: {},
  });
  const win = (await started.ready) as unknown as FakeBrowserWindow;
  assert.deepEqual(win.loaded, { url: 'http://localhost:5173' });
  await started.relay.ready;
  const invoke = record.handlers.get(INVOKE_CHANNEL)!;
  assert.equal(
    ((await invoke({ senderFrame: { url: 'http://localhost:5173/#/runs' } }, 'runs.list', {})) as any).ok,
    true,
  );
  assert.equal(
    ((await invoke({ senderFrame: { url: 'http://localhost:5174/' } }, 'runs.list', {})) as any).error.code,
    'unauthorized',
  );
  record.appEvents.emit('before-quit');
  record.forks[0].kill();
});
