// A stand-in for the parts of the electron module that src-main/app/app.ts uses. The utilityProcess
// fork runs the real backend in this process over an in-memory port pair (messages are structured-cloned
// like Electron's), so the main-process relay is exercised end to end.
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { createBackend, type Backend } from '../../src-main/services/backend';
import { serveOverPort, type ChildPortLike } from '../../src-main/transport/ipc';
import type { ElectronModule } from '../../src-main/app/app';

export class FakeWebContents extends EventEmitter {
  sent: { channel: string; args: unknown[] }[] = [];
  windowOpenHandler?: (d: { url: string }) => { action: string };
  send(channel: string, ...args: unknown[]) {
    this.sent.push({ channel, args: structuredClone(args) });
  }
  setWindowOpenHandler(h: (d: { url: string }) => { action: string }) {
    this.windowOpenHandler = h;
  }
}

export class FakeBrowserWindow extends EventEmitter {
  static all: FakeBrowserWindow[] = [];
  static getAllWindows() {
    return FakeBrowserWindow.all.filter((w) => !w.destroyed);
  }
  webContents = new FakeWebContents();
  loaded?: { file?: string; url?: string };
  shown = false;
  destroyed = false;
  constructor(public options: Record<string, any>) {
    super();
    FakeBrowserWindow.all.push(this);
  }
  loadFile(file: string) {
    this.loaded = { file };
    return Promise.resolve();
  }
  loadURL(url: string) {
    this.loaded = { url };
    return Promise.resolve();
  }
  show() {
    this.shown = true;
  }
  isDestroyed() {
    return this.destroyed;
  }
  isMinimized() {
    return false;
  }
  restore() {}
  focus() {}
}

/** The child side of a fake utilityProcess: the real backend behind serveOverPort. */
export class FakeUtilityProcess extends EventEmitter {
  private childListeners: ((e: { data: unknown }) => void)[] = [];
  backend: Backend;
  killed = false;
  constructor(
    public modulePath: string,
    public options: Record<string, any>,
  ) {
    super();
    const port: ChildPortLike = {
      on: (_event, listener) => this.childListeners.push(listener),
      postMessage: (m) => setImmediate(() => this.emit('message', structuredClone(m))),
    };
    this.backend = createBackend({
      dataDir: options.env.LENSLAB_DATA_DIR,
      host: 'electron',
      log: { error() {}, warn() {} },
    });
    serveOverPort(this.backend, port);
  }
  postMessage(m: unknown) {
    const data = structuredClone(m);
    setImmediate(() => this.childListeners.forEach((l) => l({ data })));
  }
  /** Simulate the process dying. */
  crash(code = 1) {
    this.backend.close();
    this.childListeners = [];
    this.emit('exit', code);
  }
  kill() {
    this.killed = true;
    this.crash(0);
    return true;
  }
}

export function createFakeElectron(userData: string) {
  const appEvents = new EventEmitter();
  const handlers = new Map<string, (event: any, ...args: any[]) => unknown>();
  const protocolHandlers = new Map<string, (req: Request) => Response | Promise<Response>>();
  const record = {
    privilegedSchemes: [] as any[],
    forks: [] as FakeUtilityProcess[],
    opened: [] as string[],
    permissionHandler: undefined as undefined | ((wc: unknown, permission: string, cb: (ok: boolean) => void) => void),
    permissionCheckHandler: undefined as undefined | ((wc: unknown, permission: string, origin: string) => boolean),
    quitCalled: false,
    handlers,
    protocolHandlers,
    appEvents,
  };
  const electron = {
    app: {
      requestSingleInstanceLock: () => true,
      getAppPath: () => userData,
      whenReady: () => Promise.resolve(),
      getPath: (name: string) => {
        if (name !== 'userData') throw new Error(`unexpected getPath(${name})`);
        return userData;
      },
      on: (event: string, cb: (...a: any[]) => void) => appEvents.on(event, cb),
      quit: () => {
        record.quitCalled = true;
      },
    },
    BrowserWindow: FakeBrowserWindow,
    ipcMain: {
      handle: (channel: string, fn: (event: any, ...args: any[]) => unknown) => {
        if (handlers.has(channel)) throw new Error(`second handler for ${channel}`);
        handlers.set(channel, fn);
      },
    },
    utilityProcess: {
      fork: (modulePath: string, _args: string[], options: Record<string, any>) => {
        const p = new FakeUtilityProcess(modulePath, options);
        record.forks.push(p);
        return p;
      },
    },
    protocol: {
      registerSchemesAsPrivileged: (schemes: any[]) => record.privilegedSchemes.push(...schemes),
      handle: (scheme: string, fn: (req: Request) => Response | Promise<Response>) => protocolHandlers.set(scheme, fn),
    },
    net: {
      fetch: async (url: string) => {
        try {
          return new Response(await readFile(fileURLToPath(url)));
        } catch {
          return new Response('missing', { status: 404 });
        }
      },
    },
    shell: {
      openExternal: async (url: string) => {
        record.opened.push(url);
      },
    },
    session: {
      defaultSession: {
        setPermissionRequestHandler: (h: typeof record.permissionHandler) => {
          record.permissionHandler = h;
        },
        setPermissionCheckHandler: (h: typeof record.permissionCheckHandler) => {
          record.permissionCheckHandler = h;
        },
      },
    },
  };
  return { electron: electron as unknown as ElectronModule, record };
}
