// Audio decoding off the calling thread, with limits: the bytes are untrusted, and decoding plus resampling a long
// clip is seconds of CPU. Each call runs one short-lived worker_thread with a capped heap and a deadline; a file
// that breaks either fails alone with a MediaError naming it, and the caller's event loop never waits on it.
// (The dataset import already runs in its own worker and decodes in that thread.)
// This file is also the worker's entry (built as media-worker.js, electron.vite.config.ts).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { startWorker } from '../util/worker-host';
import { decodeAudio, decodeAudioFile, type AudioClip, type DecodeAudioOptions } from './audio';
import { MediaError } from './errors';

export const MEDIA_WORKER_ENTRY = fileURLToPath(import.meta.url);
const FLAG = 'lenslabMediaWorker';

/**
 * Where the worker entry is (a bundle sets its built media-worker.js: inside a bundle this module's own URL is the
 * bundle's file), or `inProcess` to decode in the calling thread.
 */
export const mediaWorkerOptions: { entry?: string; inProcess?: boolean } = {};

export interface MediaWorkerLimits {
  maxHeapMb: number;
  timeoutMs: number;
}
export const DEFAULT_MEDIA_WORKER_LIMITS: MediaWorkerLimits = { maxHeapMb: 2048, timeoutMs: 2 * 60_000 };

type Input = { [FLAG]: true; path?: string; bytes?: Uint8Array; label: string; opts: DecodeAudioOptions };
type Output = { t: 'done'; clip: AudioClip } | { t: 'error'; message: string; file?: string; reason?: string };

/** decodeAudioFile / decodeAudio in a worker thread. `source` is a path or the file's bytes; `label` names it in errors. */
export function decodeAudioInWorker(
  source: string | Uint8Array,
  opts: DecodeAudioOptions & {
    label?: string;
    limits?: DecodeAudioOptions['limits'];
    worker?: Partial<MediaWorkerLimits>;
    signal?: AbortSignal;
  } = {},
): Promise<AudioClip> {
  const label = opts.label ?? (typeof source === 'string' ? source : 'audio');
  const lim = { ...DEFAULT_MEDIA_WORKER_LIMITS, ...opts.worker };
  const entry = mediaWorkerOptions.entry ?? MEDIA_WORKER_ENTRY;
  if (mediaWorkerOptions.inProcess || !existsSync(entry))
    return typeof source === 'string' ? decodeAudioFile(source, { ...opts, label }) : decodeAudio(source, label, opts);
  const input: Input = {
    [FLAG]: true,
    label,
    opts: { sampleRate: opts.sampleRate, limits: opts.limits },
    ...(typeof source === 'string' ? { path: source } : { bytes: source }),
  };
  return new Promise<AudioClip>((resolve, reject) => {
    const w = startWorker(entry, { workerData: input, resourceLimits: { maxOldGenerationSizeMb: lim.maxHeapMb } });
    let settled = false;
    const finish = (err: Error | null, clip?: AudioClip) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      void w.terminate();
      if (err) reject(err);
      else resolve(clip!);
    };
    const timer = setTimeout(
      () => finish(new MediaError(label, `decoding took longer than ${lim.timeoutMs / 1000} s and was stopped`)),
      lim.timeoutMs,
    );
    const onAbort = () => finish(new MediaError(label, 'decoding was cancelled'));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    w.on('message', (m: Output) => {
      if (m.t === 'done') finish(null, m.clip);
      else
        finish(
          m.reason !== undefined && m.file !== undefined ? new MediaError(m.file, m.reason) : new Error(m.message),
        );
    });
    w.on('error', (err) => {
      const oom = (err as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY';
      finish(
        new MediaError(
          label,
          oom
            ? `decoding needed more than ${lim.maxHeapMb} MiB of memory and was stopped`
            : `decoder failed: ${err.message}`,
          { cause: err },
        ),
      );
    });
    w.on('exit', (code) => finish(new MediaError(label, `decoder exited (code ${code}) before finishing`)));
  });
}

if (!isMainThread && (workerData as Input | undefined)?.[FLAG]) {
  const input = workerData as Input;
  const run =
    input.path !== undefined
      ? decodeAudioFile(input.path, { ...input.opts, label: input.label })
      : decodeAudio(input.bytes!, input.label, input.opts);
  run.then(
    (clip) => {
      // a view into a larger buffer (one channel of several) is copied so only the clip's bytes move
      if (clip.samples.byteOffset !== 0 || clip.samples.byteLength !== clip.samples.buffer.byteLength)
        clip.samples = clip.samples.slice();
      parentPort!.postMessage({ t: 'done', clip } satisfies Output, [clip.samples.buffer as ArrayBuffer]);
    },
    (err: Error) =>
      parentPort!.postMessage({
        t: 'error',
        message: err.message,
        ...(err instanceof MediaError ? { file: err.file, reason: err.reason } : {}),
      } satisfies Output),
  );
}
