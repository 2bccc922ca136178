// BLIP's graphs as transformers' modeling_blip.py / modeling_blip_text.py compute them. Published tensor names are the
// canonical ones (BlipForQuestionAnswering: vision_model.*, text_encoder.*, text_decoder.bert.*,
// text_decoder.cls.predictions.*; BlipForConditionalGeneration: vision_model.*, text_decoder.*).
//   image_embeds   = BlipVisionModel last_hidden_state (post_layernorm), [N, 1 + patches, D_v]
//   question       = text_encoder(input_ids, attention_mask), bidirectional self-attention, cross-attention to the
//                    image in every layer (BlipTextConfig.is_decoder is true, so every layer has `crossattention`)
//   answer logits  = text_decoder: causal self-attention, cross-attention to the question (VQA) or the image
//                    (captioning), then cls.predictions (dense -> act -> LayerNorm -> decoder + bias)
//   loss           = CrossEntropyLoss(label_smoothing) of logits[:, :-1] vs labels[:, 1:], mean over the batch's
//                    non-ignored targets (BlipTextLMHeadModel with reduction "mean")
// The image attention mask is all ones in transformers (no image padding), so cross-attention to the image has none.

import type { Value } from '../../../engine/graph/builder';
import { labelSmoothedCrossEntropy, type LabelSmoothedResult } from '../../../engine/ops/loss';
import type { GraphWeights } from '../../layers';
import { bertEmbeddings, bertLayer, bertLayerTensors, bertLmHead } from '../../text/bert';
import { blipVisionModel, blipVisionTensors } from '../../vision/blip-vit';
import type { BlipConfig } from './config';

export const VISION_PREFIX = 'vision_model.';
export const ENCODER_PREFIX = 'text_encoder.';

/** The decoder's BlipTextModel prefix and its MLM head prefix. */
export function decoderPrefixes(c: BlipConfig): { bert: string; cls: string } {
  return { bert: 'text_decoder.bert.', cls: 'text_decoder.cls.predictions.' };
}

/** Every tensor of the published layout (canonical = published names) with its shape. */
export function blipTensors(c: BlipConfig): { name: string; shape: number[] }[] {
  const t = c.text;
  const out = blipVisionTensors(c.vision, VISION_PREFIX);
  const textModel = (prefix: string) => {
    const D = t.hiddenSize;
    out.push(
      { name: `${prefix}embeddings.word_embeddings.weight`, shape: [t.vocabSize, D] },
      { name: `${prefix}embeddings.position_embeddings.weight`, shape: [t.maxPositionEmbeddings, D] },
      { name: `${prefix}embeddings.LayerNorm.weight`, shape: [D] },
      { name: `${prefix}embeddings.LayerNorm.bias`, shape: [D] },
    );
    for (let l = 0; l < t.numHiddenLayers; l++)
      out.push(...bertLayerTensors(t, `${prefix}encoder.layer.${l}.`, { crossAttention: true }));
  };
  if (c.architecture === 'BlipForQuestionAnswering') textModel(ENCODER_PREFIX);
  const d = decoderPrefixes(c);
  textModel(d.bert);
  out.push(
    { name: `${d.cls}bias`, shape: [t.vocabSize] },
    { name: `${d.cls}transform.dense.weight`, shape: [t.hiddenSize, t.hiddenSize] },
    { name: `${d.cls}transform.dense.bias`, shape: [t.hiddenSize] },
    { name: `${d.cls}transform.LayerNorm.weight`, shape: [t.hiddenSize] },
    { name: `${d.cls}transform.LayerNorm.bias`, shape: [t.hiddenSize] },
    { name: `${d.cls}decoder.weight`, shape: [t.vocabSize, t.hiddenSize] },
  );
  return out;
}

/** Stored names that are not weights (buffers) or duplicates of another tensor. */
export function ignoredBlipTensor(name: string): boolean {
  return name.endsWith('.position_ids') || name === 'text_decoder.cls.predictions.decoder.bias';
}

/** The image embeddings the text side attends to: [N, 1 + patches, D_v]. */
export function blipImageEmbeds(w: GraphWeights, c: BlipConfig, pixelValues: Value): Value {
  return blipVisionModel(w, c.vision, VISION_PREFIX, pixelValues);
}

export interface BlipTextModelOptions {
  /** 0/1 mask [B, S] over the tokens (null: all kept) */
  mask?: Value | null;
  causal: boolean;
  encoderHidden: Value;
  /** 0/1 mask [B, L] over the encoder states (null: all kept) */
  encoderMask?: Value | null;
}

