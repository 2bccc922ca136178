// Execution-provider choice: LENSLAB_PROVIDER or 'auto' (CUDA when its provider libraries are installed next to the
// onnxruntime-node binding, else cpu); a provider asked for but not installed falls back to cpu with a message.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Graph } from '../../src-main/engine/graph/builder';
import { serializeModel } from '../../src-main/engine/graph/serialize';
import {
  Session,
  autoProvider,
  providerFromEnv,
  providerInstalled,
  PROVIDER_ENV,
} from '../../src-main/engine/runtime/session';
import { tensor } from '../../src-main/engine/runtime/tensor';
import { tempDir } from '../helpers/tmp';

const tmp = tempDir('providers-');
after(() => tmp.cleanup());

/** Whether CUDA's provider library sits beside this platform's onnxruntime-node binding, found without session.ts. */
function cudaLibraryPresent(): boolean {
  const bin = join(dirname(createRequire(import.meta.url).resolve('onnxruntime-node')), '..', 'bin');
  const lib = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
  return readdirSync(bin).some((d) => existsSync(join(bin, d, process.platform, process.arch, lib)));
}

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
  assert.throws(
    () => providerFromEnv({ [PROVIDER_ENV]: 'gpu' }),
    /^Error: LENSLAB_PROVIDER: unknown execution provider 'gpu' \(expected auto, cpu, cuda/,
  );
});

test("'auto' picks CUDA only when its provider library is installed beside the binding", () => {
  assert.equal(
    autoProvider(() => false),
    'cpu',
  );
  assert.equal(
    autoProvider((p) => p === 'cuda'),
    'cuda',
  );
  assert.equal(providerInstalled('cpu', []), true, 'bundled');
  const bin = join(tmp.dir, 'bin');
  mkdirSync(bin, { recursive: true });
  assert.equal(providerInstalled('cuda', [bin]), false, 'listed by this build but not installed');
  writeFileSync(
    join(bin, process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so'),
    '',
  );
  assert.equal(providerInstalled('cuda', [bin]), true);
  assert.equal(
    providerInstalled('coreml' as never, [bin]),
    process.platform === 'darwin',
    'only where this build lists it',
  );
});

test('the default session provider follows LENSLAB_PROVIDER; CUDA asked for but not installed runs on cpu with a message', async (t) => {
  const prev = process.env[PROVIDER_ENV];
  t.after(() => (prev === undefined ? delete process.env[PROVIDER_ENV] : (process.env[PROVIDER_ENV] = prev)));
  delete process.env[PROVIDER_ENV];
  const msgs: string[] = [];
  const plain = await Session.create(negGraph(), { threads: 1, onWarning: (m) => msgs.push(m) });
  assert.equal(plain.provider, cudaLibraryPresent() ? 'cuda' : 'cpu');
  assert.equal(plain.fallback, null, "'auto' takes CUDA only when it is installed, so it never warns");
  assert.equal(msgs.length, 0);
  await plain.dispose();
  if (providerInstalled('cuda')) return; // the rest is about a machine without CUDA's libraries (like CI)
  process.env[PROVIDER_ENV] = 'cuda';
  const s = await Session.create(negGraph(), { threads: 1, onWarning: (m) => msgs.push(m) });
  assert.equal(s.provider, 'cpu');
  assert.match(s.fallback ?? '', /'cuda' is not installed .*ONNXRUNTIME_NODE_INSTALL=cuda12.*using cpu/);
  assert.equal(msgs.length, 1);
  await s.dispose();
  process.env[PROVIDER_ENV] = 'nonsense';
  await assert.rejects(
    Session.create(negGraph(), { threads: 1 }),
    /LENSLAB_PROVIDER: unknown execution provider 'nonsense'/,
  );
});

test('a provider that is installed but fails to start falls back to cpu, naming the provider and the reason', async () => {
  const msgs: string[] = [];
  // Claim CUDA's libraries are present: on a machine without them ORT cannot start the provider.
  for (const provider of ['cuda', 'auto'] as const) {
    const s = await Session.create(negGraph(), {
      provider,
      threads: 1,
      installed: (p) => p === 'cuda',
      onWarning: (m) => msgs.push(m),
    });
    if (cudaLibraryPresent()) {
      assert.equal(s.provider, 'cuda');
    } else {
      assert.equal(s.provider, 'cpu');
      assert.match(s.fallback ?? '', /^execution provider 'cuda' failed to start \(.+\); using cpu$/);
      assert.equal(msgs.at(-1), `lenslab engine: ${s.fallback}`);
      const out = await s.run({ x: tensor('float32', [1], [2]) });
      assert.deepEqual([...(out.y.data as Float32Array)], [-2], 'the cpu session runs');
    }
    await s.dispose();
  }
});
