import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  readdirSync,
  statSync,
  writeFileSync,
  symlinkSync,
} from 'node:fs';
import { join } from 'node:path';
import { FakeHub } from '../helpers/fake-hub';
import { tempDir } from '../helpers/tmp';
import { until } from '../helpers/wait';
import { pullModel, type PullOptions, type PullProgress } from '../../src-main/hub/pull';
import { HubError, hubConfigFromEnv } from '../../src-main/hub/client';
import { hubCacheDir, parseRepoRef, listCachedSnapshots, RepoCache } from '../../src-main/hub/cache';
import { selectFiles } from '../../src-main/hub/files';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const weights = randomBytes(300_000);
const shard = randomBytes(50_000);
const config = JSON.stringify({ model_type: 'llava' });
const FILES = {
  'config.json': config,
  'tokenizer.json': '{"model":{}}',
  'model.safetensors': weights,
  'pytorch_model.bin': randomBytes(1000),
  'onnx/model.onnx': randomBytes(100),
  'README.md': '# model',
};

describe('hub pull', () => {
  const hub = new FakeHub();
  const tmp = tempDir('hub-');
  let n = 0;
  const cacheDir = () => join(tmp.dir, `cache-${++n}`);
  const opts = (repo: string, extra: Partial<PullOptions> = {}): PullOptions => ({
    repo,
    revision: 'main',
    cacheDir: extra.cacheDir ?? cacheDir(),
    hub: { endpoint: hub.endpoint, token: null },
    backoffMs: 5,
    ...extra,
  });
  before(async () => {
    await hub.start();
    hub.addRepo('org/tiny', { files: FILES });
    hub.addRepo('org/gated', { files: FILES, token: 'hf_right' });
    hub.addRepo('org/pickles', { files: { 'config.json': config, 'pytorch_model.bin': randomBytes(100) } });
    hub.addRepo('org/big', {
      files: {
        'config.json': config,
        'model-00001-of-00002.safetensors': weights,
        'model-00002-of-00002.safetensors': shard,
        'model.safetensors.index.json': '{}',
      },
    });
  });
  after(async () => {
    await hub.close();
    tmp.cleanup();
  });

  it('downloads only what a model folder needs into the standard cache layout', async () => {
    const dir = cacheDir();
    const seen: PullProgress[] = [];
    const r = await pullModel(opts('org/tiny', { cacheDir: dir, onProgress: (p) => seen.push(p) }));
    assert.deepEqual(r.files, ['config.json', 'model.safetensors', 'tokenizer.json']);
    assert.ok(r.skipped.some((s) => s.file === 'pytorch_model.bin' && /pickle/.test(s.reason)));
    const root = join(dir, 'models--org--tiny');
    assert.equal(readFileSync(join(root, 'refs', 'main'), 'utf8'), r.commit);
    assert.equal(r.dir, join(root, 'snapshots', r.commit));
    assert.deepEqual(readdirSync(r.dir).sort(), r.files);
    // relative links into blobs/, the weights' blob named by their sha256
    assert.equal(readlinkSync(join(r.dir, 'model.safetensors')), `../../blobs/${sha256(weights)}`);
    assert.deepEqual(readFileSync(join(r.dir, 'model.safetensors')), weights);
    assert.ok(!existsSync(join(root, 'blobs', `${sha256(weights)}.incomplete`)));
    assert.equal(r.downloadedBytes, weights.length + config.length + 12);
    // the weights came through the CDN redirect; nothing pickled or in subfolders was fetched
    assert.ok(hub.log.some((l) => l.path === `/cdn-lfs/${sha256(weights)}`));
    assert.ok(!hub.log.some((l) => /pytorch_model|onnx/.test(l.path)));
    const last = seen.at(-1)!;
    assert.equal(last.phase, 'done');
    assert.equal(last.bytes, last.totalBytes);
    assert.equal(last.filesDone, 3);
    // found by a cache scan as Python tools would have left it
    const snaps = listCachedSnapshots(dir);
    assert.equal(snaps.length, 1);
    assert.deepEqual(snaps[0].refs, ['main']);
    // a second pull reuses every blob
    const again = await pullModel(opts('org/tiny', { cacheDir: dir }));
    assert.equal(again.downloadedBytes, 0);
    assert.equal(again.reusedBytes, weights.length + config.length + 12);
  });

  it('resumes a transfer cut short with a Range request and verifies the result', async () => {
    hub.fault({ file: 'model.safetensors', kind: 'truncate', afterBytes: 100_000 });
    const before = hub.log.length;
    const seen: PullProgress[] = [];
    const r = await pullModel(opts('org/tiny', { onProgress: (p) => seen.push(p) }));
    assert.deepEqual(readFileSync(join(r.dir, 'model.safetensors')), weights);
    const cdn = hub.log.slice(before).filter((l) => l.path.startsWith('/cdn-lfs/'));
    assert.equal(cdn.length, 2);
    assert.equal(cdn[0].range, null);
    assert.match(cdn[1].range ?? '', /^bytes=\d+-$/);
    assert.ok(Number(/\d+/.exec(cdn[1].range!)![0]) >= 65_536, `resumed from ${cdn[1].range}`);
    assert.ok(seen.some((p) => p.retries === 1 && /cut short|broke off/.test(p.message ?? '')));
    assert.ok(r.downloadedBytes < weights.length + 100_000, 'the bytes already on disk were not fetched again');
  });

  it('a pull stopped mid-file leaves the partial blob, and the next pull fetches only the rest', async () => {
    const dir = cacheDir();
    hub.fault({ file: 'model.safetensors', kind: 'stall', afterBytes: 200_000 });
    const ac = new AbortController();
    const p = pullModel(opts('org/tiny', { cacheDir: dir, signal: ac.signal }));
    const part = join(dir, 'models--org--tiny', 'blobs', `${sha256(weights)}.incomplete`);
    await until(() => existsSync(part) && statSync(part).size >= 200_000, 'partial blob');
    ac.abort();
    await assert.rejects(p, (e: HubError) => e.kind === 'cancelled');
    hub.release();
    assert.equal(statSync(part).size, 200_000);
    const before = hub.log.length;
    const r = await pullModel(opts('org/tiny', { cacheDir: dir }));
    assert.equal(hub.log.slice(before).find((l) => l.path.startsWith('/cdn-lfs/'))?.range, 'bytes=200000-');
    assert.equal(r.downloadedBytes, weights.length - 200_000);
    assert.deepEqual(readFileSync(join(r.dir, 'model.safetensors')), weights);
  });

  it('a file whose sha256 is wrong is deleted and named', async () => {
    const dir = cacheDir();
    hub.fault({ file: 'model.safetensors', kind: 'corrupt' });
    await assert.rejects(pullModel(opts('org/tiny', { cacheDir: dir })), (e: HubError) => {
      assert.equal(e.kind, 'integrity');
      assert.match(e.message, /org\/tiny\/model\.safetensors: sha256 is [0-9a-f]{64}, the Hub lists [0-9a-f]{64}/);
      return true;
    });
    const blobs = readdirSync(join(dir, 'models--org--tiny', 'blobs'));
    assert.ok(!blobs.some((b) => b.startsWith(sha256(weights))), blobs.join());
    const snap = readdirSync(join(dir, 'models--org--tiny', 'snapshots'))[0];
    assert.ok(!existsSync(join(dir, 'models--org--tiny', 'snapshots', snap, 'model.safetensors')));
    // the next pull starts the file afresh and succeeds
    const r = await pullModel(opts('org/tiny', { cacheDir: dir }));
    assert.deepEqual(readFileSync(join(r.dir, 'model.safetensors')), weights);
  });

  it('gated repos: 401 without a token, 403 with a wrong one, the token sent to the endpoint', async () => {
    await assert.rejects(
      pullModel(opts('org/gated')),
      (e: HubError) => e.kind === 'auth' && e.status === 401 && /set HF_TOKEN/.test(e.message),
    );
    await assert.rejects(
      pullModel(opts('org/gated', { hub: { endpoint: hub.endpoint, token: 'hf_wrong' } })),
      (e: HubError) => e.kind === 'gated' && e.status === 403 && /accept its conditions/.test(e.message),
    );
    const before = hub.log.length;
    const r = await pullModel(opts('org/gated', { hub: { endpoint: hub.endpoint, token: 'hf_right' } }));
    assert.equal(r.files.length, 3);
    const log = hub.log.slice(before);
    assert.ok(log.filter((l) => l.path.includes('/resolve/')).every((l) => l.authorization === 'Bearer hf_right'));
    assert.ok(log.filter((l) => l.path.startsWith('/cdn-lfs/')).length > 0);
  });

  it('404s name the repo or the revision', async () => {
    await assert.rejects(
      pullModel(opts('org/nope', { hub: { endpoint: hub.endpoint, token: 'hf_x' } })),
      (e: HubError) => e.kind === 'not_found' && /no model org\/nope/.test(e.message),
    );
    await assert.rejects(
      pullModel(opts('org/tiny', { revision: 'v9' })),
      (e: HubError) => e.kind === 'not_found' && /has no revision "v9"/.test(e.message),
    );
  });

  it('429 (Retry-After) and 5xx are retried; a server that keeps failing gives up with the status', async () => {
    hub.fault({ file: 'config.json', kind: 'status', status: 429, retryAfter: '0' });
    hub.fault({ file: 'tokenizer.json', kind: 'status', status: 503 });
    const seen: PullProgress[] = [];
    const r = await pullModel(opts('org/tiny', { onProgress: (p) => seen.push(p) }));
    assert.equal(r.files.length, 3);
    assert.equal(seen.at(-1)!.retries, 2);
    hub.fault({ file: 'config.json', kind: 'status', status: 500, times: 10 });
    await assert.rejects(
      pullModel(opts('org/tiny', { maxAttempts: 3 })),
      (e: HubError) =>
        e.kind === 'server' && /config\.json: the Hub answered 500.*gave up after 3 attempts/.test(e.message),
    );
    hub.clearFaults();
  });

  it('a disk that is too small is refused before downloading; a disk that fills keeps the partial file', async () => {
    const before = hub.log.length;
    await assert.rejects(
      pullModel(opts('org/tiny', { freeBytes: () => 1_000_000 })),
      (e: HubError) =>
        e.kind === 'disk' && /not enough disk space for org\/tiny: the download needs 293 KiB more/.test(e.message),
    );
    assert.ok(!hub.log.slice(before).some((l) => l.path.includes('/resolve/')));
    const dir = cacheDir();
    let written = 0;
    const full = async (path: string) => {
      const { open } = await import('node:fs/promises');
      const fh = await open(path, 'a');
      return {
        async write(chunk: Buffer) {
          if (written + chunk.length > 150_000)
            throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
          written += chunk.length;
          await fh.write(chunk);
        },
        close: () => fh.close(),
      };
    };
    await assert.rejects(
      pullModel(opts('org/tiny', { cacheDir: dir, openWriter: full })),
      (e: HubError) => e.kind === 'disk' && /is full while writing model\.safetensors/.test(e.message),
    );
    const part = join(dir, 'models--org--tiny', 'blobs', `${sha256(weights)}.incomplete`);
    assert.ok(statSync(part).size > 0);
    const r = await pullModel(opts('org/tiny', { cacheDir: dir }));
    assert.deepEqual(readFileSync(join(r.dir, 'model.safetensors')), weights);
  });

  it('refuses pickle-only repos and lets the caller refuse a config before any weights are fetched', async () => {
    await assert.rejects(
      pullModel(opts('org/pickles')),
      (e: HubError) => e.kind === 'unsupported' && /only as PyTorch pickles \(pytorch_model\.bin\)/.test(e.message),
    );
    const before = hub.log.length;
    await assert.rejects(
      pullModel(
        opts('org/tiny', {
          checkConfig: () => {
            throw new Error('model_type "llava" is not supported');
          },
        }),
      ),
      (e: HubError) => e.kind === 'unsupported' && /not supported/.test(e.message),
    );
    assert.ok(!hub.log.slice(before).some((l) => l.path.startsWith('/cdn-lfs/')));
  });

  it('takes every shard of a sharded checkpoint', async () => {
    const r = await pullModel(opts('org/big'));
    assert.deepEqual(r.files, [
      'config.json',
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
      'model.safetensors.index.json',
    ]);
  });

  it('finds a snapshot already in the cache when the Hub cannot be reached, and offline', async () => {
    const dir = cacheDir();
    const r = await pullModel(opts('org/tiny', { cacheDir: dir }));
    const down = { endpoint: 'http://127.0.0.1:1', token: null };
    const o = await pullModel(opts('org/tiny', { cacheDir: dir, hub: down, maxAttempts: 1 }));
    assert.equal(o.dir, r.dir);
    assert.equal(o.offline, true);
    const off = await pullModel(opts('org/tiny', { cacheDir: dir, hub: down, offline: true }));
    assert.equal(off.commit, r.commit);
    await assert.rejects(
      pullModel(opts('org/other', { cacheDir: dir, hub: down, offline: true })),
      /not in the Hub cache/,
    );
  });

  it('does not send the token to another host a redirect points at', async () => {
    const cdn = new FakeHub();
    await cdn.start();
    cdn.addRepo('org/tiny', { files: FILES });
    const relay = new FakeHub();
    await relay.start();
    const commit = relay.addRepo('org/tiny', { files: FILES, token: 'hf_right' });
    // point the relay's redirects at the other server
    const orig = (relay as unknown as { handle: (...a: unknown[]) => void }).handle.bind(relay);
    (
      relay as unknown as {
        handle: (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void;
      }
    ).handle = (req, res) => {
      const end = res.writeHead.bind(res);
      res.writeHead = ((status: number, headers: Record<string, string>) => {
        if (status === 302) headers.Location = `${cdn.endpoint}${headers.Location}`;
        return end(status, headers);
      }) as typeof res.writeHead;
      orig(req, res);
    };
    try {
      const r = await pullModel(opts('org/tiny', { hub: { endpoint: relay.endpoint, token: 'hf_right' } }));
      assert.equal(r.commit, commit);
      const cdnHits = cdn.log.filter((l) => l.path.startsWith('/cdn-lfs/'));
      assert.equal(cdnHits.length, 1);
      assert.equal(cdnHits[0].authorization, null);
    } finally {
      await cdn.close();
      await relay.close();
    }
  });
});

describe('hub settings and names', () => {
  it('reads HF_ENDPOINT, HF_TOKEN, the token file and the cache location like huggingface_hub', () => {
    const t = tempDir('hub-env-');
    try {
      assert.deepEqual(hubConfigFromEnv({ HF_ENDPOINT: 'http://mirror.local/', HF_TOKEN: 'hf_a', HF_HOME: t.dir }), {
        endpoint: 'http://mirror.local',
        token: 'hf_a',
      });
      writeFileSync(join(t.dir, 'token'), 'hf_file\n');
      assert.equal(hubConfigFromEnv({ HF_HOME: t.dir }).token, 'hf_file');
      assert.equal(hubConfigFromEnv({ HF_HOME: join(t.dir, 'none') }).endpoint, 'https://huggingface.co');
      assert.throws(() => hubConfigFromEnv({ HF_ENDPOINT: 'ftp://x' }), /must be an http\(s\) URL/);
      assert.equal(hubCacheDir({ HF_HUB_CACHE: '/a', HF_HOME: '/b' }), '/a');
      assert.equal(hubCacheDir({ HF_HOME: '/b' }), join('/b', 'hub'));
      assert.equal(hubCacheDir({ XDG_CACHE_HOME: '/c' }), join('/c', 'huggingface', 'hub'));
    } finally {
      t.cleanup();
    }
  });

  it('parses ORG/NAME[@REVISION] and refuses names that could leave the cache', () => {
    assert.deepEqual(parseRepoRef('HuggingFaceTB/SmolVLM-256M-Instruct'), {
      repo: 'HuggingFaceTB/SmolVLM-256M-Instruct',
      revision: 'main',
    });
    assert.deepEqual(parseRepoRef('org/name@refs/pr/1'), { repo: 'org/name', revision: 'refs/pr/1' });
    for (const bad of ['../x', 'a/b/c', 'org/..', 'org/name@../x', 'org/name@', '/abs', 'org\\name'])
      assert.throws(() => parseRepoRef(bad), /not a Hub model id|not a valid revision/, bad);
    assert.throws(
      () => new RepoCache('/tmp', 'org/x').snapshotFile('a'.repeat(40), '../../evil'),
      /leave the snapshot folder/,
    );
  });

  it('selects safetensors, configs, tokenizer and templates only', () => {
    const s = selectFiles(
      [
        'config.json',
        'model.safetensors',
        'pytorch_model.bin',
        'model.pt',
        'chat_template.jinja',
        'preprocessor_config.json',
        'onnx/model.onnx',
        'flax_model.msgpack',
        'tokenizer.model',
      ],
      'o/n',
    );
    assert.deepEqual(s.files, [
      'chat_template.jinja',
      'config.json',
      'model.safetensors',
      'preprocessor_config.json',
      'tokenizer.model',
    ]);
    assert.throws(() => selectFiles(['model.safetensors'], 'o/n'), /no config\.json/);
  });

  it('lists snapshots that Python tools left, dangling links and all', () => {
    const t = tempDir('hub-scan-');
    try {
      const commit = 'b'.repeat(40);
      const root = join(t.dir, 'models--Org--M');
      mkdirSync(join(root, 'snapshots', commit), { recursive: true });
      mkdirSync(join(root, 'blobs'), { recursive: true });
      mkdirSync(join(root, 'refs'), { recursive: true });
      writeFileSync(join(root, 'blobs', 'c'.repeat(40)), '{}');
      symlinkSync(`../../blobs/${'c'.repeat(40)}`, join(root, 'snapshots', commit, 'config.json'));
      symlinkSync(`../../blobs/${'d'.repeat(64)}`, join(root, 'snapshots', commit, 'model.safetensors'));
      writeFileSync(join(root, 'refs', 'main'), commit);
      const s = listCachedSnapshots(t.dir);
      assert.equal(s.length, 1);
      assert.equal(s[0].repo, 'Org/M');
      assert.deepEqual(s[0].refs, ['main']);
      assert.equal(s[0].bytes, 2);
    } finally {
      t.cleanup();
    }
  });
});
