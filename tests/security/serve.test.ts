// Attacks on `lenslab serve` with raw sockets (so Host, Origin and body framing are exactly what an attacker sends):
// DNS rebinding Host values, cross-origin requests that carry the cookie (CSRF), WebSockets from foreign origins,
// oversize bodies, upload path tricks, and the headers of the token-bearing page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:net';
import { WebSocket } from 'ws';
import { createBackend, type Backend } from '../../src-main/services/backend';
import { MAX_BODY, startServer, type RunningServer } from '../../src-main/transport/serve/server';
import { uploadsRoot } from '../../src-main/transport/serve/upload';
import { tempDir } from '../helpers/tmp';

const tmp = tempDir('sec-serve-');
const data = join(tmp.dir, 'data');
let backend: Backend;
let server: RunningServer;
const logs: string[] = [];

before(async () => {
  const staticDir = join(tmp.dir, 'renderer');
  mkdirSync(staticDir, { recursive: true });
  writeFileSync(join(staticDir, 'index.html'), '<!doctype html><title>Lenslab</title>');
  backend = createBackend({ dataDir: data, host: 'serve', log: { error() {}, warn() {} } });
  server = await startServer({ backend, staticDir, log: (l) => logs.push(l) });
});
after(async () => {
  await server.close();
  backend.close();
  tmp.cleanup();
});

interface RawRes {
  status: number;
  headers: Map<string, string>;
  body: string;
}

/**
 * Send bytes on a fresh connection and parse the first response. `body` is written after the head, possibly
 * in pieces; the server may close the connection before taking all of it (that is fine: we only need the answer).
 */
function raw(head: string, body: Buffer | string = ''): Promise<RawRes> {
  return new Promise((resolve, reject) => {
    const s = connect(server.port, '127.0.0.1');
    let out = Buffer.alloc(0);
    const done = () => {
      const text = out.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0)
        return reject(new Error(`no response to ${head.split('\r\n')[0]}: ${JSON.stringify(text.slice(0, 200))}`));
      const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
      const headers = new Map(
        lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]),
      );
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body: text.slice(end + 4) });
    };
    s.on('data', (d) => {
      out = Buffer.concat([out, d]);
      // one response is enough; don't wait for the server to close
      const text = out.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      const len = end >= 0 ? /content-length:\s*(\d+)/i.exec(text.slice(0, end)) : null;
      if (len && out.length >= end + 4 + Number(len[1])) {
        s.destroy();
        done();
      }
    });
    s.on('close', () =>
      out.length ? done() : reject(new Error(`connection closed without a response to ${head.split('\r\n')[0]}`)),
    );
    s.on('error', () => {}); // a reset after the response is expected for refused bodies
    s.setTimeout(10_000, () => {
      s.destroy();
      reject(new Error(`no response within 10 s to ${head.split('\r\n')[0]}`));
    });
    s.write(head);
    if (typeof body === 'string' ? body.length : body.length) s.write(body, () => {});
  });
}

