// `<outDir>/process.json`: which process runs a job and when it last showed signs of life. The job process
// rewrites it every second (atomically); the runner reads it to tell a live job from one whose process is gone
// (after a crash of the job, or of the app that started it).
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pidAlive } from '../util/pid';

export interface ProcessInfo {
  pid: number;
  runId: number;
  startedAt: string;
  heartbeatAt: string;
  /** Set by the job process when it ends on its own (outcome of the loop). */
  endedAt?: string;
  outcome?: string;
}

export function processFilePath(outDir: string): string {
  return join(outDir, 'process.json');
}

export function writeProcessFile(outDir: string, info: ProcessInfo): void {
  mkdirSync(outDir, { recursive: true });
  const path = processFilePath(outDir);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(info));
  renameSync(tmp, path);
}

export function readProcessFile(outDir: string): ProcessInfo | null {
  try {
    const v = JSON.parse(readFileSync(processFilePath(outDir), 'utf8')) as ProcessInfo;
    return v && typeof v.pid === 'number' ? v : null;
  } catch {
    return null;
  }
}

export { pidAlive };

/** True when the recorded process still runs, has not ended, and wrote a heartbeat within `staleMs`. */
export function processIsLive(info: ProcessInfo | null, staleMs: number, now = Date.now()): boolean {
  if (!info || info.endedAt) return false;
  if (!pidAlive(info.pid)) return false;
  return now - Date.parse(info.heartbeatAt) <= staleMs;
}
