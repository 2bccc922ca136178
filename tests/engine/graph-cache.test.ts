// Compiled-graph cache eviction (runtime/cache.ts): least-recently-used entries go once an insert takes the cache over
// its cap; entries held by this thread or used recently stay; LENSLAB_GRAPH_CACHE_MAX sets the cap.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Graph } from '../../src-main/engine/graph/builder';
import { add } from '../../src-main/engine/ops/elementwise';
import {
  compileCached,
  contentHash,
  evictGraphCache,
  graphCacheCap,
  graphCacheEntryHeld,
  graphCacheMaxFromEnv,
  listGraphCache,
  parseByteSize,
  DEFAULT_GRAPH_CACHE_MAX,
} from '../../src-main/engine/runtime/cache';
import { tempDir } from '../helpers/tmp';

const tmp = tempDir('engine-cache-');
after(() => tmp.cleanup());
let dirs = 0;
const freshDir = () => join(tmp.dir, `c${dirs++}`);

/** A small graph whose 4 KiB initializer goes to external data. */
function graph(seed: number): () => Graph {
  return () => {
    const g = new Graph(`g${seed}`);
    const x = g.input('x', 'float32', [1024]);
    const w = g.initializer('w', 'float32', [1024], new Float32Array(1024).fill(seed));
    g.output(add(x, w), 'y');
    return g;
  };
}

/** A fake complete entry of `bytes` bytes last used `ageMs` ago. */
function fakeEntry(cacheDir: string, name: string, bytes: number, ageMs: number): string {
  const hash = contentHash(name);
  const dir = join(cacheDir, hash);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'model.onnx'), Buffer.alloc(bytes));
  setAge(cacheDir, hash, ageMs);
  return hash;
}

function setAge(cacheDir: string, hash: string, ageMs: number): void {
  const t = new Date(Date.now() - ageMs);
  const f = join(cacheDir, hash, 'last-used');
  if (!existsSync(f)) writeFileSync(f, '');
  utimesSync(f, t, t);
}

test('sizes parse as LENSLAB_GRAPH_CACHE_MAX takes them; bad ones are errors naming the variable', () => {
  const G = 1024 ** 3;
  assert.equal(parseByteSize('4G'), 4 * G);
  assert.equal(parseByteSize('4g'), 4 * G);
  assert.equal(parseByteSize('4GB'), 4 * G);
  assert.equal(parseByteSize(' 4GiB '), 4 * G);
  assert.equal(parseByteSize('1.5G'), 1.5 * G);
  assert.equal(parseByteSize('512M'), 512 * 1024 ** 2);
  assert.equal(parseByteSize('64k'), 64 * 1024);
  assert.equal(parseByteSize('2T'), 2 * 1024 ** 4);
  assert.equal(parseByteSize('123456'), 123456);
  assert.equal(parseByteSize('100b'), 100);
  assert.equal(parseByteSize('unlimited'), Infinity);
  assert.equal(parseByteSize('off'), Infinity);
  for (const bad of ['', 'abc', '4X', '-1G', '4 G B', 'G', '4ib', '1e9']) {
    assert.throws(
      () => parseByteSize(bad),
      (e: Error) => e.message.startsWith('LENSLAB_GRAPH_CACHE_MAX:') && e.message.includes(`'${bad}'`),
      bad,
    );
  }
  assert.equal(graphCacheMaxFromEnv({}), undefined);
  assert.equal(graphCacheMaxFromEnv({ LENSLAB_GRAPH_CACHE_MAX: '' }), undefined);
  assert.equal(graphCacheMaxFromEnv({ LENSLAB_GRAPH_CACHE_MAX: '3M' }), 3 * 1024 ** 2);
  assert.equal(graphCacheCap(tmp.dir, 0, { LENSLAB_GRAPH_CACHE_MAX: '4G' }), 4 * G);
  const dflt = graphCacheCap(tmp.dir, 0, {});
  assert.ok(dflt > 0 && dflt <= DEFAULT_GRAPH_CACHE_MAX, String(dflt));
});

test('eviction removes least-recently-used entries until the cache is under its cap', () => {
  const dir = freshDir();
  const a = fakeEntry(dir, 'a', 1000, 40 * 60_000); // oldest
  const b = fakeEntry(dir, 'b', 1000, 30 * 60_000);
  const c = fakeEntry(dir, 'c', 1000, 20 * 60_000);
  const d = fakeEntry(dir, 'd', 1000, 10 * 60_000); // newest
  assert.equal(listGraphCache(dir).length, 4);
  const r = evictGraphCache(dir, { maxBytes: 2500, recentMs: 0 });
  assert.deepEqual(r.evicted, [a, b]);
  assert.ok(r.bytesBefore === 4000 && r.bytesAfter === 2000, JSON.stringify(r));
  assert.deepEqual(
    listGraphCache(dir)
      .map((e) => e.hash)
      .sort(),
    [c, d].sort(),
  );
  assert.deepEqual(readdirSync(dir).sort(), [c, d].sort(), 'nothing left behind (renamed-out entries are deleted)');
  // under the cap: nothing happens
  assert.deepEqual(evictGraphCache(dir, { maxBytes: 2500, recentMs: 0 }).evicted, []);
});