/** BlipTextModel(add_pooling_layer=False) last_hidden_state [B, S, D] under `prefix`. */
export function blipTextModel(
  w: GraphWeights,
  c: BlipConfig,
  prefix: string,
  inputIds: Value,
  o: BlipTextModelOptions,
): Value {
  const t = c.text;
  let x = w.g.scope(`${prefix}embeddings`, () => bertEmbeddings(w, t, `${prefix}embeddings.`, inputIds));
  for (let l = 0; l < t.numHiddenLayers; l++)
    x = w.g.scope(`${prefix}layer${l}`, () =>
      bertLayer(w, t, `${prefix}encoder.layer.${l}.`, x, {
        mask: o.mask ?? null,
        causal: o.causal,
        encoderHidden: o.encoderHidden,
        encoderMask: o.encoderMask ?? null,
      }),
    );
  return x;
}

/** VQA: the question encoded with the image, [B, S, D]. */
export function blipQuestionEmbeds(
  w: GraphWeights,
  c: BlipConfig,
  inputIds: Value,
  attentionMask: Value | null,
  imageEmbeds: Value,
): Value {
  if (c.architecture !== 'BlipForQuestionAnswering') throw new Error(`BLIP: ${c.architecture} has no question encoder`);
  return blipTextModel(w, c, ENCODER_PREFIX, inputIds, {
    mask: attentionMask,
    causal: false,
    encoderHidden: imageEmbeds,
  });
}

/** The decoder's LM-head weight: cls.predictions.decoder.weight, or the word embeddings when the folder ties them. */
export function decoderHeadWeight(w: GraphWeights, c: BlipConfig): string {
  const d = decoderPrefixes(c);
  const own = `${d.cls}decoder.weight`;
  return w.has(own) ? own : `${d.bert}embeddings.word_embeddings.weight`;
}

/** Decoder logits [B, T, V] of decoder ids [B, T] attending to `encoderHidden` (question or image). */
export function blipDecoderLogits(
  w: GraphWeights,
  c: BlipConfig,
  decoderIds: Value,
  decoderMask: Value | null,
  encoderHidden: Value,
  encoderMask: Value | null,
): Value {
  const g = w.g;
  const d = decoderPrefixes(c);
  const h = blipTextModel(w, c, d.bert, decoderIds, { mask: decoderMask, causal: true, encoderHidden, encoderMask });
  const D = c.text.hiddenSize;
  const V = c.text.vocabSize;
  const flat = g.op1('Reshape', [h, g.ints([-1, D])]);
  const logits = bertLmHead(w, c.text, d.cls, flat, V, decoderHeadWeight(w, c));
  const shape = g.op1('Concat', [g.op1('Shape', [decoderIds]), g.ints([V])], { axis: 0 });
  return g.op1(
    'Reshape',
    [logits, shape],
    {},
    { outTypes: [{ dtype: logits.dtype, shape: [decoderIds.shape?.[0] ?? 'B', decoderIds.shape?.[1] ?? 'T', V] }] },
  );
}

/** Label-smoothed next-token loss of logits [B, T, V] against labels [B, T] (-100 ignored): logits[:, :-1] vs labels[:, 1:]. */
export function blipLmLoss(w: GraphWeights, c: BlipConfig, logits: Value, labels: Value): LabelSmoothedResult {
  const g = w.g;
  const V = c.text.vocabSize;
  const big = Number.MAX_SAFE_INTEGER;
  const shifted = g.op1(
    'Slice',
    [logits, g.ints([0]), g.ints([-1]), g.ints([1])],
    {},
    { outTypes: [{ dtype: logits.dtype, shape: [logits.shape?.[0] ?? 'B', '?', V] }] },
  );
  const next = g.op1(
    'Slice',
    [labels, g.ints([1]), g.ints([big]), g.ints([1])],
    {},
    { outTypes: [{ dtype: labels.dtype, shape: [labels.shape?.[0] ?? 'B', '?'] }] },
  );
  const flatLogits = g.op1(
    'Reshape',
    [shifted, g.ints([-1, V])],
    {},
    { outTypes: [{ dtype: logits.dtype, shape: ['?', V] }] },
  );
  const flatLabels = g.op1('Reshape', [next, g.ints([-1])], {}, { outTypes: [{ dtype: labels.dtype, shape: ['?'] }] });
  return labelSmoothedCrossEntropy(flatLogits, flatLabels, { smoothing: c.text.labelSmoothing });
}
