// Run one job of a JobRunner to its end while printing progress (`lenslab train` prints the same lines from the
// backend's run events: train.ts). On a TTY the progress bar is redrawn in place; otherwise a progress line is
// printed every `every` steps. Aborting `stop` (the CLI wires Ctrl-C to it)
// pauses the run: the job finishes its step and checkpoints, and `lenslab train` with the same --out resumes it.
import type { RunStatus } from '../../storage/runs-queries';
import type { JobSpec } from '../../jobs/protocol';
import { formatEvent, formatProgress } from './progress';
import type { JobRunner } from '../../jobs/runner';

export interface ForegroundIO {
  /** Write text as-is (no newline added). */
  write(text: string): void;
  /** Redraw the progress line in place (true on a terminal). */
  isTTY: boolean;
}

export interface ForegroundOptions {
  /** Start a queued run with this spec, resume a paused/interrupted one, or follow one already started (by the service). */
  start: { spec: JobSpec } | { resume: true } | { attach: true };
  io: ForegroundIO;
  stop?: AbortSignal;
  /** Without a TTY, print progress every N steps (default: about 20 lines per run). */
  every?: number;
}

export async function runInForeground(runner: JobRunner, runId: number, o: ForegroundOptions): Promise<RunStatus> {
  let barShown = false;
  const clearBar = () => {
    if (barShown) o.io.write('\r\x1b[2K');
    barShown = false;
  };
  const off = runner.subscribe((e) => {
    if (e.runId !== runId) return;
    if (e.type === 'progress') {
      const every = o.every ?? Math.max(1, Math.round(e.totalSteps / 20));
      if (o.io.isTTY) {
        o.io.write(`\r\x1b[2K${formatProgress(e)}`);
        barShown = true;
      } else if (e.step % every === 0 || e.step === e.totalSteps) o.io.write(`${formatProgress(e)}\n`);
      return;
    }
    const line = formatEvent(e);
    if (line) {
      clearBar();
      o.io.write(`${line}\n`);
    }
  });
  const onStop = () => {
    if (runner.isActive(runId)) {
      clearBar();
      o.io.write('pausing after the current step...\n');
      runner.pause(runId).catch(() => undefined);
    }
  };
  try {
    if ('spec' in o.start) await runner.startJob(runId, o.start.spec);
    else if ('resume' in o.start) await runner.resume(runId);
    if (o.stop?.aborted) onStop();
    o.stop?.addEventListener('abort', onStop, { once: true });
    const status = await runner.wait(runId);
    clearBar();
    return status;
  } finally {
    o.stop?.removeEventListener('abort', onStop);
    off();
  }
}
