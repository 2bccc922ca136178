import { z } from 'zod';
import { defineEvents, defineMethods } from './define';
import { NoParams } from './common';

export const SystemInfo = z.object({
  name: z.literal('lenslab'),
  version: z.string(),
  /** Where data (database, images, models, runs) is kept. */
  dataDir: z.string(),
  schemaVersion: z.int(),
  node: z.string(),
  platform: z.string(),
  /** 'electron' | 'serve' | 'cli' | 'test' — how the backend is hosted. */
  host: z.string(),
  /** config.json model_type values of the vision-language families this build loads (training presets check it). */
  modelTypes: z.array(z.string()).optional(),
});
export type SystemInfo = z.infer<typeof SystemInfo>;

export const systemMethods = defineMethods({
  'system.info': { input: NoParams, output: SystemInfo, summary: 'Version, data directory and host of the backend.' },
  'system.ping': {
    input: z.strictObject({ echo: z.string().max(1000).optional() }),
    output: z.object({ pong: z.literal(true), echo: z.string().optional(), time: z.string() }),
    summary: 'Round trip check.',
  },
});

export const systemEvents = defineEvents({
  /** A human-readable notice from the backend (warnings, long-running progress text). */
  'system.notice': z.object({ level: z.enum(['info', 'warning', 'error']), message: z.string() }),
});
