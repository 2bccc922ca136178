// `lenslab serve`: the backend over HTTP + WebSocket, bound to 127.0.0.1 only, every request and socket
// authenticated with a random token, the built renderer served from out/renderer.
//   POST /api/<method>     body: JSON params          → {result} | {error}
//   GET  /ws               WebSocket: {id, method, params} → {id, result} | {id, error}; events {event, payload}
//   GET  /media/...        images and thumbnails from the data dir
//   PUT  /upload/<batch>/<path>, DELETE /upload/<batch>   browser file uploads into a staging folder (upload.ts)
//   GET  /...              the renderer (index.html, assets)
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, WebSocket } from 'ws';
import type { Backend } from '../../services/backend';
import type { ErrorCode } from '../../contract/errors';
import { ApiError } from '../../contract/errors';
import { authenticate, cookieName, hostAllowed, newToken, originAllowed } from './auth';
import { MEDIA_PATH, safeResolve, sendFile } from './static';
import { UPLOAD_PREFIX, Uploads } from './upload';
import { handleOpenAi, OPENAI_PREFIX } from './openai';
import { handleDownload, isDownload } from './download';

export const DEFAULT_STATIC_DIR = fileURLToPath(new URL('../../../out/renderer', import.meta.url));
/** How long close() lets requests in flight finish before cutting their connections. */
const CLOSE_GRACE_MS = 2000;
/**
 * Largest JSON request (POST /api body or WebSocket message). The contract's largest field is a chat image as
 * base64 (at most 70,000,000 characters), so a smaller limit would refuse requests the contract allows (and a
 * WebSocket message over it closes the socket with 1009, failing every request in flight on it).
 */
export const MAX_BODY = 80 * 1024 * 1024;

export interface ServeOptions {
  backend: Backend;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Defaults to a fresh random token. */
  token?: string;
  /** The built renderer; defaults to out/renderer of this checkout. */
  staticDir?: string;
  log?: (line: string) => void;
}

export interface RunningServer {
  /** The URL to open, carrying the token. */
  url: string;
  origin: string;
  port: number;
  token: string;
  close(): Promise<void>;
}

export const STATUS_OF: Record<ErrorCode, number> = {
  invalid_request: 400,
  unauthorized: 401,
  not_found: 404,
  conflict: 409,
  cancelled: 409,
  unavailable: 503,
  internal: 500,
};

export function contentSecurityPolicy(port: number): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob:",
    "font-src 'self'",
    `connect-src 'self' ws://127.0.0.1:${port} ws://localhost:${port}`,
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

const COMMON_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

function sendJson(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...COMMON_HEADERS,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(text)),
    'Cache-Control': 'no-store',
    ...extra,
  });
  res.end(text);
}

function sendError(res: ServerResponse, e: ApiError, extra: Record<string, string> = {}): void {
  sendJson(res, STATUS_OF[e.code], { error: e.toData() }, extra);
}

/** A request body over the limit: answered with 413 and the connection closed (nothing more is read). */
class BodyTooLarge extends ApiError {
  constructor() {
    super('invalid_request', `request body is larger than ${MAX_BODY} bytes`, 'params');
  }
}

/**
 * After an early answer, read and drop what the client still sends so it can read that answer (closing with
 * unread data makes the kernel reset the connection, and the answer is lost); a client that keeps sending
 * for long is cut off.
 */
