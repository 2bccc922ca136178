// Calling a backend's dispatcher from tests, as every transport does: ok() returns the result and fails the
// test on an error envelope; fail() returns the error and fails the test if the call succeeded.
import assert from 'node:assert/strict';
import type { Backend } from '../../src-main/services/backend';
import type { ApiErrorData } from '../../src-main/contract/errors';

export async function okOn(backend: Backend, method: string, params?: unknown): Promise<any> {
  const env = await backend.dispatcher.dispatch(method, params);
  if (!env.ok) assert.fail(`${method} failed: ${JSON.stringify(env.error)}`);
  return env.result;
}

export async function failOn(backend: Backend, method: string, params?: unknown): Promise<ApiErrorData> {
  const env = await backend.dispatcher.dispatch(method, params);
  if (env.ok) assert.fail(`${method} unexpectedly succeeded: ${JSON.stringify(env.result)}`);
  return env.error;
}

/** ok/fail bound to the backend `current()` returns at call time (for a backend made in before/beforeEach). */
export function dispatchTo(current: () => Backend): {
  ok: (method: string, params?: unknown) => Promise<any>;
  fail: (method: string, params?: unknown) => Promise<ApiErrorData>;
} {
  return {
    ok: (method, params) => okOn(current(), method, params),
    fail: (method, params) => failOn(current(), method, params),
  };
}
