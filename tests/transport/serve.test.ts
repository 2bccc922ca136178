import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:http';
import { WebSocket } from 'ws';
import { createBackend, type Backend } from '../../src-main/services/backend';
import { startServer, type RunningServer } from '../../src-main/transport/serve/server';
import { safeResolve } from '../../src-main/transport/serve/static';
import { tempDir } from '../helpers/tmp';

const tmp = tempDir('serve-');
let backend: Backend;
let server: RunningServer;
const staticDir = join(tmp.dir, 'renderer');
const hash = 'ab'.padEnd(64, 'c');

before(async () => {
  mkdirSync(join(staticDir, 'assets'), { recursive: true });
  writeFileSync(join(staticDir, 'index.html'), '<!doctype html><title>Lenslab</title>');
  writeFileSync(join(staticDir, 'assets', 'app.js'), 'console.log(1)');
  writeFileSync(join(tmp.dir, 'secret.txt'), 'do not serve');
  const data = join(tmp.dir, 'data');
  mkdirSync(join(data, 'thumbs', 'ab'), { recursive: true });
  writeFileSync(join(data, 'thumbs', 'ab', `${hash}.webp`), 'RIFFfakewebp');
  backend = createBackend({ dataDir: data, host: 'serve', log: { error() {}, warn() {} } });
  server = await startServer({ backend, staticDir });
});
after(async () => {
  await server.close();
  backend.close();
  tmp.cleanup();
});

interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}
function http(
  method: string,
  path: string,
  opts: { headers?: Record<string, string>; body?: string } = {},
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, method, path, headers: opts.headers }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}
const auth = () => ({ Authorization: `Bearer ${server.token}` });

test('the URL is loopback-only with a 64-hex-digit token', () => {
  assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{64}$/);
});

test('every HTTP request without the right token is refused with 401', async () => {
  for (const [method, path] of [
    ['GET', '/'],
    ['GET', '/index.html'],
    ['GET', '/assets/app.js'],
    ['GET', '/nope'],
    ['POST', '/api/datasets.list'],
    ['GET', `/media/thumbs/ab/${hash}.webp`],
    ['GET', '/?token=wrong'],
    ['GET', `/?token=${server.token.slice(0, 63)}`],
  ]) {
    const r = await http(method, path);
    assert.equal(r.status, 401, `${method} ${path}`);
    assert.equal(JSON.parse(r.body).error.code, 'unauthorized');
  }
  const wrongBearer = await http('POST', '/api/datasets.list', { headers: { Authorization: 'Bearer 00' } });
  assert.equal(wrongBearer.status, 401);
  const wrongCookie = await http('GET', '/', { headers: { Cookie: `lenslab_token_${server.port}=${'0'.repeat(64)}` } });
  assert.equal(wrongCookie.status, 401);
});

test('the page opened with ?token= sets a per-port HttpOnly cookie that then authenticates, with a strict CSP', async () => {
  const r = await http('GET', `/?token=${server.token}`);
  assert.equal(r.status, 200);
  assert.match(r.body, /<title>Lenslab<\/title>/);
  const csp = String(r.headers['content-security-policy']);
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.equal(r.headers['referrer-policy'], 'no-referrer');
  const cookie = String(r.headers['set-cookie']);
  assert.match(cookie, new RegExp(`^lenslab_token_${server.port}=${server.token}; HttpOnly; SameSite=Strict`));
  const asset = await http('GET', '/assets/app.js', { headers: { Cookie: cookie.split(';')[0] } });
  assert.equal(asset.status, 200);
  assert.match(String(asset.headers['content-type']), /text\/javascript/);
});

test('static paths cannot escape the renderer folder', async () => {
  for (const p of [
    '/../secret.txt',
    '/%2e%2e/secret.txt',
    '/assets/%2e%2e/%2e%2e/secret.txt',
    '/..%2fsecret.txt',
    '/%00',
    '/.hidden',
    '/assets/..%5c..%5csecret.txt',
  ]) {
    const r = await http('GET', p, { headers: auth() });
    assert.equal(r.status, 404, p);
    assert.doesNotMatch(r.body, /do not serve/);
  }
  assert.equal(safeResolve('/root/x', '/../y'), undefined);
  assert.equal(safeResolve('/root/x', '/a/b.js'), '/root/x/a/b.js');
});

test('a wrong Host header is refused even with the token (DNS rebinding)', async () => {
  const r = await http('GET', '/', { headers: { ...auth(), Host: 'evil.example:80' } });
  assert.equal(r.status, 401);
});