const req = (method: string, path: string, headers: Record<string, string | undefined> = {}, bodyLen?: number) => {
  const all: Record<string, string | undefined> = { Host: `127.0.0.1:${server.port}`, Connection: 'close', ...headers };
  if (bodyLen !== undefined) all['Content-Length'] = String(bodyLen);
  const lines = Object.entries(all)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}: ${v}`);
  return `${method} ${path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`;
};
const bearer = () => ({ Authorization: `Bearer ${server.token}` });
const cookie = () => ({ Cookie: `lenslab_token_${server.port}=${server.token}` });

test('Host must name this loopback server: rebinding names, IPv6, lookalikes and a missing Host are refused', async () => {
  const p = server.port;
  for (const host of [
    `localhost.evil.com:${p}`,
    `127.0.0.1.nip.io:${p}`,
    `[::1]:${p}`,
    `evil.example:${p}`,
    `127.0.0.1:${p + 1}`,
    `127.0.0.1`,
    `127.0.0.1:${p}.evil.com`,
    '',
  ]) {
    const r = await raw(req('GET', '/', { ...bearer(), Host: host }));
    assert.equal(r.status, 401, host);
  }
  // HTTP/1.0 may omit Host entirely
  const noHost = await raw(`GET /?token=${server.token} HTTP/1.0\r\n\r\n`);
  assert.equal(noHost.status, 401);
  assert.match(noHost.body, /unexpected Host header/);
  for (const host of [`127.0.0.1:${p}`, `localhost:${p}`])
    assert.equal((await raw(req('GET', '/', { ...bearer(), Host: host }))).status, 200, host);
});

test('CSRF: a page of another origin cannot use the cookie (JSON, text/plain form posts, uploads, null origin)', async () => {
  const p = server.port;
  for (const origin of [
    `http://127.0.0.1:${p + 1}`,
    'null',
    `http://localhost.evil.com:${p}`,
    `https://127.0.0.1:${p}`,
    'http://evil.example',
  ]) {
    const body = '{"name":"csrf"}';
    const form = await raw(
      req('POST', '/api/datasets.create', { ...cookie(), Origin: origin, 'Content-Type': 'text/plain' }, body.length),
      body,
    );
    assert.equal(form.status, 401, origin);
    assert.match(form.body, /cross-origin request refused/);
    const put = await raw(req('PUT', '/upload/batch-csrf-01/a.txt', { ...cookie(), Origin: origin }, 1), 'x');
    assert.equal(put.status, 401, origin);
  }
  assert.equal(existsSync(join(uploadsRoot(data), 'batch-csrf-01')), false);
  const list = await raw(req('POST', '/api/datasets.list', { ...bearer() }, 0));
  assert.deepEqual(JSON.parse(list.body).result.datasets, [], 'no dataset was created by a cross-origin post');
  // the same-origin page itself may post
  const same = await raw(req('POST', '/api/datasets.list', { ...cookie(), Origin: `http://127.0.0.1:${p}` }, 0));
  assert.equal(same.status, 200);
});

function wsStatus(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => {
      ws.close();
      resolve(101);
    });
    ws.once('unexpected-response', (_r, res) => resolve(res.statusCode!));
    ws.once('error', () => resolve(-1));
  });
}

test('WebSocket: the cookie from a foreign origin, a null origin or a rebinding Host is refused', async () => {
  const p = server.port;
  const url = `ws://127.0.0.1:${p}/ws`;
  for (const origin of [`http://127.0.0.1:${p + 1}`, 'null', `http://localhost.evil.com:${p}`, 'file://']) {
    assert.equal(await wsStatus(url, { ...cookie(), Origin: origin }), 403, origin);
  }
  assert.equal(await wsStatus(url, { ...cookie(), Host: `localhost.evil.com:${p}` }), 403);
  assert.equal(await wsStatus(url, { ...cookie(), Origin: `http://localhost:${p}`, Host: `localhost:${p}` }), 101);
  assert.equal(await wsStatus(`ws://127.0.0.1:${p}/other?token=${server.token}`, {}), 404);
});

test('an oversize JSON body is refused with 413 without being read: declared, streamed or chunked', async () => {
  // declared far beyond the limit and never sent: answered at once instead of waiting for 100 GB
  const declared = await raw(req('POST', '/api/datasets.create', bearer(), 100_000_000_000));
  assert.equal(declared.status, 413);
  assert.equal(JSON.parse(declared.body).error.code, 'invalid_request');
  // chunked (no length up front): cut off once past the limit
  const chunk = Buffer.alloc(1024 * 1024, 0x20);
  const chunks = Buffer.concat(
    Array.from({ length: Math.ceil(MAX_BODY / chunk.length) + 2 }, () =>
      Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]),
    ),
  );
  const chunked = await raw(
    req('POST', '/api/datasets.create', { ...bearer(), 'Transfer-Encoding': 'chunked' }),
    chunks,
  );
  assert.equal(chunked.status, 413);
  assert.match(JSON.parse(chunked.body).error.message, /larger than \d+ bytes/);
  // the server still answers, and nothing was logged as a crash
  assert.equal((await raw(req('POST', '/api/system.info', bearer(), 0))).status, 200);
  assert.deepEqual(
    logs.filter((l) => /request failed/.test(l)),
    [],
  );
});

