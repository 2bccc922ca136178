// The renderer's client for the backend: `window.lenslab` (the preload bridge) inside Electron, and the
// serve-mode WebSocket in a browser. Both deliver envelopes; `api.call` unwraps them and throws ApiError.
import type {
  CallArgs,
  Envelope,
  EventName,
  EventPayload,
  LenslabBridge,
  LenslabClient,
  MethodName,
  Params,
  Result,
} from '../src-main/contract/index';
import { ApiError } from '../src-main/contract/errors';
import { reconnectWatcher } from './composables/reconnect';

export { ApiError };

export type ConnectionState = 'connecting' | 'open' | 'closed';

type Pending = { resolve: (env: Envelope) => void };

/** The serve-mode transport: one WebSocket, reconnecting with backoff, requests queued while it connects. */
export class WebSocketBridge implements LenslabBridge {
  private ws: WebSocket | undefined;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private queue: string[] = [];
  private listeners = new Map<string, Set<(payload: unknown) => void>>();
  private stateListeners = new Set<(s: ConnectionState) => void>();
  private retryMs = 250;
  private stopped = false;
  state: ConnectionState = 'connecting';

  constructor(private readonly url: string) {
    this.connect();
  }

  private setState(s: ConnectionState): void {
    this.state = s;
    for (const l of this.stateListeners) l(s);
  }

  onState(listener: (s: ConnectionState) => void): () => void {
    this.stateListeners.add(listener);
    listener(this.state);
    return () => this.stateListeners.delete(listener);
  }

  private connect(): void {
    this.setState('connecting');
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      this.retryMs = 250;
      this.setState('open');
      for (const text of this.queue.splice(0)) ws.send(text);
    };
    ws.onmessage = (ev) => this.onMessage(String(ev.data));
    ws.onclose = () => {
      this.ws = undefined;
      this.setState('closed');
      // Requests in flight are lost with the socket: fail them so callers can retry.
      for (const [id, p] of this.pending) {
        p.resolve({ ok: false, error: { code: 'unavailable', message: 'lost the connection to the Lenslab server' } });
        this.pending.delete(id);
      }
      if (!this.stopped) {
        setTimeout(() => this.connect(), this.retryMs);
        this.retryMs = Math.min(this.retryMs * 2, 5000);
      }
    };
  }

  private onMessage(text: string): void {
    let msg: {
      id?: unknown;
      result?: unknown;
      error?: Envelope extends { error: infer E } ? E : never;
      event?: string;
      payload?: unknown;
    };
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof msg.event === 'string') {
      for (const l of this.listeners.get(msg.event) ?? []) l(msg.payload);
      return;
    }
    if (typeof msg.id !== 'number') return;
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    p.resolve(msg.error ? { ok: false, error: msg.error } : { ok: true, result: msg.result });
  }

  invoke<M extends MethodName>(method: M, params?: Params<M>): Promise<Envelope<Result<M>>> {
    const id = this.nextId++;
    const text = JSON.stringify({ id, method, params: params ?? {} });
    return new Promise((resolve) => {
      this.pending.set(id, { resolve: resolve as (env: Envelope) => void });
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(text);
      else this.queue.push(text);
    });
  }

  on<E extends EventName>(event: E, listener: (payload: EventPayload<E>) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    const l = listener as (payload: unknown) => void;
    set.add(l);
    return () => set!.delete(l);
  }

  close(): void {
    this.stopped = true;
    this.ws?.close();
  }
}

let tokenSeen: string | null = null;

/** The token from ?token= (kept in memory and sessionStorage so in-app navigation and reloads keep it). */
export function serveToken(loc: Location = location): string | null {
  const fromUrl = new URLSearchParams(loc.search).get('token');
  if (fromUrl) {
    tokenSeen = fromUrl;
    try {
      sessionStorage.setItem('lenslab-token', fromUrl);
    } catch {
      // storage may be disabled; the cookie still authenticates
    }
    return fromUrl;
  }
  if (tokenSeen) return tokenSeen;
  try {
    return sessionStorage.getItem('lenslab-token');
  } catch {
    return null;
  }
}

/**
 * Take the token out of the address bar once it is kept (serveToken), so it does not stay in the browser's history,
 * bookmarks or a shared screenshot. The rest of the URL (path, other parameters, the route after #) is unchanged.
 */
export function hideTokenInUrl(loc: Location = location, hist: History = history): void {
  const params = new URLSearchParams(loc.search);
  if (!params.has('token')) return;
  serveToken(loc);
  params.delete('token');
  const q = params.toString();
  hist.replaceState(hist.state, '', `${loc.pathname}${q ? `?${q}` : ''}${loc.hash}`);
}

