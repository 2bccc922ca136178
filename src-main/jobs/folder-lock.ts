// `<outDir>/.lenslab-lock`: one process at a time works in a run folder. Two `lenslab train` with the same --out,
// or two resumes of one run started together, would otherwise both run and overwrite each other's checkpoints and
// adapter. The lock names its holder by pid and process start time (so a reused pid is not mistaken for the holder)
// and is created complete in one step (written beside it, then hard-linked into place, which fails if one exists).
// The process that starts a job takes it, hands it to the job process once forked, and whoever sees the job end
// removes it; a lock whose holder is dead (crash, SIGKILL, zombie) or whose pid now names another process is stale
// and is taken over.
import {
  existsSync,
  linkSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmdirSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { pidAlive, processStartTime } from '../util/pid';

export const LOCK_FILE = '.lenslab-lock';

export interface LockInfo {
  pid: number;
  /** processStartTime(pid) when the lock was written (null where the platform does not say). */
  startTime: string | null;
  since: string;
  /** What the holder does, e.g. "run 3 (job process)". */
  what: string;
}

export class FolderBusyError extends Error {
  constructor(
    readonly folder: string,
    readonly holder: LockInfo,
  ) {
    super(
      `run folder ${folder} is in use by process ${holder.pid} (${holder.what}, since ${holder.since}); wait for it to finish or pause it first`,
    );
    this.name = 'FolderBusyError';
  }
}

export const lockPath = (dir: string) => join(dir, LOCK_FILE);

export function readLock(dir: string): LockInfo | null {
  try {
    const v = JSON.parse(readFileSync(lockPath(dir), 'utf8')) as LockInfo;
    return v && Number.isInteger(v.pid) ? v : null;
  } catch {
    return null;
  }
}

/** The holder still runs and is the same process that took the lock (not a later one with a reused pid). */
export function holderAlive(info: LockInfo): boolean {
  if (!pidAlive(info.pid)) return false;
  if (info.startTime === null) return true;
  const now = processStartTime(info.pid);
  return now === null || now === info.startTime;
}

/** The live holder of the folder's lock, or null (no lock, or a stale one). */
export function folderLockHolder(dir: string): LockInfo | null {
  const info = readLock(dir);
  return info && holderAlive(info) ? info : null;
}

const infoFor = (pid: number, what: string): LockInfo => ({
  pid,
  startTime: processStartTime(pid),
  since: new Date().toISOString(),
  what,
});

function writeBeside(dir: string, info: LockInfo): string {
  const tmp = join(dir, `${LOCK_FILE}.${process.pid}.${Math.random().toString(36).slice(2)}`);
  writeFileSync(tmp, JSON.stringify(info));
  return tmp;
}

export interface FolderLock {
  readonly dir: string;
  /** The lock now names `pid` (the job process this one forked). */
  handOver(pid: number, what: string): void;
  /** Remove the lock if it still names this holder (or the one it was handed to). */
  release(): void;
}

/** Take the folder's lock (creating the folder) or throw FolderBusyError naming the live holder. */
export function acquireFolderLock(dir: string, what: string): FolderLock {
  const created = !existsSync(dir);
  mkdirSync(dir, { recursive: true });
  let mine = infoFor(process.pid, what);
  for (let attempt = 0; ; attempt++) {
    const tmp = writeBeside(dir, mine);
    try {
      linkSync(tmp, lockPath(dir));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    } finally {
      unlinkSync(tmp);
    }
    const held = readLock(dir);
    if (held && holderAlive(held)) throw new FolderBusyError(dir, held);
    if (attempt >= 3) throw new Error(`cannot take the lock of run folder ${dir}: ${lockPath(dir)} keeps changing`);
    removeIf(dir, (cur) => cur === null || sameHolder(cur, held));
  }
  return {
    dir,
    handOver(pid: number, w: string) {
      const next = infoFor(pid, w);
      const tmp = writeBeside(dir, next);
      renameSync(tmp, lockPath(dir));
      mine = next;
    },
    release() {
      releaseFolderLock(dir, mine.pid);
      // a folder made only to hold the lock (a start refused before anything was written) goes again
      if (created)
        try {
          rmdirSync(dir);
        } catch {
          /* not empty: the run wrote into it */
        }
    },
  };
}

const sameHolder = (a: LockInfo | null, b: LockInfo | null) =>
  !!a && !!b && a.pid === b.pid && a.startTime === b.startTime && a.since === b.since;

function removeIf(dir: string, pred: (cur: LockInfo | null) => boolean): void {
  if (!pred(readLock(dir))) return;
  try {
    unlinkSync(lockPath(dir));
  } catch {
    /* gone already */
  }
}

/** Remove the folder's lock if it names `pid` (a job process at its end, the runner when its job exited). */
export function releaseFolderLock(dir: string, pid: number): void {
  removeIf(dir, (cur) => cur !== null && cur.pid === pid);
}

/** The folder's entries other than its lock (a folder holding only a lock counts as empty). */
export function folderEntries(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => n !== LOCK_FILE && !n.startsWith(`${LOCK_FILE}.`));
}
