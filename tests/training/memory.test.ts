import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decoderParams,
  visionParams,
  loraParams,
  estimateTrainingMemory,
  memoryRefusal,
  formatBytes,
  quantizedWeightBytes,
  baseWeightCopies,
  shapeOfVlm,
  type ModelShape,
} from '../../src-main/training/memory';
import { BLIP2_OPT_2_7B, tinyBlip2Parts } from '../../src-main/models/demo/tiny-blip2';
import { blip2ToHf } from '../../src-main/models/families/blip2/config';
import { parseHfConfig, type VlmModelConfig } from '../../src-main/models/config';

const GiB = 1024 ** 3;

test('parameter counts match published model sizes', () => {
  // Qwen2-0.5B: 494,032,768 parameters (tied embeddings, q/k/v biases)
  assert.equal(
    decoderParams({
      vocabSize: 151936,
      hiddenSize: 896,
      intermediateSize: 4864,
      numLayers: 24,
      numHeads: 14,
      numKvHeads: 2,
      headDim: 64,
      tieEmbeddings: true,
      qkvBias: true,
    }),
    494_032_768,
  );
  // TinyLlama-1.1B: 1,100,048,384
  assert.equal(
    decoderParams({
      vocabSize: 32000,
      hiddenSize: 2048,
      intermediateSize: 5632,
      numLayers: 22,
      numHeads: 32,
      numKvHeads: 4,
      headDim: 64,
      tieEmbeddings: false,
    }),
    1_100_048_384,
  );
  // CLIP ViT-L/14 vision tower (224 px, 257 positions): 303,179,776
  assert.equal(
    visionParams({
      hiddenSize: 1024,
      intermediateSize: 4096,
      numLayers: 24,
      numHeads: 16,
      tokensPerImage: 257,
      patchSize: 14,
      numChannels: 3,
    }),
    303_179_776,
  );
  // LLaMA-7B with LoRA r=8 on q_proj, v_proj: PEFT prints "trainable params: 4,194,304"
  assert.equal(
    loraParams(
      {
        vocabSize: 32000,
        hiddenSize: 4096,
        intermediateSize: 11008,
        numLayers: 32,
        numHeads: 32,
        numKvHeads: 32,
        headDim: 128,
        tieEmbeddings: false,
      },
      8,
      ['q_proj', 'v_proj'],
    ),
    4_194_304,
  );
});

const small: ModelShape = {
  vision: {
    hiddenSize: 768,
    intermediateSize: 3072,
    numLayers: 12,
    numHeads: 12,
    tokensPerImage: 197,
    patchSize: 16,
    numChannels: 3,
  },
  projector: { inFeatures: 768, outFeatures: 896, type: 'mlp' },
  decoder: {
    vocabSize: 151936,
    hiddenSize: 896,
    intermediateSize: 4864,
    numLayers: 24,
    numHeads: 14,
    numKvHeads: 2,
    headDim: 64,
    tieEmbeddings: true,
    qkvBias: true,
  },
  imageTokens: 196,
  weightBytes: 4,
};
const setup = {
  method: 'lora' as const,
  rank: 8,
  targetModules: ['q_proj', 'v_proj'] as const,
  batchSize: 8,
  maxSeqLen: 512,
};

test('breakdown follows the documented formula', () => {
  const e = estimateTrainingMemory(
    small,
    { ...setup, targetModules: [...setup.targetModules] },
    { availableBytes: 64 * GiB, totalBytes: 64 * GiB },
  );
  assert.equal(e.fits, true);
  assert.deepEqual(e.suggestions, []);
  const b = e.breakdown;
  assert.equal(b.weights, (e.params.vision + e.params.projector + e.params.decoder) * 4);
  assert.equal(e.params.trainable, e.params.lora);
  assert.equal(b.optimizer, 2 * b.gradients);
  // logits of every position (and the one padding row) unless the data says how many tokens a sample learns
  assert.equal(b.logits, (8 * 512 + 1) * 151936 * 4 * 3);
  // activations: B·T·L·(6h + 3q + 3kv + 4I + 2·H·T + Σ r) · 4
  const a = 6 * 896 + 3 * 896 + 3 * 128 + 4 * 4864 + 2 * 14 * 512 + 2 * 8;
  assert.equal(b.activations, 8 * 512 * 24 * a * 4);
  const opts = { availableBytes: 64 * GiB, totalBytes: 64 * GiB };
  const few = estimateTrainingMemory(
    small,
    { ...setup, targetModules: [...setup.targetModules], labelTokens: 20 },
    opts,
  );
  assert.equal(few.breakdown.logits, (8 * 20 + 1) * 151936 * 4 * 3);
  // checkpointed layers: each layer's input [B, T, h] or the measured 30% of its activations, whichever is more, and
  // one layer's activations more in the workspace
  const ck = estimateTrainingMemory(
    small,
    { ...setup, targetModules: [...setup.targetModules], gradientCheckpointing: true },
    opts,
  );
  assert.equal(ck.breakdown.activations, Math.max(896, 0.3 * a) * 8 * 512 * 4 * 24);
  assert.ok(ck.breakdown.activations < b.activations / 3);
  assert.equal(ck.breakdown.workspace - b.workspace, 8 * 512 * a * 4);
  const sum =
    b.weights + b.adapter + b.gradients + b.optimizer + b.activations + b.logits + b.vision + b.workspace + b.runtime;
  assert.ok(Math.abs(sum - b.total) < 1);
  // training the projector adds its gradients and optimizer state
  const proj = estimateTrainingMemory(
    small,
    { ...setup, targetModules: [...setup.targetModules], method: 'lora+projector' },
    { availableBytes: 64 * GiB },
  );
  assert.equal(proj.params.trainable, e.params.lora + e.params.projector);
  // activations grow with batch and sequence length
  const bigger = estimateTrainingMemory(
    small,
    { ...setup, targetModules: [...setup.targetModules], batchSize: 16 },
    { availableBytes: 64 * GiB },
  );
  assert.ok(bigger.breakdown.activations > 1.99 * b.activations);
});

