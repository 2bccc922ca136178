// Video through any image family: a video is N uniformly sampled frames (media/video.ts), each frame goes through
// the family's vision tower + connector as one image, its feature grid is average-pooled 2×2 (the token cut of
// LLaVA-NeXT-Video / LLaVA-OneVision: a 24×24 CLIP grid becomes 12×12), and the prompt gives each frame a marker:
//
//   <video>  →  "Frame 1/N: <image>\nFrame 2/N: <image>\n…Frame N/N: <image>"
//
// before the chat template runs; every <image> then expands to the pooled frame's tokens (videoRenderSetup), and the
// shared merge (llava.ts llavaEmbeddings) fills the k-th run of image tokens with the k-th frame's pooled rows, so
// frames reach the decoder in time order behind their markers. Nothing here branches on the family: the grid comes
// from family.featureGrid (no grid, e.g. learned queries: the rows pass unpooled), the frame from the family's
// processor (a tiled family's last frame is the whole image, which is what a video frame is given as).
//
// Pooling is a constant [P, T] averaging matrix times the features [N, T, D] (windows cut at the grid's edge
// average what they hold, like avg_pool2d with ceil_mode and no padding counted), so odd grids (SigLIP 27×27)
// pool too and the gradient reaches the connector through an ordinary MatMul.
import type { Graph, Value } from '../engine/graph/builder';
import type { VlmModelConfig } from './config';
import type { FamilyImageProcessor, ImageGrid } from './families/types';
import type { ImageInput } from './image-processor';
import type { GraphWeights } from './layers';
import { imageFeatures } from './llava';
import { vlmFamilyOf } from './registry';
import type { RenderSetup } from '../datasets/render';

/** The placeholder of a video in a user message. */
export const VIDEO_TOKEN = '<video>';
/** Frames a video is sampled to unless the user says otherwise. */
export const DEFAULT_VIDEO_FRAMES = 8;
/** Per-frame pooling window (2×2). */
export const VIDEO_POOL = 2;

/** The frame feature grid after pooling, or null when the family's rows are no grid. */
export function pooledGrid(cfg: VlmModelConfig, pool = VIDEO_POOL): ImageGrid | null {
  const grid = vlmFamilyOf(cfg).featureGrid?.(cfg) ?? null;
  if (!grid) return null;
  return { rows: Math.ceil(grid.rows / pool), cols: Math.ceil(grid.cols / pool) };
}

/** Image tokens one video frame takes in the decoder sequence. */
export function videoTokensPerFrame(cfg: VlmModelConfig, pool = VIDEO_POOL): number {
  const g = pooledGrid(cfg, pool);
  return g ? g.rows * g.cols : vlmFamilyOf(cfg).shape(cfg).tokensPerFrame;
}

/** The [P, T] averaging matrix of `pool`×`pool` windows over a rows×cols grid (row-major both sides). */
export function poolMatrix(grid: ImageGrid, pool = VIDEO_POOL): Float32Array {
  const pr = Math.ceil(grid.rows / pool);
  const pc = Math.ceil(grid.cols / pool);
  const T = grid.rows * grid.cols;
  const m = new Float32Array(pr * pc * T);
  for (let i = 0; i < pr; i++)
    for (let j = 0; j < pc; j++) {
      const r1 = Math.min(grid.rows, (i + 1) * pool);
      const c1 = Math.min(grid.cols, (j + 1) * pool);
      const n = (r1 - i * pool) * (c1 - j * pool);
      for (let r = i * pool; r < r1; r++)
        for (let c = j * pool; c < c1; c++) m[(i * pc + j) * T + r * grid.cols + c] = 1 / n;
    }
  return m;
}

/** Pooled per-frame features [N, P, D] of frames pixel_values [N, 3, S, S]. */
export function videoFeatures(w: GraphWeights, cfg: VlmModelConfig, pixelValues: Value, pool = VIDEO_POOL): Value {
  return poolFrameFeatures(w.g, cfg, imageFeatures(w, cfg, pixelValues), pool);
}

/** Per-frame pooling of projected features [N, T, D] (computed in the graph or cached) to [N, P, D]. */
export function poolFrameFeatures(g: Graph, cfg: VlmModelConfig, feats: Value, pool = VIDEO_POOL): Value {
  const grid = vlmFamilyOf(cfg).featureGrid?.(cfg) ?? null;
  if (!grid || pool === 1) return feats;
  return g.scope('video_pool', () => {
    const T = grid.rows * grid.cols;
    const P = Math.ceil(grid.rows / pool) * Math.ceil(grid.cols / pool);
    const dtype = feats.dtype;
    return g.op1('MatMul', [g.constant(poolMatrix(grid, pool), dtype, [P, T]), feats]);
  });
}

/** The user text with each <video> replaced by N frame markers, each followed by one <image>. */
export function expandVideoPlaceholder(text: string, frames: number, imageToken = '<image>'): string {
  if (!Number.isInteger(frames) || frames < 1) throw new Error(`a video needs at least one frame (got ${frames})`);
  const markers = Array.from({ length: frames }, (_, i) => `Frame ${i + 1}/${frames}: ${imageToken}`).join('\n');
  return text.split(VIDEO_TOKEN).join(markers);
}

/** The render setup for a conversation about a video: each <image> (one frame) becomes the pooled frame's tokens. */
export function videoRenderSetup(setup: RenderSetup, cfg: VlmModelConfig, pool = VIDEO_POOL): RenderSetup {
  const count = videoTokensPerFrame(cfg, pool);
  const tokenId = cfg.imageTokenIndex;
  return { ...setup, image: { tokenId, count, ids: new Array<number>(count).fill(tokenId) }, forImage: undefined };
}

/** pixel_values [N, 3, S, S] of a video's frames through the family's processor (a tiled family: its whole-image frame). */
export async function videoPixelValues(
  images: FamilyImageProcessor,
  frames: readonly ImageInput[],
): Promise<{ data: Float32Array; frames: number; height: number; width: number }> {
  if (frames.length === 0) throw new Error('a video needs at least one frame');
  const parts: Float32Array[] = [];
  let height = 0;
  let width = 0;
  for (const f of frames) {
    const p = await images.process(f);
    const per = 3 * p.height * p.width;
    parts.push(p.data.subarray((p.frames - 1) * per, p.frames * per));
    height = p.height;
    width = p.width;
  }
  const data = new Float32Array(parts.length * 3 * height * width);
  parts.forEach((p, i) => data.set(p, i * p.length));
  return { data, frames: frames.length, height, width };
}
