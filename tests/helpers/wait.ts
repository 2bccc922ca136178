// Waiting in tests: poll a condition until it holds, or resolve with a job runner's first matching event.
import type { JobRunner, RunnerEvent } from '../../src-main/jobs/runner';

/** Poll `fn` every `intervalMs` until it returns something truthy (returned), or fail naming `what`. */
export async function until<T>(
  fn: () => Promise<T> | T,
  what: string,
  timeoutMs = 15_000,
  intervalMs = 100,
): Promise<Exclude<T, null | undefined | false>> {
  const end = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await fn();
    if (last) return last as Exclude<T, null | undefined | false>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Resolve with the first event of run `runId` that matches `pred`. */
export function runnerEvent(runner: JobRunner, runId: number, pred: (e: RunnerEvent) => boolean): Promise<RunnerEvent> {
  return new Promise((resolve) => {
    const off = runner.subscribe((e) => {
      if (e.runId === runId && pred(e)) {
        off();
        resolve(e);
      }
    });
  });
}