test('refusal with concrete suggestions when it does not fit', () => {
  const s = { ...setup, targetModules: [...setup.targetModules] };
  const need = estimateTrainingMemory(small, s, { availableBytes: 64 * GiB }).breakdown.total;
  const e = estimateTrainingMemory(small, s, { availableBytes: need * 0.6, totalBytes: 64 * GiB });
  assert.equal(e.fits, false);
  const text = e.suggestions.join(' | ');
  assert.match(text, /batch size \d with gradient accumulation ×\d+ \(keeps the effective batch of 8\)/);
  assert.match(text, /limit sequences to \d+ tokens/);
  assert.match(text, /fewer image tokens per image \(now 196/);
  // the suggested batch size really fits by the same estimate
  const b = Number(/batch size (\d+)/.exec(text)![1]);
  assert.ok(estimateTrainingMemory(small, { ...s, batchSize: b }, { availableBytes: need * 0.6 }).fits);
  const msg = memoryRefusal(e)!;
  assert.match(msg, /^not enough memory: training needs about .* available \(largest: .*\)\. Try: /);
  assert.equal(memoryRefusal(estimateTrainingMemory(small, s, { availableBytes: 64 * GiB })), null);
  // weights alone too big
  const tiny = estimateTrainingMemory(small, s, { availableBytes: 1 * GiB, totalBytes: 1 * GiB });
  assert.match(tiny.suggestions.join(' '), /weights alone take 2\.\d GiB: choose a smaller model/);
  assert.equal(formatBytes(1536), '1.5 KiB');
});

test('a quantized base prices frozen matrices by their blocks and suggests int4 when the float base does not fit', () => {
  const s = { ...setup, targetModules: [...setup.targetModules] };
  const f = estimateTrainingMemory(small, s, { availableBytes: 64 * GiB });
  const q8 = estimateTrainingMemory(small, { ...s, quantizeBase: 'int8' }, { availableBytes: 64 * GiB });
  const q4 = estimateTrainingMemory(small, { ...s, quantizeBase: 'int4' }, { availableBytes: 64 * GiB });
  // Qwen2-0.5B decoder (tied 151936 x 896 table: int8 rows + int4 head blocks) + CLIP-B tower + projector
  const h = 896;
  const lin = 24 * (h * 896 + 2 * h * 128 + 896 * h + 3 * h * 4864);
  const table = 151936 * (h + 4) + 151936 * h * (0.5 + 4 / 32);
  const rest = 24 * (2 * h + 896 + 2 * 128) + h; // norms and q/k/v biases stay float32
  const v = small.vision!;
  const vlin = 12 * (4 * 768 * 768 + 2 * 768 * 3072);
  const vrest = 3 * 16 * 16 * 768 + 197 * 768 + 768 + 12 * (4 * 768 + 3072 + 768 + 4 * 768) + 4 * 768;
  const proj = (768 * 896 + 896 * 896) * (0.5 + 4 / 32) + 2 * 896 * 4;
  assert.equal(v.hiddenSize, 768);
  assert.ok(
    Math.abs(q4.breakdown.weights - ((lin + vlin) * (0.5 + 4 / 32) + table + (rest + vrest) * 4 + proj)) < 1,
    `${q4.breakdown.weights}`,
  );
  assert.ok(q4.breakdown.weights < 0.25 * f.breakdown.weights && q8.breakdown.weights < 0.4 * f.breakdown.weights);
  assert.ok(q4.breakdown.weights < q8.breakdown.weights);
  // the unpacking buffer of the backward: 2 x 6 bytes x the largest frozen matrix (the head) capped at 4M elements
  assert.equal(q4.breakdown.workspace - f.breakdown.workspace, 2 * 6 * (1 << 22));
  // a trained projector keeps its float32 weights
  const qp = estimateTrainingMemory(
    small,
    { ...s, method: 'lora+projector', quantizeBase: 'int4' },
    { availableBytes: 64 * GiB },
  );
  assert.ok(Math.abs(qp.breakdown.weights - q4.breakdown.weights - (projectorFloatBytes() - proj)) < 1);
  // a machine where float32 does not fit but int4 does
  const tight = estimateTrainingMemory(small, s, {
    availableBytes: (q4.breakdown.total + f.breakdown.total) / 2,
    totalBytes: 64 * GiB,
  });
  assert.equal(tight.fits, false);
  assert.match(tight.suggestions.join(' | '), /hold the frozen base as int4 \(quantizeBase int4, --quantize-base int4/);
  assert.doesNotMatch(
    estimateTrainingMemory(
      small,
      { ...s, quantizeBase: 'int4' },
      { availableBytes: q4.breakdown.total * 0.9 },
    ).suggestions.join(' '),
    /hold the frozen base as int4/,
  );
});

function projectorFloatBytes(): number {
  return (768 * 896 + 896 + 896 * 896 + 896) * 4;
}

test('a quantized OPT decoder is priced by its own matrices; a BLIP-2-OPT-2.7B-shaped LoRA run fits 12 GiB with int4', () => {
  // Salesforce/blip2-opt-2.7b: ViT-g (39 x 1408, 224 px / 14), Q-Former 12 x 768 with 32 queries, OPT-2.7B
  // (32 x 2560, ffn 10240, vocabulary 50272, tied head), the shapes bench:blip2-large trains
  const parts = tinyBlip2Parts(BLIP2_OPT_2_7B, 50272, 50265, 2);
  const cfg = parseHfConfig(
    { architectures: ['Blip2ForConditionalGeneration'], ...blip2ToHf(parts), torch_dtype: 'float32' },
    'blip2-opt-2.7b',
  ) as VlmModelConfig;
  const shape = shapeOfVlm(cfg, 4);
  const d = shape.decoder;
  const [h, V] = [2560, 50272];
  assert.equal(d.linears!.length, 32 * 6, 'q, k, v, out_proj, fc1, fc2 per layer');
  // the decoder's share: the int8 token table, the head's blocks, six matrices a layer as blocks, the rest float32
  const linear = 32 * (4 * h * h + 2 * h * 10240);
  const decoder = V * (h + 4) + h * V * 0.625 + linear * 0.625 + (d.params! - linear - V * h) * 4;
  const noDecoder: ModelShape = { ...shape, decoder: { ...d, vocabSize: 0, params: 0, linears: [] } };
  assert.equal(quantizedWeightBytes(shape, 'int4', false) - quantizedWeightBytes(noDecoder, 'int4', false), decoder);
  const setup = {
    method: 'lora' as const,
    rank: 16,
    targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const,
    batchSize: 4,
    maxSeqLen: 64,
    imagesPerSample: 1,
  };
  // as the run's preflight prices the base (vlm-config.ts): float32 twice, int4 blocks 1.4 times
  const at = (quantizeBase: 'none' | 'int4') =>
    estimateTrainingMemory(
      shape,
      { ...setup, quantizeBase, weightCopies: baseWeightCopies(quantizeBase) },
      { availableBytes: 12 * GiB, totalBytes: 16 * GiB },
    );
  assert.equal(at('int4').breakdown.weights, quantizedWeightBytes(shape, 'int4', false) * 1.4);
  // OPT's MLP (fc1, fc2, no gate) keeps fc1's output and its activation: 2 intermediate-width tensors, not 4
  const a = 6 * h + 3 * h + 3 * h + 2 * 10240 + 2 * 32 * 64 + 4 * 16;
  assert.equal(at('int4').breakdown.activations, 4 * 64 * 32 * a * 4);
  assert.equal(at('none').fits, false, formatBytes(at('none').breakdown.total));
  assert.equal(at('int4').fits, true, formatBytes(at('int4').breakdown.total));
  // bench:blip2-large measured 4.2 GiB (batch 1) and 4.8 GiB (batch 4, 50 tokens) peak RSS
  assert.ok(at('int4').breakdown.total < 7 * GiB, formatBytes(at('int4').breakdown.total));
});
