// `<outDir>/events.jsonl`: what the job process reported, written by the job itself before it sends each event to
// its parent. The parent stores events in SQLite as they arrive; when the parent dies first (the CLI is killed, the
// app crashes) the job goes on to its pause checkpoint with nobody listening, and the journal is how the next
// recover()/resume fills in the steps and the outcome it missed (reconcileRun). One JSON object a line; a line cut
// short by a kill is skipped. Eval predictions are not journaled (they travel to the parent only).
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { JobEvent } from './protocol';

// 'started' marks a new job process: an outcome journaled before it belongs to an earlier one
const KINDS = new Set(['started', 'progress', 'eval', 'checkpoint', 'paused', 'cancelled', 'done', 'failed']);

export function journalPath(outDir: string): string {
  return join(outDir, 'events.jsonl');
}

/** Append `e` when it is one the database keeps (metrics, checkpoints, outcomes) or a start; logs are not journaled. */
export function appendJournal(outDir: string, e: JobEvent): void {
  if (!KINDS.has(e.type)) return;
  const slim = e.type === 'eval' ? { ...e, predictions: undefined } : e;
  appendFileSync(journalPath(outDir), `${JSON.stringify(slim)}\n`);
}

/** The journaled events in order (none when there is no journal). */
export function readJournal(outDir: string): JobEvent[] {
  let text: string;
  try {
    text = readFileSync(journalPath(outDir), 'utf8');
  } catch {
    return [];
  }
  const out: JobEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      const e = JSON.parse(line) as JobEvent;
      if (e && typeof e === 'object' && KINDS.has(e.type)) out.push(e);
    } catch {
      /* the last line of a killed job may be cut short */
    }
  }
  return out;
}