export function webSocketUrl(loc: Location = location): string {
  const token = serveToken(loc);
  const proto = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${loc.host}/ws${token ? `?token=${encodeURIComponent(token)}` : ''}`;
}

/** Wrap a bridge into the typed client: results or thrown ApiError. */
export function createClient(bridge: LenslabBridge): LenslabClient {
  return {
    async call<M extends MethodName>(method: M, ...args: CallArgs<M>): Promise<Result<M>> {
      const env = await bridge.invoke(method, args[0] as Params<M> | undefined);
      if (!env.ok) throw ApiError.from(env.error);
      return env.result;
    },
    on: (event, listener) => bridge.on(event, listener),
  };
}

export const isElectron = typeof window !== 'undefined' && window.lenslab !== undefined;

let wsBridge: WebSocketBridge | undefined;
const bridge: LenslabBridge = isElectron ? window.lenslab! : (wsBridge = new WebSocketBridge(webSocketUrl()));

export const api: LenslabClient = createClient(bridge);

/** Follow the connection state (Electron's bridge is always open). */
export function onConnectionState(listener: (s: ConnectionState) => void): () => void {
  if (wsBridge) return wsBridge.onState(listener);
  listener('open');
  return () => {};
}

/**
 * Call `listener` each time the backend is reached again after the connection was lost (not on the first open):
 * events sent meanwhile were missed, so what was loaded may be stale.
 */
export function onReconnect(listener: () => void): () => void {
  return onConnectionState(reconnectWatcher(listener));
}

/** URL of a stored image, thumbnail, or audio/video file ('media') (content-addressed by sha256). */
export function mediaUrl(kind: 'images' | 'thumbs' | 'media', hash: string, ext: string): string {
  const rel = `${kind}/${hash.slice(0, 2)}/${hash}.${ext}`;
  return isElectron ? `lenslab-media://media/${rel}` : `/media/${rel}`;
}

/** A readable message for any error thrown by api.call. */
export function errorMessage(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

/** Electron's path of a dropped/picked File (absent in a browser, where files are uploaded instead). */
export const getPathForFile: ((file: File) => string) | undefined =
  typeof window !== 'undefined' && window.lenslabFiles
    ? (f: File) => window.lenslabFiles!.getPathForFile(f)
    : undefined;

export interface UploadFile {
  /** Path relative to the dropped root ('photos/a.jpg'). */
  relativePath: string;
  file: File;
}
export interface UploadProgress {
  files: number;
  totalFiles: number;
  bytes: number;
  totalBytes: number;
}
export interface UploadedBatch {
  batch: string;
  /** Absolute staging folder on the server. */
  root: string;
  /** What to import: the single top-level entry when there is one (a folder or a file), else the staging folder. */
  importPath: string;
}

function newBatchId(): string {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return 'b-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

async function uploadRequest(method: 'PUT' | 'DELETE', path: string, body?: Blob): Promise<unknown> {
  const token = serveToken();
  const res = await fetch(path, {
    method,
    body,
    credentials: 'same-origin',
    headers: {
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
      ...(body ? { 'Content-Type': 'application/octet-stream' } : {}),
    },
  });
  let json: { result?: unknown; error?: { code: string; message: string; field?: string } } = {};
  try {
    json = await res.json();
  } catch {
    // fall through to the status check
  }
  if (!res.ok || json.error) {
    throw json.error
      ? ApiError.from(json.error as never)
      : new ApiError('internal', `upload failed with HTTP ${res.status}`);
  }
  return json.result;
}

/**
 * Serve mode: stream dropped files into a staging folder on the server (3 at a time), so a method taking a
 * path (datasets.import, items.add, ...) can read them. Call `discardUpload(batch)` afterwards.
 */
export async function uploadFiles(
  files: readonly UploadFile[],
  onProgress?: (p: UploadProgress) => void,
): Promise<UploadedBatch> {
  if (files.length === 0) throw new ApiError('invalid_request', 'nothing to upload: no files were dropped');
  const batch = newBatchId();
  const p: UploadProgress = {
    files: 0,
    totalFiles: files.length,
    bytes: 0,
    totalBytes: files.reduce((a, f) => a + f.file.size, 0),
  };
  onProgress?.({ ...p });
  let root = '';
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const f = files[next++];
      const rel = f.relativePath.replace(/^\/+/, '');
      const r = (await uploadRequest('PUT', `/upload/${batch}/${encodeURIComponent(rel)}`, f.file)) as { root: string };
      root = r.root;
      p.files++;
      p.bytes += f.file.size;
      onProgress?.({ ...p });
    }
  };
  try {
    await Promise.all([worker(), worker(), worker()]);
  } catch (e) {
    void discardUpload(batch);
    throw e;
  }
  const tops = new Set(files.map((f) => f.relativePath.replace(/^\/+/, '').split('/')[0]));
  const importPath = tops.size === 1 ? `${root}/${[...tops][0]}` : root;
  return { batch, root, importPath };
}

/** Delete a staging folder (errors are ignored: the server clears leftovers at its next start). */
export async function discardUpload(batch: string): Promise<void> {
  try {
    await uploadRequest('DELETE', `/upload/${batch}`);
  } catch {
    // ignored
  }
}
