// Content-addressed store of dataset audio and video, beside the image store:
//   <dataDir>/media/<hash[0:2]>/<hash>.<ext>    (sha256 of the file's bytes)
//   <dataDir>/thumbs/<hash[0:2]>/<hash>.webp    (video: its middle frame, for the grid)
// A file is validated before it is stored: audio is decoded whole (headless WAV / FLAC, media/audio.ts), a video
// is probed and its poster frame decoded (ffmpeg, media/video.ts). The import runs in its worker thread, so this
// work is off the backend's event loop. Corrupt or unsupported files throw ImageError naming the reason, which the
// import reports against the record and field like a bad image.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { AUDIO_EXTENSIONS, decodeAudioChannels, sniffAudio, CLIP_WINDOW_SECONDS } from '../media/audio';
import { MediaError } from '../media/errors';
import { AUDIO_LIMITS } from '../media/limits';
import { extractVideoFrames, isVideoName, VIDEO_LIMITS } from '../media/video';
import { ImageError, thumbPath, THUMB_SIZE, writeAtomic, type StoredImage } from './images';
import { readRegularFile } from './read';
import type { ImageSource } from './types';

export type MediaKind = 'audio' | 'video';

export interface MediaMeta {
  seconds: number;
  sampleRate?: number;
  channels?: number;
  encoding?: string;
  width?: number;
  height?: number;
  frames?: number;
  fps?: number;
  codec?: string;
}

export function mediaPath(dataDir: string, hash: string, ext: string): string {
  return join(dataDir, 'media', hash.slice(0, 2), `${hash}.${ext}`);
}

export function isAudioFileName(name: string): boolean {
  const lower = name.toLowerCase();
  return AUDIO_EXTENSIONS.some((e) => lower.endsWith(e));
}

/** Audio, video, or neither (an image) — from the name, or from the bytes when the name says nothing. */
export function mediaKindOf(src: ImageSource, bytes?: Uint8Array): MediaKind | null {
  // an embedded file's name is its record plus the path in parentheses: "data.parquet row 3.audio (clip.wav)"
  const name = src.original.toLowerCase().replace(/\)$/, '');
  if (isAudioFileName(name)) return 'audio';
  if (isVideoName(name)) return 'video';
  if (bytes) {
    const k = sniffAudio(bytes);
    if (k === 'wav' || k === 'flac' || k === 'mp3' || k === 'ogg') return 'audio';
    // an MP4 / WebM container without a telling name: a video (an audio-only one is refused with that reason)
    if (k === 'mp4' || k === 'webm') return 'video';
  }
  return null;
}

const AUDIO_EXT: Record<string, string> = { wav: 'wav', flac: 'flac', mp3: 'mp3', ogg: 'ogg' };

function readSource(src: ImageSource, max: number, what: string): Uint8Array {
  if ('bytes' in src) {
    if (src.bytes.length > max) throw new ImageError(`${what} is too large (${src.bytes.length} bytes; limit ${max})`);
    return src.bytes;
  }
  if (!existsSync(src.path)) throw new ImageError(`${what} file not found: ${src.original}`);
  try {
    return readRegularFile(src.path, src.original, max, what);
  } catch (err) {
    throw new ImageError((err as Error).message.replace(`${src.original}: `, ''));
  }
}

/** A stored media file: StoredImage's fields (hash, ext, bytes; width/height for video) plus its kind and metadata. */
export interface StoredMedia extends StoredImage {
  media: { kind: MediaKind; meta: MediaMeta };
}

/** Hash, validate and store one audio or video file. `created` lists the files this call wrote. */
export async function storeMedia(
  dataDir: string,
  src: ImageSource,
  kind: MediaKind,
): Promise<{ image: StoredMedia; created: string[]; isNew: boolean; warning?: string }> {
  const bytes = readSource(src, kind === 'audio' ? AUDIO_LIMITS.maxBytes : VIDEO_LIMITS.maxBytes, kind);
  if (bytes.length === 0) throw new ImageError(`${kind} file is empty (0 bytes)`);
  const hash = createHash('sha256').update(bytes).digest('hex');
  const created: string[] = [];
  let ext: string;
  let meta: MediaMeta;
  let width = 0;
  let height = 0;
  let poster: Buffer | null = null;
  try {
    if (kind === 'audio') {
      const d = await decodeAudioChannels(bytes, src.original);
      ext = AUDIO_EXT[d.format];
      meta = {
        seconds: d.channels[0].length / d.sampleRate,
        sampleRate: d.sampleRate,
        channels: d.channels.length,
        encoding: d.encoding,
      };
    } else {
      const m = /\.([a-z0-9]+)$/i.exec(src.original);
      ext = (m?.[1] ?? 'mp4').toLowerCase();
      // ffmpeg reads a path: bytes from an archive or a Parquet cell go through a private temporary file
      let path = 'path' in src ? src.path : '';
      let tmp: string | null = null;
      if (!path) {
        tmp = mkdtempSync(join(tmpdir(), 'lenslab-video-'));
        path = join(tmp, `clip.${ext}`);
        writeFileSync(path, bytes);
      }
      try {
        const v = await extractVideoFrames(path, 1, { file: src.original });
        meta = { seconds: v.seconds, width: v.width, height: v.height, frames: v.frames, fps: v.fps, codec: v.codec };
        width = v.width;
        height = v.height;
        poster = v.png[0];
      } finally {
        if (tmp) rmSync(tmp, { recursive: true, force: true });
      }
    }
  } catch (err) {
    if (err instanceof MediaError) throw new ImageError(err.reason);
    throw err;
  }
  if (poster) {
    const thumb = thumbPath(dataDir, hash);
    if (!existsSync(thumb)) {
      const data = await sharp(poster)
        .resize(THUMB_SIZE, THUMB_SIZE, { fit: 'inside', withoutEnlargement: true })
        .webp({ quality: 75 })
        .toBuffer();
      writeAtomic(thumb, data);
      created.push(thumb);
    }
  }
  const file = mediaPath(dataDir, hash, ext);
  const isNew = !existsSync(file);
  if (isNew) {
    try {
      writeAtomic(file, bytes);
    } catch (err) {
      for (const f of created) rmSync(f, { force: true });
      throw err;
    }
    created.push(file);
  }
  const warning = meta.seconds > CLIP_WINDOW_SECONDS ? longClipWarning(kind, meta.seconds) : undefined;
  return { image: { hash, ext, width, height, bytes: bytes.length, media: { kind, meta } }, created, isNew, warning };
}

/** What the import and the linter say about a clip longer than the audio encoder's window. */
export function longClipWarning(kind: MediaKind, seconds: number): string {
  return kind === 'audio'
    ? `audio is ${seconds.toFixed(1)} s, longer than the ${CLIP_WINDOW_SECONDS} s encoder window: it will be split into ${Math.ceil(seconds / CLIP_WINDOW_SECONDS)} windows (or truncated to the first ${CLIP_WINDOW_SECONDS} s)`
    : `video is ${seconds.toFixed(1)} s, longer than ${CLIP_WINDOW_SECONDS} s: its sampled frames are far apart (consider cutting it into clips)`;
}
