// Execution-provider choice: LENSLAB_PROVIDER or 'auto' (CUDA when its provider libraries are installed next to the
// onnxruntime-node binding, else cpu); a provider asked for but not installed falls back to cpu with a message.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Graph } from '../../src-main/engine/graph/builder';
import { serializeModel } from '../../src-main/engine/graph/serialize';
import { Session, autoProvider, providerFromEnv, providerInstalled, PROVIDER_ENV } from '../../src-main/engine/runtime/session';
import { tempDir } from '../helpers/tmp';

const tmp = tempDir('providers-');
after(() => tmp.cleanup());

function negGraph(): Uint8Array {
  const g = new Graph('neg');
  const x = g.input('x', 'float32', [1]);
  g.output(g.op1('Neg', [x]), 'y');
  return serializeModel(g).model;
}

test('LENSLAB_PROVIDER: the known names (any case), unset is undefined, anything else an error naming the variable', () => {
  assert.equal(providerFromEnv({}), undefined);
  assert.equal(providerFromEnv({ [PROVIDER_ENV]: ' ' }), undefined);
  assert.equal(providerFromEnv({ [PROVIDER_ENV]: 'CUDA' }), 'cuda');
  assert.equal(providerFromEnv({ [PROVIDER_ENV]: 'auto' }), 'auto');
  assert.equal(providerFromEnv({ [PROVIDER_ENV]: 'cpu' }), 'cpu');
  assert.throws(() => providerFromEnv({ [PROVIDER_ENV]: 'gpu' }), /^Error: LENSLAB_PROVIDER: unknown execution provider 'gpu' \(expected auto, cpu, cuda/);
});

test("'auto' picks CUDA only when its provider library is installed beside the binding", () => {
  assert.equal(autoProvider(() => false), 'cpu');
  assert.equal(autoProvider((p) => p === 'cuda'), 'cuda');
  assert.equal(providerInstalled('cpu', []), true, 'bundled');
  const bin = join(tmp.dir, 'bin');
  mkdirSync(bin, { recursive: true });
  assert.equal(providerInstalled('cuda', [bin]), false, 'listed by this build but not installed');
  writeFileSync(join(bin, process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so'), '');
  assert.equal(providerInstalled('cuda', [bin]), true);
  assert.equal(providerInstalled('coreml' as never, [bin]), process.platform === 'darwin', 'only where this build lists it');
});

test('the default session provider follows LENSLAB_PROVIDER; CUDA asked for but not installed runs on cpu with a message', async (t) => {
  const prev = process.env[PROVIDER_ENV];
  t.after(() => (prev === undefined ? delete process.env[PROVIDER_ENV] : (process.env[PROVIDER_ENV] = prev)));
  delete process.env[PROVIDER_ENV];
  const msgs: string[] = [];
  const plain = await Session.create(negGraph(), { threads: 1, onWarning: (m) => msgs.push(m) });
  assert.equal(plain.provider, autoProvider());
  if (plain.provider === 'cpu') assert.equal(plain.fallback, null, "'auto' on a machine without CUDA is cpu, no warning");
  await plain.dispose();
  if (providerInstalled('cuda')) return; // the rest is about a machine without CUDA's libraries (like CI)
  process.env[PROVIDER_ENV] = 'cuda';
  const s = await Session.create(negGraph(), { threads: 1, onWarning: (m) => msgs.push(m) });
  assert.equal(s.provider, 'cpu');
  assert.match(s.fallback ?? '', /'cuda' is not installed .*ONNXRUNTIME_NODE_INSTALL=cuda12.*using cpu/);
  assert.equal(msgs.length, 1);
  await s.dispose();
  process.env[PROVIDER_ENV] = 'nonsense';
  await assert.rejects(Session.create(negGraph(), { threads: 1 }), /LENSLAB_PROVIDER: unknown execution provider 'nonsense'/);
});
