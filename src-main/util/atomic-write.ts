// Atomic file writes (the project rule "writes are atomic: temp file + rename"): the data goes into a temp file
// beside the target (`.<name>.<pid>.<random>.tmp`, so sweeps that look for `*.tmp` find leftovers), is fsynced
// unless told not to, and is renamed over the target. A failed write removes the temp file and leaves the target
// as it was.
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  /** fsync the temp file before the rename (default true). */
  fsync?: boolean;
}

/** Write `path` atomically: `write(fd)` fills a temp file beside it, which is then (fsynced and) renamed into place. */
export function writeFileAtomic(path: string, write: (fd: number) => void, opts: AtomicWriteOptions = {}): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'w');
  try {
    write(fd);
    if (opts.fsync ?? true) fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Write all of `bytes` to `fd`, at `position` when given (else at the current offset), in chunks of at most 1 GiB. */
export function writeAll(fd: number, bytes: Uint8Array, position?: number): void {
  let off = 0;
  while (off < bytes.length)
    off += writeSync(
      fd,
      bytes,
      off,
      Math.min(bytes.length - off, 1 << 30),
      position === undefined ? null : position + off,
    );
}

/** Write `bytes` to `path` atomically. */
export function writeBytesAtomic(path: string, bytes: Uint8Array, opts: AtomicWriteOptions = {}): void {
  writeFileAtomic(path, (fd) => writeAll(fd, bytes), opts);
}

/** Write `text` (UTF-8) to `path` atomically. */
export function writeTextAtomic(path: string, text: string, opts: AtomicWriteOptions = {}): void {
  writeBytesAtomic(path, Buffer.from(text), opts);
}
