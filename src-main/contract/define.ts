// Helpers to declare a domain's methods and events. A domain file exports
//   export const fooMethods = defineMethods({ 'foo.bar': { input: z.strictObject({...}), output: ... } });
//   export const fooEvents = defineEvents({ 'foo.changed': z.object({...}) });
// and index.ts merges it with one line each.
import type { z } from 'zod';

export interface MethodDef<I extends z.ZodType = z.ZodType, O extends z.ZodType = z.ZodType> {
  /** Parameters; use z.strictObject so unknown fields are reported. */
  input: I;
  output: O;
  /** One line for docs / CLI help. */
  summary?: string;
}

export function defineMethods<const T extends Record<string, MethodDef>>(methods: T): T {
  return methods;
}

export function defineEvents<const T extends Record<string, z.ZodType>>(events: T): T {
  return events;
}