test('a hit marks an entry used: the next insert evicts the others first', () => {
  const dir = freshDir();
  const e = [0, 1, 2].map((i) => compileCached(dir, { i }, graph(i), { maxBytes: Infinity }));
  for (const x of e) x.release();
  const size = listGraphCache(dir)[0].bytes;
  e.forEach((x, i) => setAge(dir, x.hash, (10 - i) * 60_000)); // 0 oldest, 2 newest
  const hit = compileCached(dir, { i: 0 }, () => assert.fail('a hit does not build'));
  assert.equal(hit.hit, true);
  hit.release();
  // room for two: inserting a fourth evicts 1 and 2 (0 was just used); the new entry stays
  const fourth = compileCached(dir, { i: 3 }, graph(3), { maxBytes: Math.floor(2.5 * size), recentMs: 0 });
  assert.equal(fourth.hit, false);
  assert.deepEqual(
    listGraphCache(dir)
      .map((x) => x.hash)
      .sort(),
    [e[0].hash, fourth.hash].sort(),
  );
  assert.ok(existsSync(fourth.path));
  fourth.release();
});

test('entries held by this thread or used recently are never evicted', () => {
  const dir = freshDir();
  const held = compileCached(dir, { held: 1 }, graph(1), { maxBytes: Infinity });
  setAge(dir, held.hash, 60 * 60_000); // the oldest, yet held
  const recent = fakeEntry(dir, 'recent', 10_000, 60_000); // used a minute ago (by another process, say)
  const old = fakeEntry(dir, 'old', 10_000, 30 * 60_000);
  assert.equal(graphCacheEntryHeld(dir, held.hash), true);
  const r = evictGraphCache(dir, { maxBytes: 0 }); // default recentMs: 5 minutes
  assert.deepEqual(r.evicted, [old]);
  assert.deepEqual(r.kept, [held.hash, recent]);
  assert.ok(existsSync(held.path));
  assert.ok(existsSync(join(dir, recent)));
  held.release();
  held.release(); // idempotent
  assert.equal(graphCacheEntryHeld(dir, held.hash), false);
  assert.deepEqual(evictGraphCache(dir, { maxBytes: 0 }).evicted, [held.hash], 'released: it goes');
  assert.deepEqual(evictGraphCache(dir, { maxBytes: 0, recentMs: 0 }).evicted, [recent]);
  // two holds of one entry: it stays until both are released
  const h1 = compileCached(dir, { twice: 1 }, graph(2), { maxBytes: Infinity });
  const h2 = compileCached(dir, { twice: 1 }, () => assert.fail('hit'));
  h1.release();
  assert.deepEqual(evictGraphCache(dir, { maxBytes: 0, recentMs: 0 }).evicted, []);
  h2.release();
  assert.deepEqual(evictGraphCache(dir, { maxBytes: 0, recentMs: 0 }).evicted, [h1.hash]);
});

test('LENSLAB_GRAPH_CACHE_MAX caps the cache; a bad value fails before building', (t) => {
  const prev = process.env.LENSLAB_GRAPH_CACHE_MAX;
  t.after(() => {
    if (prev === undefined) delete process.env.LENSLAB_GRAPH_CACHE_MAX;
    else process.env.LENSLAB_GRAPH_CACHE_MAX = prev;
  });
  const dir = freshDir();
  const old = fakeEntry(dir, 'old', 50_000, 60 * 60_000);
  process.env.LENSLAB_GRAPH_CACHE_MAX = '40k';
  const e = compileCached(dir, { env: 1 }, graph(1));
  e.release();
  assert.deepEqual(
    listGraphCache(dir).map((x) => x.hash),
    [e.hash],
    'the old entry went to get under 40 KiB',
  );
  process.env.LENSLAB_GRAPH_CACHE_MAX = 'lots';
  let built = false;
  assert.throws(
    () => compileCached(dir, { env: 2 }, () => ((built = true), graph(2)())),
    /LENSLAB_GRAPH_CACHE_MAX: 'lots' is not a size/,
  );
  assert.equal(built, false);
  assert.equal(graphCacheEntryHeld(dir, contentHash({ env: 2 })), false, 'a failed compile holds nothing');
  // a hit needs no cap
  const hit = compileCached(dir, { env: 1 }, () => assert.fail('hit'));
  assert.equal(hit.hit, true);
  hit.release();
  assert.ok(!existsSync(join(dir, old)));
});

test('leftovers of failed deletions and stale temp folders are cleaned; fresh temp folders are not', () => {
  const dir = freshDir();
  mkdirSync(join(dir, '.evict-0123456789abcdef-1-abc'), { recursive: true });
  writeFileSync(join(dir, '.evict-0123456789abcdef-1-abc', 'model.onnx.data'), Buffer.alloc(100));
  mkdirSync(join(dir, '.tmp-stale'));
  const t = new Date(Date.now() - 48 * 3600_000);
  utimesSync(join(dir, '.tmp-stale'), t, t);
  mkdirSync(join(dir, '.tmp-writing')); // another process writing an entry now
  evictGraphCache(dir, { maxBytes: Infinity });
  assert.deepEqual(readdirSync(dir), ['.tmp-writing']);
});
