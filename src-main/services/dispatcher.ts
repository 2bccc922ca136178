// The one request path every transport shares: validate params → call the handler → validate the result,
// and turn every failure into a typed error envelope (never a thrown exception, never a crash).
import {
  events,
  isEventName,
  isMethodName,
  methods,
  type Envelope,
  type EventName,
  type MethodName,
} from '../contract/index';
import { ApiError, errorFromIssues } from '../contract/errors';
import type { ServiceContext, Handlers, RequestContext } from './context';

export type Logger = Pick<Console, 'error' | 'warn'>;

/** The signal of a request nobody can abandon (in-process callers that pass none). */
const NEVER = new AbortController().signal;

export class Dispatcher {
  constructor(
    private readonly registry: Handlers<MethodName>,
    private readonly ctx: ServiceContext,
    private readonly log: Logger = console,
  ) {}

  /** Handle one request. Always resolves, with a result or a typed error. */
  async dispatch(method: unknown, params: unknown, req: Partial<RequestContext> = {}): Promise<Envelope> {
    try {
      return { ok: true, result: await this.call(method, params, req) };
    } catch (err) {
      return { ok: false, error: toApiError(err, typeof method === 'string' ? method : '?', this.log).toData() };
    }
  }

  /** Like dispatch but throws ApiError; for in-process callers (CLI). */
  async call(method: unknown, params: unknown, req: Partial<RequestContext> = {}): Promise<unknown> {
    if (typeof method !== 'string' || method.length === 0) {
      throw new ApiError('invalid_request', 'request has no method name', 'method');
    }
    if (!isMethodName(method)) throw new ApiError('not_found', `unknown method "${truncate(method, 80)}"`, 'method');
    const def = methods[method];
    const parsed = def.input.safeParse(params === undefined || params === null ? {} : params);
    if (!parsed.success) throw errorFromIssues(parsed.error.issues, `params of ${method}`);
    const handler = this.registry[method] as (p: unknown, ctx: ServiceContext, req: RequestContext) => unknown;
    const result = await handler(parsed.data, this.ctx, { signal: req.signal ?? NEVER });
    const checked = def.output.safeParse(result);
    if (!checked.success) {
      const e = errorFromIssues(checked.error.issues, `result of ${method}`);
      this.log.error(`[lenslab] ${method} returned a result that breaks the contract: ${e.message}`);
      throw new ApiError('internal', `the backend returned an invalid result for ${method} (${e.message})`);
    }
    return checked.data;
  }
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

/** Map anything thrown by a handler to an ApiError. */
export function toApiError(err: unknown, method: string, log: Logger = console): ApiError {
  if (err instanceof ApiError) return err;
  const code = (err as { code?: unknown })?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (typeof code === 'string' && code.startsWith('SQLITE_')) {
    if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY')
      return new ApiError('conflict', message);
    if (code === 'SQLITE_CONSTRAINT_FOREIGNKEY')
      return new ApiError('conflict', `${message} (a referenced record does not exist or is still in use)`);
    if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED')
      return new ApiError('unavailable', `database is busy, try again (${message})`);
  }
  log.error(`[lenslab] ${method} failed:`, err);
  return new ApiError('internal', `${method} failed: ${message}`);
}

export type EventListener = (event: EventName, payload: unknown) => void;

/** Fan-out of backend events to transports; payloads are validated against the contract. */
export class EventBus {
  private listeners = new Set<EventListener>();

  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Drop every listener (the backend is closing). */
  clear(): void {
    this.listeners.clear();
  }

  emit(event: EventName, payload: unknown): void {
    if (!isEventName(event)) throw new Error(`unknown event "${String(event)}"`);
    const parsed = events[event].safeParse(payload);
    if (!parsed.success) throw new Error(errorFromIssues(parsed.error.issues, `payload of event ${event}`).message);
    for (const l of [...this.listeners]) {
      try {
        l(event, parsed.data);
      } catch (err) {
        console.error(`[lenslab] event listener for ${event} failed:`, err);
      }
    }
  }
}
