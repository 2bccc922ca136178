// Text rendering of job events for the CLI (`lenslab train` progress bar and log lines).
import type { ProgressEvent } from '../../jobs/protocol';
import type { RunnerEvent } from '../../jobs/runner';

export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return '?';
  const s = Math.round(sec);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function num(x: number, digits = 4): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return x.toExponential(2);
  if (a >= 10 ** digits) return String(Math.round(x)); // toPrecision would switch to exponent form
  const t = x.toPrecision(digits);
  // trailing zeros of the fraction only: 270 stays 270, 0.5200 becomes 0.52
  return t.includes('.') ? t.replace(/0+$/, '').replace(/\.$/, '') : t;
}

/** `[########------------]  40% step 40/100 loss 0.6931 lr 2.00e-4 gnorm 0.52 | 31.2 samples/s 4010 tok/s | ETA 1m12s` */
export function formatProgress(e: ProgressEvent, width = 24): string {
  const frac = e.totalSteps > 0 ? Math.min(1, e.step / e.totalSteps) : 0;
  const filled = Math.round(frac * width);
  const bar = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
  const pct = `${Math.floor(frac * 100)}%`.padStart(4);
  return (
    `${bar} ${pct} step ${e.step}/${e.totalSteps} loss ${num(e.loss)} lr ${e.lr.toExponential(2)} gnorm ${num(e.gradNorm, 3)}` +
    ` | ${num(e.samplesPerSec, 3)} samples/s ${Math.round(e.tokensPerSec)} tok/s | ETA ${formatDuration(e.etaSec)}`
  );
}

/** One log line for a non-progress event (null for events not worth a line). */
export function formatEvent(e: RunnerEvent): string | null {
  switch (e.type) {
    case 'started':
      return e.resumedFrom !== null
        ? `resumed from the checkpoint at step ${e.resumedFrom} (${e.totalSteps} steps in all)`
        : `training ${e.totalSteps} steps`;
    case 'eval':
      return `eval at step ${e.step}: ${Object.entries(e.metrics)
        .map(([k, v]) => `${k} ${num(v)}`)
        .join(', ')}`;
    case 'checkpoint':
      return `checkpoint at step ${e.step}: ${e.path}`;
    case 'log':
      return e.level === 'info' ? e.message : `${e.level}: ${e.message}`;
    case 'paused':
      return `paused at step ${e.step}; resume continues from there`;
    case 'cancelled':
      return `cancelled at step ${e.step}`;
    case 'done':
      return `done: ${Object.entries(e.metrics)
        .map(([k, v]) => `${k} ${num(v)}`)
        .join(', ')}; output in ${e.outputDir}`;
    case 'failed':
      return `failed: ${e.message}`;
    default:
      return null;
  }
}
