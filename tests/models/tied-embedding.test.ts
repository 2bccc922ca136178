// A tied word embedding is stored once in every compiled graph with logits over positions (training step, score
// program, the full forward, generate's score graph): the LM head is a Gemm(transB=1) on the checkpoint-layout
// table, the same initializer the token lookup reads, not a transposed copy. Untied, lm_head.weight is one more
// initializer in checkpoint layout. The external data of each serialized graph is exactly the bytes of the distinct
// checkpoint tensors it uses. Gradients through the tied head (hidden states and a trainable table) match central
// differences in float64.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { writeTinyLlava } from '../../src-main/models/demo/tiny-llava';
import {
  buildTrainableVlm,
  buildLogitsGraph,
  loadVlm,
  type LoadedVlm,
  type LoraOptions,
} from '../../src-main/models/program';
import { buildGraph } from '../../src-main/models/generate';
import { buildScore, buildTrainStep, serializeModel, StepExecutor, tensor, type Graph } from '../../src-main/engine';
import { demoRng } from '../../src-main/models/demo/rng';
import { assertDirectionalGradient, demoRows, makeFeeds } from './program-fixture';

const { dir, cleanup } = tempDir('tied-');
const models: Record<'tied' | 'untied', LoadedVlm> = {} as never;
before(() => {
  for (const tie of [true, false]) {
    const d = join(dir, tie ? 'tied' : 'untied');
    writeTinyLlava(d, 1, { initStd: 0.2, tieWordEmbeddings: tie });
    models[tie ? 'tied' : 'untied'] = loadVlm(d);
  }
});
after(() => {
  for (const m of Object.values(models)) m?.close();
  cleanup();
});

const LORA: LoraOptions = { rank: 2, alpha: 4, dropout: 0, targetModules: ['q_proj', 'v_proj', 'down_proj'] };
const EMBED = 'language_model.model.embed_tokens.weight';
const HEAD = 'language_model.lm_head.weight';

/** Checkpoint tensor behind an initializer name (frozen matrices are stored transposed as "<name>.T"), or null. */
function sourceOf(m: LoadedVlm, name: string): string | null {
  if (m.weights.has(name)) return name;
  if (name.endsWith('.T') && m.weights.has(name.slice(0, -2))) return name.slice(0, -2);
  return null;
}

/**
 * Checks that every checkpoint tensor enters the serialized graph at most once and that the external data is exactly
 * their bytes; returns the checkpoint tensors found and the initializers whose size is the embedding's.
 */
function checkStoredOnce(m: LoadedVlm, g: Graph, what: string): { sources: Set<string>; tableSized: string[] } {
  const V = m.config.text.vocabSize;
  const D = m.config.text.hiddenSize;
  const sources = new Map<string, string[]>();
  const tableSized: string[] = [];
  for (const v of g.initializers) {
    const n = (v.shape ?? []).reduce<number>((a, b) => a * Number(b), 1);
    if (n === V * D) tableSized.push(v.name);
    const s = sourceOf(m, v.name);
    if (s) sources.set(s, [...(sources.get(s) ?? []), v.name]);
  }
  for (const [s, inits] of sources)
    assert.equal(
      inits.length,
      1,
      `${what}: checkpoint tensor ${s} is stored ${inits.length} times (${inits.join(', ')})`,
    );
  const ser = serializeModel(g, { external: { location: 'model.onnx.data', threshold: 1024, align: 1 } });
  assert.ok(ser.external, `${what}: has external data`);
  const extBytes = ser.external.chunks.reduce((a, c) => a + c.length, 0);
  // the external data is the distinct checkpoint tensors (float32) plus the graph's own constants (rope tables,
  // masks), which together are smaller than the table: no room for a second copy of it
  const weights = ser.external.chunks.filter((c) => sourceOf(m, c.name));
  const weightBytes = weights.reduce((a, c) => a + c.length, 0);
  const want = weights.reduce(
    (a, c) => a + 4 * m.weights.info(sourceOf(m, c.name)!).shape.reduce((x, y) => x * y, 1),
    0,
  );
  assert.equal(
    weightBytes,
    want,
    `${what}: external weights ${weightBytes} bytes vs distinct checkpoint tensors ${want}`,
  );
  assert.ok(
    extBytes - weightBytes < 4 * V * D,
    `${what}: ${extBytes - weightBytes} bytes of external data besides the checkpoint's tensors`,
  );
  return { sources: new Set(sources.keys()), tableSized };
}