function drainOrCut(req: IncomingMessage): void {
  if (req.complete) return;
  let extra = 0;
  const cut = setTimeout(() => req.destroy(), 10_000);
  cut.unref();
  const stop = () => clearTimeout(cut);
  req.on('end', stop);
  req.on('close', stop);
  req.on('data', (c: Buffer) => {
    extra += c.length;
    if (extra > 4 * MAX_BODY) {
      stop();
      req.destroy();
    }
  });
  req.resume();
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolveBody, reject) => {
    // refuse a declared oversize body at once instead of waiting for (or reading) any of it
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > MAX_BODY) {
      reject(new BodyTooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (c: Buffer) => {
      if (failed) return;
      size += c.length;
      if (size > MAX_BODY) {
        failed = true;
        chunks.length = 0;
        req.pause();
        reject(new BodyTooLarge());
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!failed) resolveBody(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', reject);
  });
}

export async function startServer(options: ServeOptions): Promise<RunningServer> {
  const { backend } = options;
  const token = options.token ?? newToken();
  const staticDir = options.staticDir ?? DEFAULT_STATIC_DIR;
  const log = options.log ?? (() => {});
  let port = 0; // known after listen
  const sockets = new Set<Socket>();
  const uploads = new Uploads(backend.dataDir);
  uploads.clearAll();

  let closing: Promise<void> | undefined;
  const server = createServer((req, res) => {
    // while closing, a connection ends with the response it is answering instead of idling out the grace period
    res.once('finish', () => {
      if (closing) setImmediate(() => server.closeIdleConnections());
    });
    handle(req, res).catch((err) => {
      log(`request failed: ${(err as Error).stack ?? err}`);
      if (!res.headersSent) sendError(res, new ApiError('internal', 'request failed'));
      else res.destroy();
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const source = authenticate(req, url, token, port);
    if (!source) {
      sendError(res, new ApiError('unauthorized', 'missing or wrong token: open the URL printed by `lenslab serve`'), {
        'WWW-Authenticate': 'Bearer realm="lenslab"',
      });
      return;
    }
    if (!hostAllowed(req.headers.host, port)) {
      sendError(res, new ApiError('unauthorized', 'unexpected Host header'));
      return;
    }
    const setCookie: Record<string, string> =
      source === 'query' ? { 'Set-Cookie': `${cookieName(port)}=${token}; HttpOnly; SameSite=Strict; Path=/` } : {};

    if (url.pathname.startsWith(UPLOAD_PREFIX)) {
      if (!originAllowed(req.headers.origin, port)) {
        sendError(res, new ApiError('unauthorized', 'cross-origin request refused'));
        return;
      }
      try {
        const { batch, rel } = uploads.parse(url.pathname);
        if (req.method === 'PUT' && rel !== null) sendJson(res, 200, { result: await uploads.put(batch, rel, req) });
        else if (req.method === 'DELETE' && rel === null) {
          uploads.remove(batch);
          sendJson(res, 200, { result: { deleted: true } });
        } else
          sendError(
            res,
            new ApiError('invalid_request', 'use PUT /upload/<batch>/<path> or DELETE /upload/<batch>', 'method'),
            { Allow: 'PUT, DELETE' },
          );
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        if (!req.complete) res.setHeader('Connection', 'close');
        sendError(res, e);
      }
      return;
    }

    if (url.pathname.startsWith(OPENAI_PREFIX)) {
      if (!originAllowed(req.headers.origin, port)) {
        sendError(res, new ApiError('unauthorized', 'cross-origin request refused'));
        return;
      }
      await handleOpenAi(req, res, url, backend, readBody, (r, status, body) => sendJson(r, status, body));
      return;
    }

    if (url.pathname.startsWith('/api/')) {
      if (req.method !== 'POST') {
        sendError(res, new ApiError('invalid_request', 'use POST with a JSON body for /api/<method>', 'method'), {
          Allow: 'POST',
        });
        return;
      }
      if (!originAllowed(req.headers.origin, port)) {
        sendError(res, new ApiError('unauthorized', 'cross-origin request refused'));
        return;
      }
      let method: string;
      try {
        method = decodeURIComponent(url.pathname.slice('/api/'.length));
      } catch {
        sendError(res, new ApiError('invalid_request', 'the method name is not valid URL encoding', 'method'));
        return;
      }
      let params: unknown;
      let body: string;
      try {
        body = await readBody(req);
      } catch (e) {
        if (!(e instanceof BodyTooLarge)) throw e;
        sendJson(res, 413, { error: e.toData() });
        drainOrCut(req);
        return;
      }
      if (body.trim().length > 0) {
        try {
          params = JSON.parse(body);
        } catch (e) {
          sendError(
            res,
            new ApiError('invalid_request', `request body is not valid JSON: ${(e as Error).message}`, 'params'),
          );
          return;
        }
      }
      // a client that hangs up before the answer abandons the request
      const gone = new AbortController();
      const onClose = () => {
        if (!res.writableEnded) gone.abort();
      };
      res.once('close', onClose);
      const env = await backend.dispatcher.dispatch(method, params, { signal: gone.signal });
      res.off('close', onClose);
      if (env.ok) sendJson(res, 200, { result: env.result });
      else sendJson(res, STATUS_OF[env.error.code], { error: env.error });
      return;
    }

    if (isDownload(url.pathname) && req.method === 'GET') {
      try {
        await handleDownload(url, res, backend, { ...COMMON_HEADERS, ...setCookie });
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        if (!res.headersSent) sendError(res, e);
        else res.destroy();
      }
      return;
    }

    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendError(res, new ApiError('invalid_request', `${req.method} is not allowed here`, 'method'), {
        Allow: 'GET, HEAD',
      });
      return;
    }

    const media = MEDIA_PATH.exec(url.pathname);
    if (media) {
      const file = join(backend.dataDir, media[1], media[2], `${media[3]}.${media[4]}`);
      if (!sendFile(res, file, { ...COMMON_HEADERS, 'Cache-Control': 'private, max-age=31536000, immutable' })) {
        sendError(res, new ApiError('not_found', `no such file: ${url.pathname}`));
      }
      return;
    }

    const indexFile = join(staticDir, 'index.html');
    if (!existsSync(indexFile)) {
      sendError(res, new ApiError('unavailable', `the renderer is not built (no ${indexFile}); run \`npm run build\``));
      return;
    }
    const pathname = url.pathname === '/' ? '/index.html' : url.pathname;
    const file = safeResolve(staticDir, pathname);
    const isHtml = pathname.endsWith('.html');
    const headers: Record<string, string> = {
      ...COMMON_HEADERS,
      'Content-Security-Policy': contentSecurityPolicy(port),
      'Cache-Control': isHtml ? 'no-store' : 'no-cache',
      ...setCookie,
    };
    if (!file || !sendFile(res, file, headers)) {
      sendError(res, new ApiError('not_found', `no such file: ${url.pathname}`));
    }
  }

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_BODY });
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const refuse = (status: number, text: string) => {
      socket.write(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      socket.destroy();
    };
    if (!authenticate(req, url, token, port)) return refuse(401, 'Unauthorized');
    if (!hostAllowed(req.headers.host, port) || !originAllowed(req.headers.origin, port))
      return refuse(403, 'Forbidden');
    if (url.pathname !== '/ws') return refuse(404, 'Not Found');
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });

  wss.on('connection', (ws: WebSocket) => {
    // every request on a socket is abandoned when it closes (a generation stops, an import is cancelled)
    const closed = new AbortController();
    ws.once('close', () => closed.abort());
    ws.on('message', (data, isBinary) => {
      void onMessage(ws, isBinary ? null : data.toString(), closed.signal);
    });
    ws.on('error', () => ws.terminate());
  });

  async function onMessage(ws: WebSocket, text: string | null, signal: AbortSignal): Promise<void> {
    let msg: unknown;
    try {
      if (text === null) throw new Error('binary frames are not accepted');
      msg = JSON.parse(text);
    } catch (e) {
      send(ws, {
        id: null,
        error: new ApiError('invalid_request', `message is not valid JSON: ${(e as Error).message}`).toData(),
      });
      return;
    }
    const m = msg as { id?: unknown; method?: unknown; params?: unknown } | null;
    const id = m && typeof m === 'object' && (typeof m.id === 'string' || typeof m.id === 'number') ? m.id : null;
    if (!m || typeof m !== 'object' || Array.isArray(m) || id === null) {
      send(ws, {
        id,
        error: new ApiError(
          'invalid_request',
          'a request is {id, method, params} with a string or number id',
          'id',
        ).toData(),
      });
      return;
    }
    const env = await backend.dispatcher.dispatch(m.method, m.params, { signal });
    send(ws, env.ok ? { id, result: env.result } : { id, error: env.error });
  }

  function send(ws: WebSocket, body: unknown): void {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(body));
  }

  const unsubscribe = backend.events.subscribe((event, payload) => {
    const text = JSON.stringify({ event, payload });
    for (const ws of wss.clients) if (ws.readyState === WebSocket.OPEN) ws.send(text);
  });

  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolveListen();
    });
  });
  port = (server.address() as AddressInfo).port;
  const origin = `http://127.0.0.1:${port}`;
  log(`listening on ${origin}`);

  return {
    url: `${origin}/?token=${token}`,
    origin,
    port,
    token,
    close() {
      closing ??= new Promise<void>((done) => {
        unsubscribe();
        for (const ws of wss.clients) ws.terminate();
        wss.close();
        // Requests already being answered (an image the page is loading) finish rather than being reset; idle
        // keep-alive sockets close now (server.close does that since Node 19), and whatever is still open after the
        // grace period is cut.
        server.close(() => {
          clearTimeout(cut);
          done();
        });
        const cut = setTimeout(() => {
          for (const s of sockets) s.destroy();
        }, CLOSE_GRACE_MS);
      });
      return closing;
    },
  };
}
