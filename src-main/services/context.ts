// What every service handler receives, and the handler types the registry checks against the contract.
import type { Database } from '../storage/database';
import type { EventName, EventPayload, MethodName, ParsedParams, Result } from '../contract/index';
import type { TrainingRuntime } from './training-runtime';
import type { WorkRuntime } from './work';
import type { ChatRuntime } from './chat';
import type { HubRuntime } from './hub';
import type { ImportRuntime } from './dataset-io';

export interface ServiceContext {
  db: Database;
  /** Root of all Lenslab data (database, images, thumbs, models, runs). */
  dataDir: string;
  /** How the backend is hosted: 'electron' | 'serve' | 'cli' | 'test'. */
  host: string;
  /** Push an event to every connected client. The payload is validated against the contract. */
  emit<E extends EventName>(event: E, payload: EventPayload<E>): void;
  /** The backend's runtimes, built by createBackend and disposed of by it (Backend.shutdown / close). */
  training: TrainingRuntime;
  work: WorkRuntime;
  chat: ChatRuntime;
  hub: HubRuntime;
  imports: ImportRuntime;
}

/** One request as the transport delivered it. */
export interface RequestContext {
  /**
   * Aborted when whoever asked is gone: the WebSocket closed, the HTTP client hung up, the CLI got Ctrl-C. A handler
   * doing long work passes it on; what it started in the background (evaluations, runs) is not tied to it.
   */
  signal: AbortSignal;
}

/** A handler for contract method M: parsed params in, the method's result out (req: absent when a service calls another's handler). */
export type Handler<M extends MethodName> = (
  params: ParsedParams<M>,
  ctx: ServiceContext,
  req?: RequestContext,
) => Result<M> | Promise<Result<M>>;

/** Handlers for a subset of methods (what one service file exports). */
export type Handlers<Names extends MethodName> = { [M in Names]: Handler<M> };

/** Helper so a service file gets its handlers type-checked: `export const fooHandlers = handlers({...})`. */
export function handlers<const Names extends MethodName>(h: Handlers<Names>): Handlers<Names> {
  return h;
}
