// Turn whatever was thrown (an ApiError from the client, an Error, a string) into words for a banner.
export interface ErrorText {
  title: string;
  message: string;
  /** The offending field, when the backend named one. */
  field?: string;
}

const TITLES: Record<string, string> = {
  invalid_request: 'Please check the input',
  unauthorized: 'Not signed in to this Lenslab server',
  not_found: 'Not found',
  conflict: 'That conflicts with something else',
  unavailable: 'Lenslab is not ready',
  cancelled: 'Cancelled',
  internal: 'Something went wrong inside Lenslab',
};

export function describeError(err: unknown, fallbackTitle = 'Something went wrong'): ErrorText {
  if (err === null || err === undefined) return { title: fallbackTitle, message: '' };
  if (typeof err === 'string') return { title: fallbackTitle, message: err };
  const e = err as { code?: unknown; message?: unknown; field?: unknown; name?: unknown };
  const message = typeof e.message === 'string' ? e.message : String(err);
  const code = typeof e.code === 'string' ? e.code : undefined;
  const field = typeof e.field === 'string' && e.field ? e.field : undefined;
  if (code && TITLES[code]) return { title: TITLES[code], message, ...(field ? { field } : {}) };
  if (e.name === 'TypeError' && /fetch|network|socket/i.test(message)) {
    return {
      title: 'Lost the connection to Lenslab',
      message: `${message}. Check that Lenslab is still running, then retry.`,
    };
  }
  return { title: fallbackTitle, message, ...(field ? { field } : {}) };
}
