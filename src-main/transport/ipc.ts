// The backend over a message port (Electron's utilityProcess ↔ main), with no Electron import:
// the backend side (`serveOverPort`) runs in the utility process, the relay side (`createRelay`) in main.
// Messages: request {id, method, params} → reply {id, envelope}; events {event, payload}.
import type { Envelope, EventName } from '../contract/index';
import type { ApiErrorData } from '../contract/errors';
import type { Backend } from '../services/backend';

export interface PortRequest {
  type: 'request';
  id: number;
  method: string;
  params: unknown;
}
export interface PortReply {
  type: 'reply';
  id: number;
  envelope: Envelope;
}
export interface PortEvent {
  type: 'event';
  event: EventName;
  payload: unknown;
}
export interface PortReady {
  type: 'ready';
  dataDir: string;
}
export type PortMessage = PortRequest | PortReply | PortEvent | PortReady;

/** The child's end: Electron's process.parentPort (messages arrive as {data}). */
export interface ChildPortLike {
  on(event: 'message', listener: (e: { data: unknown }) => void): unknown;
  postMessage(message: unknown): void;
}

/** Host the backend's dispatcher on a port: every request answered, events forwarded. Returns a stop function. */
export function serveOverPort(backend: Backend, port: ChildPortLike): () => void {
  const unsubscribe = backend.events.subscribe((event, payload) => {
    port.postMessage({ type: 'event', event, payload } satisfies PortEvent);
  });
  port.on('message', (e) => {
    const msg = (e && typeof e === 'object' && 'data' in e ? e.data : e) as Partial<PortRequest> | null;
    if (!msg || typeof msg !== 'object' || msg.type !== 'request' || typeof msg.id !== 'number') return;
    const id = msg.id;
    void backend.dispatcher.dispatch(msg.method, msg.params).then((envelope) => {
      port.postMessage({ type: 'reply', id, envelope } satisfies PortReply);
    });
  });
  port.postMessage({ type: 'ready', dataDir: backend.dataDir } satisfies PortReady);
  return unsubscribe;
}

/** The main process's end: Electron's UtilityProcess (messages arrive as the data itself). */
export interface ParentSideLike {
  postMessage(message: unknown): void;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  on(event: 'exit', listener: (code: number) => void): unknown;
}

export interface Relay {
  /** Forward one request; resolves with the backend's envelope or an 'unavailable' error. */
  invoke(method: unknown, params: unknown): Promise<Envelope>;
  onEvent(listener: (event: EventName, payload: unknown) => void): () => void;
  /** Resolves when the backend reported ready. */
  ready: Promise<{ dataDir: string }>;
  /** Point the relay at a new child (after a restart); requests in flight on the old one fail. */
  attach(child: ParentSideLike): void;
}

const unavailable = (message: string): ApiErrorData => ({ code: 'unavailable', message });

export function createRelay(child?: ParentSideLike): Relay {
  let current: ParentSideLike | undefined;
  let nextId = 1;
  const pending = new Map<number, (env: Envelope) => void>();
  const listeners = new Set<(event: EventName, payload: unknown) => void>();
  let markReady!: (v: { dataDir: string }) => void;
  let ready = new Promise<{ dataDir: string }>((r) => (markReady = r));

  const relay: Relay = {
    invoke(method, params) {
      if (typeof method !== 'string' || method.length === 0 || method.length > 200) {
        return Promise.resolve({
          ok: false,
          error: { code: 'invalid_request', message: 'request has no valid method name', field: 'method' },
        });
      }
      if (!current) return Promise.resolve({ ok: false, error: unavailable('the Lenslab backend is not running') });
      const id = nextId++;
      const target = current;
      return new Promise<Envelope>((resolve) => {
        pending.set(id, resolve);
        try {
          target.postMessage({ type: 'request', id, method, params } satisfies PortRequest);
        } catch (e) {
          pending.delete(id);
          resolve({
            ok: false,
            error: {
              code: 'invalid_request',
              message: `request could not be sent: ${(e as Error).message}`,
              field: 'params',
            },
          });
        }
      });
    },
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    get ready() {
      return ready;
    },
    attach(next) {
      failPending('the Lenslab backend restarted; try again');
      current = next;
      ready = new Promise((r) => (markReady = r));
      next.on('message', (raw: unknown) => {
        if (current !== next) return;
        const msg = raw as PortMessage | null;
        if (!msg || typeof msg !== 'object') return;
        if (msg.type === 'reply') {
          const done = pending.get(msg.id);
          if (done) {
            pending.delete(msg.id);
            done(msg.envelope);
          }
        } else if (msg.type === 'event') {
          for (const l of [...listeners]) l(msg.event, msg.payload);
        } else if (msg.type === 'ready') {
          markReady({ dataDir: msg.dataDir });
        }
      });
      next.on('exit', (code: number) => {
        if (current !== next) return;
        current = undefined;
        failPending(`the Lenslab backend stopped (exit code ${code})`);
      });
    },
  };

  function failPending(message: string) {
    for (const [id, done] of pending) {
      pending.delete(id);
      done({ ok: false, error: unavailable(message) });
    }
  }

  if (child) relay.attach(child);
  return relay;
}
