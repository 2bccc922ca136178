// Small schemas reused across domains.
import { z } from 'zod';

/** A database id (positive integer). */
export const Id = z.int().positive();
/** ISO-8601 UTC timestamp text, as stored. */
export const Timestamp = z.string();
/** Empty parameters. */
export const NoParams = z.strictObject({});
/** A user-visible name: trimmed, 1..100 characters, no control characters. */
export const Name = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .max(100, 'must be at most 100 characters')
  .refine((s) => !/[\u0000-\u001f\u007f]/.test(s), 'must not contain control characters');
/** A free-form JSON object (config blobs). */
export const JsonObject = z.record(z.string(), z.unknown());

/** Execution device of a run or a chat: 'auto' measures (engine/runtime/provider-choice.ts), the others are asked by name. */
export const Device = z.enum(['auto', 'cpu', 'webgpu', 'cuda']);
export type Device = z.infer<typeof Device>;
