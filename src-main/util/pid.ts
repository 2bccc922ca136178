// Whether a process id names a running process, and which process it is (its start time), for locks and
// heartbeats that outlive the process that wrote them.
import { readFileSync } from 'node:fs';

/** The fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses), or null. */
function procStat(pid: number): string[] | null {
  if (process.platform !== 'linux') return null;
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/**
 * True when `pid` runs. A zombie (exited, not yet reaped by its parent: state Z on Linux) is dead: it will never
 * write again, and a job killed with SIGKILL stays one until whoever started it reaps it.
 */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const st = procStat(pid);
  return !(st && (st[0] === 'Z' || st[0] === 'X'));
}

/**
 * When the process started, as an opaque string that differs between two processes that had the same pid (Linux:
 * clock ticks since boot from /proc/<pid>/stat); null where the platform does not say.
 */
export function processStartTime(pid: number): string | null {
  const st = procStat(pid);
  return st && st.length > 19 ? st[19] : null;
}
