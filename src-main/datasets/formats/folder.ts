// A plain folder of images, audio clips or videos. A caption sits in a sidecar `<name>.txt` (or none: the item is to be labeled).
// Sub-folder names become tags (`cats/1.jpg` → tag `cats`); a top folder named train/val/test sets the split.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { MAX_TEXT_CHARS } from '../schemas';
import { splitFromDirName, walkFiles } from '../read';
import { isItemFileName, type NormalizedItem, type Split } from '../types';
import type { ParseContext } from './common';

export function parseFolder(ctx: ParseContext, files = walkFiles(ctx.root)) {
  const items: NormalizedItem[] = [];
  const images = new Set(files.filter(isItemFileName).map(stem));
  const present = new Set(files); // the walk skips symbolic links, so a sidecar cannot point outside
  for (const rel of files) {
    if (!isItemFileName(rel)) {
      if (rel.toLowerCase().endsWith('.txt') && !images.has(stem(rel)))
        ctx.warn(rel, 'caption file has no image, audio or video file beside it; ignored');
      continue;
    }
    const abs = join(ctx.root, rel);
    const item: NormalizedItem = { sourcePath: rel, image: { path: abs, original: rel }, annotations: [] };
    const dirs = rel.split('/').slice(0, -1);
    let split: Split | undefined;
    if (dirs.length > 0 && (split = splitFromDirName(dirs[0]))) {
      item.split = split;
      dirs.shift();
    }
    if (dirs.length > 0) item.tags = [dirs.join('/')];
    const sidecar = `${stem(rel)}.txt`;
    const sideAbs = join(ctx.root, sidecar);
    if (present.has(sidecar)) {
      const size = statSync(sideAbs).size;
      if (size > MAX_TEXT_CHARS * 4) {
        ctx.error(rel, `caption file ${sidecar} is too large (${size} bytes)`);
        continue;
      }
      let text = readFileSync(sideAbs, 'utf8');
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      text = text.replace(/\r\n/g, '\n').trim();
      if (text.length > MAX_TEXT_CHARS) {
        ctx.error(rel, `caption in ${sidecar} is too long (${text.length} characters; limit ${MAX_TEXT_CHARS})`);
        continue;
      }
      if (text.includes('\uFFFD'))
        ctx.warn(rel, `caption file ${sidecar} is not valid UTF-8; undecodable bytes were replaced`);
      if (text === '') ctx.warn(rel, `caption file ${sidecar} is empty; imported without a caption`);
      else item.annotations.push({ kind: 'caption', data: { text } });
    }
    items.push(item);
  }
  // icon-VQA's image tree (<pid>/image.png) imported without the train.jsonl that labels it
  const imageFiles = files.filter(isItemFileName);
  if (
    imageFiles.length > 0 &&
    items.every((it) => it.annotations.length === 0) &&
    imageFiles.every((f) => /(^|\/)[^/]+\/image\.[^./]+$/i.test(f))
  ) {
    ctx.warn(
      '.',
      `every image is an image.* file in a folder of its own, as the icon-VQA layout stores them by pid (train_fill_in_blank/<pid>/image.png); their labels are in the train.jsonl beside that folder: import the folder that holds train.jsonl (or drop train.jsonl together with this folder) to get the questions and answers. Imported without labels.`,
    );
  }
  return { format: 'folder' as const, items, problems: ctx.problems };
}

function stem(rel: string): string {
  const slash = rel.lastIndexOf('/');
  const dot = rel.lastIndexOf('.');
  return dot > slash ? rel.slice(0, dot) : rel;
}