for (const kind of ['tied', 'untied'] as const) {
  test(`${kind}: the embedding table is stored once in the training step, score, forward and generate score graphs`, () => {
    const m = models[kind];
    assert.equal(m.config.text.tieWordEmbeddings, kind === 'tied');
    assert.equal(m.weights.has(HEAD), kind === 'untied');
    const tv = buildTrainableVlm(m, 'lora', LORA);
    const graphs: Array<[string, Graph]> = [
      ['train step', buildTrainStep({ params: tv.params, forward: tv.forward }).graph],
      ['score program', buildScore({ params: tv.params, forward: tv.score }).graph],
      ['logits graph', buildLogitsGraph(m)],
      ['generate score-image', buildGraph(m, 'score-image', null)],
    ];
    for (const [what, g] of graphs) {
      const { sources, tableSized } = checkStoredOnce(m, g, `${kind} ${what}`);
      assert.ok(sources.has(EMBED), `${what}: uses the embedding`);
      // the head is used in checkpoint layout: no "<table>.T" initializer, one table per distinct tensor
      assert.deepEqual(
        tableSized.sort(),
        kind === 'tied' ? [EMBED] : [EMBED, HEAD].sort(),
        `${kind} ${what}: initializers of the table's size`,
      );
      assert.ok(
        !g.initializers.some((v) => v.name === `${EMBED}.T` || v.name === `${HEAD}.T`),
        `${what}: no transposed head`,
      );
      assert.ok(
        g.nodes.some((n) => n.opType === 'Gemm' && n.inputs[1]?.name === (kind === 'tied' ? EMBED : HEAD)),
        `${what}: the head is a Gemm on the table`,
      );
    }
  });
}

test('tied head, float64: gradients reaching the hidden states (LoRA) and a trainable table (full decoder) match central differences', async () => {
  const d = join(dir, 'tied-f64');
  writeTinyLlava(d, 3, {
    initStd: 0.2,
    tieWordEmbeddings: true,
    projectorHiddenAct: 'gelu_pytorch_tanh',
    imageSize: 32,
    patchSize: 8,
  });
  const small = loadVlm(d);
  try {
    const f = makeFeeds(small, await demoRows(small, 5, 2, 'colors'));
    const feeds = {
      ...f,
      pixel_values: tensor(
        'float64',
        f.pixel_values.dims as number[],
        Float64Array.from(f.pixel_values.data as Float32Array),
      ),
    };
    const session = { optimization: 'basic' as const, threads: 1 };
    for (const [method, opts] of [
      ['lora', {}],
      ['full', { fullParts: ['decoder'] as Array<'decoder'> }],
    ] as const) {
      const tv = buildTrainableVlm(small, method, method === 'lora' ? LORA : null, { ...opts, dtype: 'float64' });
      if (method === 'full')
        assert.ok(
          tv.params.some((p) => p.name === EMBED) && !tv.params.some((p) => p.name === HEAD),
          'the tied table trains as one tensor',
        );
      const init: Record<string, Float64Array> = {};
      const rng = demoRng(9);
      // LoRA B starts at 0 (no gradient reaches A): start from small random B so every LoRA tensor has one
      for (const [n, v] of Object.entries(tv.initialValues(0)))
        init[n] = Float64Array.from(v, (x) => (method === 'lora' && x === 0 ? 0.05 * rng.normal() : x));
      const ex = await StepExecutor.create(
        { params: tv.params, forward: tv.forward, outputGrads: true, session },
        init,
      );
      const grads = (await ex.step(feeds, 0)).grads;
      await ex.dispose();
      const dirs: Record<string, Float64Array> = {};
      for (const p of tv.params) dirs[p.name] = Float64Array.from(init[p.name], () => rng.normal());
      await assertDirectionalGradient({ tv, init, grads, dirs, feeds, session, label: method });
      if (method === 'full') {
        // the table's gradient has both uses: rows never looked up still get the head's share
        const ids = new Set(Array.from(f.input_ids.data as BigInt64Array, Number));
        const V = small.config.text.vocabSize;
        const D = small.config.text.hiddenSize;
        const ge = grads[EMBED].data as Float64Array;
        let unused = -1;
        for (let r = 0; r < V && unused < 0; r++) if (!ids.has(r)) unused = r;
        assert.ok(unused >= 0);
        assert.ok(
          ge.subarray(unused * D, (unused + 1) * D).some((x) => x !== 0),
          `row ${unused} (not in the batch) gets the head's gradient`,
        );
      }
    }
  } finally {
    small.close();
  }
});
