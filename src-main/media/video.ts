// Video files to N uniformly sampled frames, through a system ffmpeg (there is no headless video decoder in JS that
// Lenslab could trust with untrusted files at this size). Without ffmpeg the error says so and what to install.
// ffprobe reads the stream's size, frame count and rate; the limits are checked on those before anything is
// decoded; ffmpeg then writes exactly the chosen frames (select by frame index) as PNG into a temporary folder.
// Both run as child processes with a deadline and capped output, so they never block the event loop.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { MediaError } from './errors';

export const VIDEO_EXTENSIONS = ['.mp4', '.m4v', '.mov', '.webm', '.mkv', '.avi'] as const;
export function isVideoName(name: string): boolean {
  const lower = name.toLowerCase();
  return VIDEO_EXTENSIONS.some((e) => lower.endsWith(e));
}

export interface VideoLimits {
  maxBytes: number;
  maxSeconds: number;
  /** width × height of one frame */
  maxPixels: number;
  maxFrames: number;
  timeoutMs: number;
}
export const VIDEO_LIMITS: VideoLimits = {
  maxBytes: 2 * 1024 * 1024 * 1024,
  maxSeconds: 2 * 60 * 60,
  maxPixels: 8192 * 8192,
  maxFrames: 256,
  timeoutMs: 5 * 60_000,
};

/** ffmpeg and ffprobe: LENSLAB_FFMPEG (the ffmpeg binary; ffprobe beside it) or the PATH. null when absent. */
export function findFfmpeg(env: NodeJS.ProcessEnv = process.env): { ffmpeg: string; ffprobe: string } | null {
  const explicit = env.LENSLAB_FFMPEG;
  if (explicit) {
    const probe = explicit.replace(/ffmpeg(\.exe)?$/, 'ffprobe$1');
    return existsSync(explicit) && existsSync(probe) ? { ffmpeg: explicit, ffprobe: probe } : null;
  }
  const exe = process.platform === 'win32' ? '.exe' : '';
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const f = join(dir, `ffmpeg${exe}`);
    const p = join(dir, `ffprobe${exe}`);
    if (existsSync(f) && existsSync(p)) return { ffmpeg: f, ffprobe: p };
  }
  return null;
}

export const NO_FFMPEG =
  'video files are decoded with ffmpeg, which was not found (install it, e.g. `apt-get install ffmpeg` or `brew install ffmpeg`, or set LENSLAB_FFMPEG to the ffmpeg binary)';

export interface VideoInfo {
  width: number;
  height: number;
  /** frames in the stream (from the container, or duration × rate) */
  frames: number;
  fps: number;
  seconds: number;
  codec: string;
}

export interface VideoFrames extends VideoInfo {
  /** PNG bytes of each sampled frame, in time order */
  png: Buffer[];
  /** index of each sampled frame in the stream */
  indices: number[];
  /** seconds of each sampled frame */
  times: number[];
}

function run(bin: string, args: string[], file: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      bin,
      args,
      { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024, windowsHide: true },
      (err, stdout, stderr) => {
        if (err) {
          const why = (err as { killed?: boolean }).killed
            ? `took longer than ${timeoutMs / 1000} s and was stopped`
            : lastLine(String(stderr)) || err.message;
          reject(new MediaError(file, `cannot decode video: ${why}`, { cause: err }));
        } else resolve(String(stdout));
      },
    );
  });
}

function lastLine(s: string): string {
  const lines = s
    .trim()
    .split('\n')
    .filter((l) => l.trim());
  return (lines[lines.length - 1] ?? '').replace(/^.*?: /, '').slice(0, 300);
}

function rate(s: unknown): number {
  const m = /^(\d+)(?:\/(\d+))?$/.exec(String(s ?? ''));
  if (!m) return 0;
  const d = m[2] ? Number(m[2]) : 1;
  return d > 0 ? Number(m[1]) / d : 0;
}

function checkFile(path: string, file: string, limits: VideoLimits): void {
  if (!existsSync(path)) throw new MediaError(file, 'video file not found');
  const st = statSync(path);
  if (!st.isFile()) throw new MediaError(file, 'not a regular file; only regular files are read');
  if (st.size === 0) throw new MediaError(file, 'video file is empty (0 bytes)');
  if (st.size > limits.maxBytes)
    throw new MediaError(file, `video file is too large (${st.size} bytes; limit ${limits.maxBytes})`);
}