test('POST /api/<method> runs the method; garbage gets a validation error naming the field', async () => {
  const created = await http('POST', '/api/datasets.create', {
    headers: auth(),
    body: JSON.stringify({ name: 'Birds' }),
  });
  assert.equal(created.status, 200);
  assert.equal(JSON.parse(created.body).result.name, 'Birds');
  const list = await http('POST', '/api/datasets.list', { headers: auth() });
  assert.deepEqual(
    JSON.parse(list.body).result.datasets.map((d: any) => d.name),
    ['Birds'],
  );
  const bad = await http('POST', '/api/datasets.create', { headers: auth(), body: JSON.stringify({ name: ['x'] }) });
  assert.equal(bad.status, 400);
  assert.equal(JSON.parse(bad.body).error.code, 'invalid_request');
  assert.equal(JSON.parse(bad.body).error.field, 'name');
  const notJson = await http('POST', '/api/datasets.create', { headers: auth(), body: '{name:' });
  assert.equal(notJson.status, 400);
  assert.equal(JSON.parse(notJson.body).error.field, 'params');
  const unknown = await http('POST', '/api/rm.rf', { headers: auth(), body: '{}' });
  assert.equal(unknown.status, 404);
  assert.equal(JSON.parse(unknown.body).error.field, 'method');
  const dup = await http('POST', '/api/datasets.create', { headers: auth(), body: JSON.stringify({ name: 'Birds' }) });
  assert.equal(dup.status, 409);
  const get = await http('GET', '/api/datasets.list', { headers: auth() });
  assert.equal(get.status, 400);
  const cross = await http('POST', '/api/datasets.list', { headers: { ...auth(), Origin: 'http://evil.example' } });
  assert.equal(cross.status, 401);
});

test('media files are served from the data dir by hash only', async () => {
  const ok = await http('GET', `/media/thumbs/ab/${hash}.webp`, { headers: auth() });
  assert.equal(ok.status, 200);
  assert.equal(ok.headers['content-type'], 'image/webp');
  const missing = await http('GET', `/media/images/ab/${hash}.jpg`, { headers: auth() });
  assert.equal(missing.status, 404);
  const traversal = await http('GET', '/media/images/../lenslab.db', { headers: auth() });
  assert.equal(traversal.status, 404);
});

function openWs(url: string, headers: Record<string, string> = {}): Promise<{ ws?: WebSocket; status?: number }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (_req, res) => resolve({ status: res.statusCode }));
    ws.once('error', () => resolve({ status: -1 }));
  });
}

test('WebSocket without the token is refused with 401', async () => {
  const base = `ws://127.0.0.1:${server.port}/ws`;
  assert.equal((await openWs(base)).status, 401);
  assert.equal((await openWs(`${base}?token=nope`)).status, 401);
  assert.equal((await openWs(`${base}?token=${server.token}`, { Origin: 'http://evil.example' })).status, 403);
});

test('WebSocket: requests, typed errors, garbage and pushed events', async () => {
  const { ws } = await openWs(`ws://127.0.0.1:${server.port}/ws?token=${server.token}`);
  assert.ok(ws);
  const inbox: any[] = [];
  const waiters: ((m: any) => void)[] = [];
  ws.on('message', (d) => {
    const m = JSON.parse(d.toString());
    inbox.push(m);
    waiters.splice(0).forEach((w) => w(m));
  });
  const next = (pred: (m: any) => boolean) =>
    new Promise<any>((resolve) => {
      const check = () => {
        const i = inbox.findIndex(pred);
        if (i >= 0) return (resolve(inbox.splice(i, 1)[0]), true);
        return false;
      };
      if (!check()) {
        const loop = () => (check() ? undefined : waiters.push(loop));
        waiters.push(loop);
      }
    });
  ws.send(JSON.stringify({ id: 1, method: 'datasets.create', params: { name: 'Via socket' } }));
  const created = await next((m) => m.id === 1);
  assert.equal(created.result.name, 'Via socket');
  const event = await next((m) => m.event === 'datasets.changed');
  assert.deepEqual(event.payload, { kind: 'created', id: created.result.id });
  ws.send(JSON.stringify({ id: 'b', method: 'datasets.create', params: { name: '' } }));
  const invalid = await next((m) => m.id === 'b');
  assert.equal(invalid.error.code, 'invalid_request');
  assert.equal(invalid.error.field, 'name');
  ws.send('not json at all');
  const garbage = await next((m) => m.id === null);
  assert.equal(garbage.error.code, 'invalid_request');
  ws.send(JSON.stringify({ method: 'datasets.list' }));
  const noId = await next((m) => m.id === null);
  assert.equal(noId.error.field, 'id');
  ws.send(JSON.stringify({ id: 3, method: 'system.info' }));
  const info = await next((m) => m.id === 3);
  assert.equal(info.result.host, 'serve');
  ws.close();
});

test('close() lets a request in flight finish, then refuses new connections', async () => {
  const other = await startServer({ backend, staticDir });
  const body = JSON.stringify({});
  const answered = new Promise<Res>((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: other.port,
        method: 'POST',
        path: '/api/datasets.list',
        headers: { Authorization: `Bearer ${other.token}`, 'Content-Type': 'application/json' },
      },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
      },
    );
    req.on('error', reject);
    // half the body now, the rest once the server is closing: the request is in flight when close() is called
    req.write(body.slice(0, 1));
    setTimeout(() => {
      closing = other.close();
      setTimeout(() => req.end(body.slice(1)), 50);
    }, 50);
  });
  let closing: Promise<void> | undefined;
  const res = await answered;
  assert.equal(res.status, 200, res.body);
  assert.ok(JSON.parse(res.body).result, res.body);
  await closing;
  await assert.rejects(
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: other.port, path: '/', agent: false }, resolve);
      req.on('error', reject);
      req.end();
    }),
    /ECONNREFUSED/,
  );
});
