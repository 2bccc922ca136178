// Make a run's rows match its folder after its job ended without the runner watching (the parent was killed, the
// app crashed): every metric step the job journaled is stored, the checkpoint rows are exactly the complete
// checkpoints on disk (rows of pruned folders go, the pause checkpoint is added), and the job's own outcome
// (paused, done, failed, cancelled) is returned so the run gets that status instead of 'interrupted'.
import type { Database } from '../storage/database';
import { listCheckpoints } from '../training/checkpoints';
import { checkpointRoot } from './driver';
import { readJournal } from './journal';
import type { JobEvent } from './protocol';
import {
  deleteCheckpointRows,
  listCheckpointRows,
  maxMetricStep,
  recordCheckpoint,
  setRunProgress,
  storeMetrics,
} from './store';

export type JobTerminal = Extract<JobEvent, { type: 'paused' | 'cancelled' | 'done' | 'failed' }>;

/** Store what the journal has that the database lacks, sync checkpoint rows with the disk; the job's outcome. */
export function reconcileRun(db: Database, runId: number, outDir: string): JobTerminal | null {
  const events = readJournal(outDir);
  let lastStep: number | null = null;
  let totalSteps: number | null = null;
  // steps the runner stored are not stored again (a resumed step recomputes the same values)
  const stored = { progress: maxMetricStep(db, runId, 'loss'), eval: maxMetricStep(db, runId, 'eval_%') };
  db.transaction(() => {
    for (const e of events) {
      if (e.type === 'progress') {
        if (e.step > stored.progress) storeMetrics(db, runId, e);
        lastStep = e.step;
        totalSteps = e.totalSteps;
      } else if (e.type === 'eval' && e.step > stored.eval) storeMetrics(db, runId, e);
    }
    if (lastStep !== null) setRunProgress(db, runId, lastStep, totalSteps);
    syncCheckpointRows(db, runId, outDir);
  })();
  // the outcome counts only when nothing was journaled after it (a resume appends after a pause)
  const last = events.at(-1);
  return last && (last.type === 'paused' || last.type === 'cancelled' || last.type === 'done' || last.type === 'failed')
    ? last
    : null;
}

/** Checkpoint rows = the complete checkpoint folders on disk (rows of missing folders deleted, missing rows added). */
export function syncCheckpointRows(db: Database, runId: number, outDir: string): void {
  const onDisk = listCheckpoints(checkpointRoot(outDir));
  const steps = new Set(onDisk.map((c) => c.step));
  const rows = listCheckpointRows(db, runId).filter((r) => r.kind === 'state');
  const have = new Set(rows.map((r) => r.step));
  for (const c of onDisk)
    if (!have.has(c.step)) {
      const metrics = (c.manifest.info as { metrics?: Record<string, number> }).metrics ?? {};
      recordCheckpoint(db, runId, {
        type: 'checkpoint',
        step: c.step,
        path: c.dir,
        bytes: c.bytes,
        pruned: [],
        metrics,
      });
    }
  deleteCheckpointRows(
    db,
    runId,
    rows.filter((r) => !steps.has(r.step)).map((r) => r.step),
  );
}
