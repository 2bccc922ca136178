// Errors of the media decoders. Every message names the file (as the user wrote it, or the record and field it came
// from) and the reason, because the files are untrusted and the message is all the user sees of a failed import.

/** A corrupt, unsupported or over-limit audio/video file. `file` is the name used in the message. */
export class MediaError extends Error {
  readonly file: string;
  readonly reason: string;
  constructor(file: string, reason: string, opts?: { cause?: unknown }) {
    super(`${file}: ${reason}`, opts?.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'MediaError';
    this.file = file;
    this.reason = reason;
  }
}