test('a malformed method name is a 400 naming the method, not a logged 500', async () => {
  const r = await raw(req('POST', '/api/%E0%A4%A', bearer(), 0));
  assert.equal(r.status, 400);
  assert.equal(JSON.parse(r.body).error.field, 'method');
  const long = await raw(req('POST', `/api/${'m'.repeat(5000)}`, bearer(), 0));
  assert.equal(long.status, 404);
  assert.ok(long.body.length < 400, 'an unknown method name is not echoed in full');
  assert.deepEqual(
    logs.filter((l) => /request failed/.test(l)),
    [],
  );
});

test('a chat image of 15 MB (the contract allows ~50 MB) fits in one WebSocket message; a message past the limit is refused alone', async () => {
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws?token=${server.token}`);
  await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
  const replies: any[] = [];
  let closed: number | undefined;
  ws.on('message', (d) => replies.push(JSON.parse(d.toString())));
  ws.on('close', (code) => (closed = code));
  // 20 MB of base64 (a ~15 MB photo; over the old 16 MiB limit): validated and answered (no model given), the socket stays open
  ws.send(JSON.stringify({ id: 1, method: 'chat.generate', params: { image: { base64: 'A'.repeat(20_000_000) } } }));
  ws.send(JSON.stringify({ id: 2, method: 'system.info' }));
  for (let i = 0; i < 400 && !replies.some((m) => m.id === 1) && closed === undefined; i++)
    await new Promise((r) => setTimeout(r, 25));
  assert.equal(closed, undefined, 'the socket was not closed');
  const big = replies.find((m) => m.id === 1);
  assert.ok(big?.error, JSON.stringify(big));
  assert.ok(JSON.stringify(big).length < 2000, 'the error does not echo the image');
  for (let i = 0; i < 200 && !replies.some((m) => m.id === 2); i++) await new Promise((r) => setTimeout(r, 25));
  assert.equal(replies.find((m) => m.id === 2)?.result.host, 'serve');
  // past the limit: that socket is closed (1009), nothing buffered beyond the bound
  ws.send(Buffer.alloc(MAX_BODY + 1024, 0x20).toString());
  for (let i = 0; i < 400 && closed === undefined; i++) await new Promise((r) => setTimeout(r, 25));
  assert.equal(closed, 1009);
});

test('an error for a request full of unknown fields does not echo them all back', async () => {
  const params: Record<string, string> = { name: 'ok' };
  for (let i = 0; i < 5000; i++) params[`k${i}_${'x'.repeat(40)}`] = 'v';
  params['y'.repeat(100_000)] = 'v';
  const body = JSON.stringify(params);
  const r = await raw(req('POST', '/api/datasets.create', bearer(), Buffer.byteLength(body)), body);
  assert.equal(r.status, 400);
  const err = JSON.parse(r.body).error;
  assert.match(err.message, /k0_x+, .* and 4996 more: unknown fields/);
  assert.ok(r.body.length < 4000, `error body is ${r.body.length} bytes`);
  assert.ok(err.field.length <= 201, `field is ${err.field.length} characters`);
});

test('upload paths cannot leave the batch folder, however encoded', async () => {
  const batch = 'batch-path-0001';
  const bad = [
    '..%2Fescape.txt',
    '%2e%2e%2fescape.txt',
    '%2E%2E/escape.txt',
    'a/%2e%2e/%2e%2e/escape.txt',
    '..%5Cescape.txt',
    'a%5C..%5C..%5Cescape.txt',
    '%2Fetc%2Fescape.txt',
    'C%3A%5Cescape.txt',
    'C%3A/escape.txt',
    'x%00.txt',
    '%2e',
    '.hidden',
    'a//b.txt',
    'dots.../x.txt',
    'trail /x.txt',
    '%ZZ',
  ];
  for (const rel of bad) {
    const r = await raw(req('PUT', `/upload/${batch}/${rel}`, bearer(), 1), 'x');
    assert.ok(r.status === 400 || r.status === 404, `${rel}: ${r.status} ${r.body}`);
  }
  // URL-level dot segments are resolved before routing, so they cannot point the write anywhere else either
  const dotted = await raw(req('PUT', `/upload/${batch}/../../../escape.txt`, bearer(), 1), 'x');
  assert.equal(dotted.status, 400);
  // lookalike dots (one dot leader, fullwidth full stop and solidus) are plain characters: stored inside the batch
  const lookalike = await raw(
    req('PUT', `/upload/${batch}/%E2%80%A4%E2%80%A4/%EF%BC%8E%EF%BC%8E%EF%BC%8Fx.txt`, bearer(), 1),
    'x',
  );
  assert.equal(lookalike.status, 200);
  assert.ok(JSON.parse(lookalike.body).result.path.startsWith(join(uploadsRoot(data), batch) + '/'));
  for (const dir of [data, uploadsRoot(data), tmp.dir]) assert.ok(!readdirSync(dir).includes('escape.txt'), dir);
  assert.deepEqual(readdirSync(join(uploadsRoot(data))), [batch]);
  // a file and a folder of one name: a clean 400 either way round, never a logged 500
  assert.equal((await raw(req('PUT', `/upload/${batch}/clash/x.txt`, bearer(), 1), 'x')).status, 200);
  assert.equal((await raw(req('PUT', `/upload/${batch}/clash`, bearer(), 1), 'x')).status, 400);
  assert.equal((await raw(req('PUT', `/upload/${batch}/file.txt`, bearer(), 1), 'x')).status, 200);
  const under = await raw(req('PUT', `/upload/${batch}/file.txt/y.txt`, bearer(), 1), 'x');
  assert.equal(under.status, 400);
  assert.equal(JSON.parse(under.body).error.field, 'path');
  assert.deepEqual(
    logs.filter((l) => /request failed/.test(l)),
    [],
  );
  // bad batch ids are refused too
  for (const b of ['..', 'short', 'UPPER-CASE-ID', 'batch%2F..%2F..']) {
    const r = await raw(req('PUT', `/upload/${b}/a.txt`, bearer(), 1), 'x');
    assert.ok(r.status === 400 || r.status === 404, `${b}: ${r.status}`);
  }
});

test('the token-bearing page: strict CSP, no framing, no referrer, not cached, nosniff; the token is not logged', async () => {
  const r = await raw(req('GET', `/?token=${server.token}`));
  assert.equal(r.status, 200);
  const csp = r.headers.get('content-security-policy') ?? '';
  for (const d of [
    "default-src 'self'",
    "script-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ])
    assert.ok(csp.includes(d), d);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
  assert.equal(r.headers.get('x-frame-options'), 'DENY');
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
  assert.equal(r.headers.get('cache-control'), 'no-store');
  assert.match(r.headers.get('set-cookie') ?? '', /HttpOnly; SameSite=Strict/);
  // API answers and errors carry nosniff and are not cached either
  for (const res of [
    await raw(req('POST', '/api/system.info', bearer(), 0)),
    await raw(req('GET', '/nope', bearer())),
  ]) {
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(res.headers.get('cache-control'), 'no-store');
  }
  assert.ok(!logs.some((l) => l.includes(server.token)), 'the token never appears in the server log');
});
