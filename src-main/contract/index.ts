// The whole API: every method and event, merged from one file per domain.
// Adding a domain: create contract/<domain>.ts with defineMethods/defineEvents, then add one
// spread line to `methods` and one to `events` below (and handlers in services/registry.ts).
// Pure TS + zod: no node:*, electron or DOM imports (the renderer imports this).
import type { z } from 'zod';
import { systemEvents, systemMethods } from './system';
import { datasetsEvents, datasetsMethods } from './datasets';
import { runsEvents, runsMethods } from './runs';
import { evaluationsEvents, evaluationsMethods } from './evaluations';
import { datasetsIoEvents, datasetsIoMethods } from './datasets-io';
import { chatEvents, chatMethods } from './chat';
import { modelsEvents, modelsMethods } from './models';
import { hubEvents, hubMethods } from './hub';
import { samplesMethods } from './samples';
import { runsManageMethods } from './runs-manage';
import { modelsExportEvents, modelsExportMethods } from './models-export';
import { inferenceEvents, inferenceMethods } from './inference';
import type { ApiErrorData } from './errors';

export const methods = {
  ...systemMethods,
  ...datasetsMethods,
  ...runsMethods,
  ...evaluationsMethods,
  ...datasetsIoMethods,
  ...modelsMethods,
  ...modelsExportMethods,
  ...chatMethods,
  ...hubMethods,
  ...samplesMethods,
  ...runsManageMethods,
  ...inferenceMethods,
};

export const events = {
  ...systemEvents,
  ...datasetsEvents,
  ...runsEvents,
  ...evaluationsEvents,
  ...datasetsIoEvents,
  ...modelsEvents,
  ...modelsExportEvents,
  ...chatEvents,
  ...hubEvents,
  ...inferenceEvents,
};

export type Methods = typeof methods;
export type MethodName = keyof Methods & string;
export type Events = typeof events;
export type EventName = keyof Events & string;

/** What a caller passes (before defaults/trimming). */
export type Params<M extends MethodName> = z.input<Methods[M]['input']>;
/** What a handler receives (parsed, defaults applied). */
export type ParsedParams<M extends MethodName> = z.output<Methods[M]['input']>;
/** What a caller gets back. */
export type Result<M extends MethodName> = z.output<Methods[M]['output']>;
export type EventPayload<E extends EventName> = z.output<Events[E]>;

/** Arguments of a call: params may be omitted when every field is optional. */
export type CallArgs<M extends MethodName> = {} extends Params<M> ? [params?: Params<M>] : [params: Params<M>];

/** The response of one call, as every transport delivers it. */
export type Envelope<T = unknown> = { ok: true; result: T } | { ok: false; error: ApiErrorData };

export function isMethodName(name: unknown): name is MethodName {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(methods, name);
}

export function isEventName(name: unknown): name is EventName {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(events, name);
}

/**
 * `window.lenslab` in Electron (exposed by the preload), and the shape every client transport implements.
 * Responses are envelopes (errors keep their code and field across the process boundary).
 */
export interface LenslabBridge {
  invoke<M extends MethodName>(method: M, params?: Params<M>): Promise<Envelope<Result<M>>>;
  /** Subscribe to one backend event; returns the unsubscribe function. */
  on<E extends EventName>(event: E, listener: (payload: EventPayload<E>) => void): () => void;
}

/** The typed client the renderer uses (src-renderer/api.ts: window.lenslab in Electron, the WebSocket in a browser). */
export interface LenslabClient {
  call<M extends MethodName>(method: M, ...args: CallArgs<M>): Promise<Result<M>>;
  on<E extends EventName>(event: E, listener: (payload: EventPayload<E>) => void): () => void;
}

export * from './errors';
export { defineEvents, defineMethods, type MethodDef } from './define';