/** Size, frame count and rate of the first video stream. `file` names it in errors. */
export async function probeVideo(path: string, file = path, limits: Partial<VideoLimits> = {}): Promise<VideoInfo> {
  const lim = { ...VIDEO_LIMITS, ...limits };
  const bins = findFfmpeg();
  if (!bins) throw new MediaError(file, NO_FFMPEG);
  checkFile(path, file, lim);
  const out = await run(
    bins.ffprobe,
    [
      '-v',
      'error',
      '-select_streams',
      'v:0',
      '-show_entries',
      'stream=codec_name,width,height,nb_frames,avg_frame_rate,r_frame_rate,duration:format=duration',
      '-of',
      'json',
      '--',
      path,
    ],
    file,
    lim.timeoutMs,
  );
  let j: { streams?: Array<Record<string, unknown>>; format?: Record<string, unknown> };
  try {
    j = JSON.parse(out);
  } catch {
    throw new MediaError(file, 'cannot decode video: ffprobe gave no readable answer');
  }
  const s = j.streams?.[0];
  if (!s) throw new MediaError(file, 'no video stream (is it an audio file?)');
  const width = Number(s.width);
  const height = Number(s.height);
  if (!(width > 0 && height > 0)) throw new MediaError(file, 'corrupt video: the stream has no frame size');
  if (width * height > lim.maxPixels)
    throw new MediaError(file, `video frames are too large: ${width}×${height} (limit ${lim.maxPixels} pixels)`);
  const fps = rate(s.avg_frame_rate) || rate(s.r_frame_rate);
  const seconds = Number(s.duration) || Number(j.format?.duration) || 0;
  if (seconds > lim.maxSeconds)
    throw new MediaError(file, `video is too long: ${seconds.toFixed(1)} s (limit ${lim.maxSeconds} s)`);
  let frames = Number(s.nb_frames) || 0;
  if (!frames && fps && seconds) frames = Math.max(1, Math.floor(seconds * fps));
  if (!frames) throw new MediaError(file, 'corrupt video: neither a frame count nor a duration and rate');
  return {
    width,
    height,
    frames,
    fps,
    seconds: seconds || frames / (fps || 1),
    codec: String(s.codec_name ?? 'unknown'),
  };
}

/** The frame indices N uniform samples take from `total` frames: numpy's linspace(0, total-1, N).astype(int). */
export function uniformFrameIndices(total: number, n: number): number[] {
  if (n < 1) throw new Error('at least one frame must be sampled');
  if (n === 1) return [0];
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(Math.floor((i * (total - 1)) / (n - 1)));
  return out;
}

/** N uniformly sampled frames of a video as PNG (a video shorter than N frames repeats frames). */
export async function extractVideoFrames(
  path: string,
  n: number,
  opts: {
    file?: string;
    limits?: Partial<VideoLimits>;
    /** scale each frame to this height (aspect kept) */ height?: number;
  } = {},
): Promise<VideoFrames> {
  const file = opts.file ?? path;
  const lim = { ...VIDEO_LIMITS, ...opts.limits };
  if (!Number.isInteger(n) || n < 1 || n > lim.maxFrames)
    throw new MediaError(file, `frames to sample must be 1–${lim.maxFrames} (got ${n})`);
  const info = await probeVideo(path, file, lim);
  const bins = findFfmpeg()!;
  const indices = uniformFrameIndices(info.frames, n);
  const unique = [...new Set(indices)];
  const dir = mkdtempSync(join(tmpdir(), 'lenslab-frames-'));
  try {
    const select = unique.map((i) => `eq(n\\,${i})`).join('+');
    await run(
      bins.ffmpeg,
      [
        '-v',
        'error',
        '-nostdin',
        '-i',
        path,
        '-an',
        '-sn',
        '-vf',
        opts.height ? `select=${select},scale=-2:${Math.round(opts.height)}` : `select=${select}`,
        '-fps_mode',
        'passthrough',
        '-frames:v',
        String(unique.length),
        '-f',
        'image2',
        join(dir, 'f%05d.png'),
      ],
      file,
      lim.timeoutMs,
    );
    const files = readdirSync(dir)
      .filter((f) => f.endsWith('.png'))
      .sort();
    if (files.length < unique.length)
      throw new MediaError(
        file,
        `corrupt video: only ${files.length} of the ${unique.length} sampled frames could be decoded (the stream says ${info.frames} frames)`,
      );
    const byIndex = new Map(unique.map((idx, k) => [idx, readFileSync(join(dir, files[k]))]));
    return {
      ...info,
      png: indices.map((i) => byIndex.get(i)!),
      indices,
      times: indices.map((i) => (info.fps ? i / info.fps : (i * info.seconds) / info.frames)),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
