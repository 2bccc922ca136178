// Idefics3's resizes are PIL's Image.resize, as for every other family: models/pil-resample.ts (pinned bit-exact
// against Pillow for every filter). NEAREST (0) is refused here because the Idefics3 processor never asks for it.
import type { RgbImage } from '../../image-processor';
import { pilResize, PIL_NEAREST } from '../../pil-resample';

/** Image.resize((width, height), resample) of an RGB image, exactly as Pillow computes it. */
export function pilResizeRgb(img: RgbImage, width: number, height: number, resample: number): RgbImage {
  if (img.width === width && img.height === height) return { data: img.data.slice(), width, height };
  if (resample === PIL_NEAREST || ![1, 2, 3, 4, 5].includes(resample))
    throw new Error(
      `PIL resample ${resample} is not supported here (1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming)`,
    );
  const out = pilResize({ ...img, channels: 3 }, width, height, resample);
  return { data: out.data, width, height };
}
