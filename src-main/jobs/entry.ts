// Entry point of a job process (forked by JobRunner with an IPC channel). Waits for a 'start' message, runs the
// job loop, streams every JobEvent to the parent, and keeps <outDir>/process.json's heartbeat fresh.
// 'pause' and 'cancel' messages take effect between steps. If the parent goes away (app crash or quit), the job
// pauses: it finishes the step, writes a checkpoint and exits, so nothing is lost and resume continues from there.
import { mkdirSync } from 'node:fs';
import { runJob, type JobControl } from './driver';
import { releaseFolderLock } from './folder-lock';
import { appendJournal } from './journal';
import { writeProcessFile, type ProcessInfo } from './process-file';
import type { JobEvent, ParentMessage } from './protocol';

const control: JobControl = { pause: false, cancel: false };
let started = false;

function send(e: JobEvent): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected || !process.send) return resolve();
    try {
      process.send(e, undefined, undefined, () => resolve());
    } catch {
      resolve();
    }
  });
}

async function run(m: Extract<ParentMessage, { type: 'start' }>): Promise<void> {
  mkdirSync(m.spec.outDir, { recursive: true });
  const info: ProcessInfo = {
    pid: process.pid,
    runId: m.runId,
    startedAt: new Date().toISOString(),
    heartbeatAt: new Date().toISOString(),
  };
  const beat = () => {
    info.heartbeatAt = new Date().toISOString();
    try {
      writeProcessFile(m.spec.outDir, info);
    } catch {
      /* the run dir may be gone (deleted run); the job ends soon anyway */
    }
  };
  beat();
  const timer = setInterval(beat, 1000);
  timer.unref();
  let pending: Promise<void> = Promise.resolve();
  let journalError: string | null = null;
  const outcome = await runJob(m.spec, m.resume, control, (e) => {
    // journaled first: if the parent is gone (or dies before storing it), recover()/resume read it from here
    try {
      appendJournal(m.spec.outDir, e);
    } catch (err) {
      if (!journalError) {
        journalError = (err as Error).message;
        pending = send({
          type: 'log',
          level: 'warn',
          message: `cannot write the run's event journal: ${journalError}`,
        });
      }
    }
    pending = send(e);
  });
  clearInterval(timer);
  info.endedAt = new Date().toISOString();
  info.outcome = outcome;
  beat();
  releaseFolderLock(m.spec.outDir, process.pid);
  await pending;
  process.exitCode = outcome === 'failed' ? 1 : 0;
  // Leave once the IPC channel has flushed; a native library holding the loop open must not keep us alive.
  if (process.connected) process.disconnect();
  setTimeout(() => process.exit(), 2000).unref();
}

process.on('message', (m: ParentMessage) => {
  if (!m || typeof m !== 'object') return;
  if (m.type === 'pause') control.pause = true;
  else if (m.type === 'cancel') control.cancel = true;
  else if (m.type === 'start' && !started) {
    started = true;
    run(m).catch((e) => {
      console.error(e);
      process.exit(1);
    });
  }
});

// Ctrl-C in a terminal reaches the whole foreground process group, this job included: the parent (lenslab train)
// turns it into a pause request, so the job itself must not die of it.
process.on('SIGINT', () => {});

process.on('disconnect', () => {
  if (!started) process.exit(0);
  control.pause = true;
});
