// Typed errors shared by every transport. Pure TS + zod: importable by the renderer.
import { z } from 'zod';

export const ERROR_CODES = [
  'invalid_request', // the request does not match the contract (field names the offending path)
  'unauthorized', // missing or wrong token (serve mode)
  'not_found', // the method or the addressed record does not exist
  'conflict', // e.g. a name already taken, or a record busy (a running job)
  'unavailable', // the backend is not ready / shutting down / a required resource is missing
  'cancelled', // the operation was cancelled by the user
  'internal', // a bug: the backend failed unexpectedly
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export const ApiErrorData = z.object({
  code: z.enum(ERROR_CODES),
  message: z.string(),
  /** Dotted path of the offending field, e.g. "name" or "items.3.caption". */
  field: z.string().optional(),
});
export type ApiErrorData = z.infer<typeof ApiErrorData>;

/** Thrown by services and re-thrown by clients; carries a code and optionally the offending field. */
export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly field?: string;
  constructor(code: ErrorCode, message: string, field?: string) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    if (field !== undefined) this.field = field;
  }
  toData(): ApiErrorData {
    return this.field === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, field: this.field };
  }
  static from(data: ApiErrorData): ApiError {
    return new ApiError(data.code, data.message, data.field);
  }
}

export function isApiError(e: unknown): e is ApiError {
  return e instanceof ApiError;
}

/** Longest field name or path echoed back in an error (keys come from the request and may be huge). */
const MAX_FIELD = 200;
/** At most this many unknown field names are listed in one error. */
const MAX_KEYS = 5;

function clipText(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

/** A readable dotted path for a zod issue path ("items.3.caption"); "" for the root. */
export function formatPath(path: readonly PropertyKey[]): string {
  return clipText(path.map((p) => (typeof p === 'symbol' ? p.toString() : String(p))).join('.'), MAX_FIELD);
}

/**
 * Turn zod issues into one invalid_request error naming the first offending field.
 * `what` says which value was checked, e.g. `params of datasets.create`.
 */
export function errorFromIssues(issues: readonly z.core.$ZodIssue[], what: string): ApiError {
  const parts: string[] = [];
  let firstField: string | undefined;
  for (const issue of issues) {
    let field = formatPath(issue.path);
    if (issue.code === 'unrecognized_keys') {
      const keys = (issue as { keys: string[] }).keys.map((k) =>
        clipText([formatPath(issue.path), k].filter(Boolean).join('.'), MAX_FIELD),
      );
      field = keys[0] ?? field;
      const more = keys.length > MAX_KEYS ? ` and ${keys.length - MAX_KEYS} more` : '';
      parts.push(`${keys.slice(0, MAX_KEYS).join(', ')}${more}: unknown field${keys.length > 1 ? 's' : ''}`);
    } else {
      parts.push(`${field || '(root)'}: ${clipText(issue.message, 500)}`);
    }
    if (firstField === undefined) firstField = field || undefined;
    if (parts.length >= 5) break;
  }
  return new ApiError('invalid_request', `invalid ${what}: ${parts.join('; ')}`, firstField);
}
