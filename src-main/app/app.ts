// Electron main-process wiring, written against an injected electron module so tests can run it with a
// stand-in: windows (contextIsolation, sandbox, no nodeIntegration), the IPC relay to the backend
// utilityProcess, the lenslab-media: protocol and navigation lockdown.
import type * as ElectronNS from 'electron';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createRelay, type ParentSideLike, type Relay } from '../transport/ipc';
import { INVOKE_CHANNEL, EVENT_CHANNEL } from './bridge';

export type ElectronModule = Pick<
  typeof ElectronNS,
  'app' | 'BrowserWindow' | 'ipcMain' | 'utilityProcess' | 'protocol' | 'net' | 'shell' | 'session'
>;

export interface AppOptions {
  /** The folder holding the built main.js and backend.js (out/main). */
  mainDir: string;
  /** Dev server URL from electron-vite (ELECTRON_RENDERER_URL). */
  rendererUrl?: string;
  /** Overrides Electron's userData folder (LENSLAB_DATA_DIR). */
  dataDir?: string;
  env?: NodeJS.ProcessEnv;
}

export const MEDIA_SCHEME = 'lenslab-media';

/**
 * Where scripts/ensure-electron.mjs keeps better-sqlite3 compiled for Electron's ABI, apart from Node's copy
 * (better-sqlite3 is not N-API, so one build cannot serve both). Keep in step with electronSqliteBinding there.
 */
export function electronSqliteBindingPath(
  appRoot: string,
  electronVersion: string,
  platform: string = process.platform,
  arch: string = process.arch,
): string {
  return join(
    appRoot,
    'node_modules',
    '.lenslab-electron',
    `electron-${electronVersion}-${platform}-${arch}`,
    'better_sqlite3.node',
  );
}
const MEDIA_PATH = /^\/media\/(images|thumbs|media)\/([0-9a-f]{2})\/([0-9a-f]{64})\.([a-z0-9]{1,5})$/;

export const WEB_PREFERENCES = {
  contextIsolation: true,
  sandbox: true,
  nodeIntegration: false,
  nodeIntegrationInWorker: false,
  webSecurity: true,
  allowRunningInsecureContent: false,
  webviewTag: false,
  spellcheck: false,
} as const;

export interface StartedApp {
  relay: Relay;
  /** Resolves once the first window was created. */
  ready: Promise<ElectronNS.BrowserWindow>;
}

export function startApp(electron: ElectronModule, options: AppOptions): StartedApp {
  const { app, BrowserWindow, ipcMain, utilityProcess, protocol, net, shell, session } = electron;
  const env = options.env ?? process.env;
  const rendererIndex = join(options.mainDir, '..', 'renderer', 'index.html');
  const preload = join(options.mainDir, '..', 'preload', 'preload.cjs');
  const rendererOrigin = options.rendererUrl ? new URL(options.rendererUrl).origin : null;
  const relay = createRelay();
  let quitting = false;
  let dataDir = '';

  protocol.registerSchemesAsPrivileged([
    // stream: <audio>/<video> read stored clips with range requests; corsEnabled: their frames may be drawn to a canvas
    {
      scheme: MEDIA_SCHEME,
      privileges: { standard: true, secure: true, supportFetchAPI: true, stream: true, corsEnabled: true },
    },
  ]);

  if (!app.requestSingleInstanceLock()) {
    app.quit();
  }

  /** Only our own renderer may call the backend. */
  function trustedUrl(url: string | undefined): boolean {
    if (!url) return false;
    if (rendererOrigin) return url.startsWith(`${rendererOrigin}/`);
    return url.split('#')[0] === pathToFileURL(rendererIndex).href;
  }

  function startBackend(): void {
    const electronVersion = process.versions.electron;
    const binding = electronVersion ? electronSqliteBindingPath(app.getAppPath(), electronVersion) : undefined;
    const child = utilityProcess.fork(join(options.mainDir, 'backend.js'), [], {
      serviceName: 'Lenslab backend',
      env: {
        ...env,
        LENSLAB_DATA_DIR: dataDir,
        ...(binding && existsSync(binding) ? { LENSLAB_SQLITE_BINDING: binding } : {}),
      },
      stdio: 'inherit',
    });
    relay.attach(child as unknown as ParentSideLike);
    child.on('exit', (code: number) => {
      if (quitting) return;
      console.error(`[lenslab] backend exited with code ${code}; restarting`);
      setTimeout(() => {
        if (!quitting) startBackend();
      }, 1000);
    });
  }

  function createWindow(): ElectronNS.BrowserWindow {
    const win = new BrowserWindow({
      width: 1200,
      height: 800,
      minWidth: 760,
      minHeight: 480,
      show: false,
      title: 'Lenslab',
      webPreferences: { ...WEB_PREFERENCES, preload },
    });
    win.once('ready-to-show', () => win.show());
    // No navigation away from the app, no new windows; web links open in the user's browser.
    win.webContents.on('will-navigate', (e, url) => {
      if (!trustedUrl(url)) e.preventDefault();
    });
    win.webContents.setWindowOpenHandler(({ url }) => {
      if (/^https?:\/\//.test(url)) void shell.openExternal(url);
      return { action: 'deny' };
    });
    if (options.rendererUrl) void win.loadURL(options.rendererUrl);
    else void win.loadFile(rendererIndex);
    return win;
  }

  const ready = app.whenReady().then(() => {
    dataDir = options.dataDir || env.LENSLAB_DATA_DIR || app.getPath('userData');
    // The app needs no permission (camera, notifications, clipboard-read, HID, ...): requests and checks both say no.
    session.defaultSession.setPermissionRequestHandler((_wc, _permission, callback) => callback(false));
    session.defaultSession.setPermissionCheckHandler(() => false);

    protocol.handle(MEDIA_SCHEME, (request) => {
      const url = new URL(request.url);
      const m = MEDIA_PATH.exec(`/${url.host}${url.pathname}`);
      if (!m) return new Response('not found', { status: 404 });
      return net.fetch(pathToFileURL(join(dataDir, m[1], m[2], `${m[3]}.${m[4]}`)).href);
    });

    ipcMain.handle(INVOKE_CHANNEL, (event, method: unknown, params: unknown) => {
      if (!trustedUrl(event.senderFrame?.url)) {
        return { ok: false, error: { code: 'unauthorized', message: 'request from an untrusted frame' } };
      }
      return relay.invoke(method, params);
    });
    relay.onEvent((name, payload) => {
      for (const w of BrowserWindow.getAllWindows())
        if (!w.isDestroyed()) w.webContents.send(EVENT_CHANNEL, name, payload);
    });

    startBackend();
    const win = createWindow();
    app.on('activate', () => {
      if (BrowserWindow.getAllWindows().length === 0) createWindow();
    });
    app.on('second-instance', () => {
      const [w] = BrowserWindow.getAllWindows();
      if (w) {
        if (w.isMinimized()) w.restore();
        w.focus();
      }
    });
    return win;
  });

  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin') app.quit();
  });
  app.on('before-quit', () => {
    quitting = true;
  });

  return { relay, ready };
}
