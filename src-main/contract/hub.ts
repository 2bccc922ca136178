// Getting models from the Hugging Face Hub: the catalog of models Lenslab supports (download size, memory it needs
// here, fits or not), pulls into the standard Hub cache (started by hub.pull, followed with hub.progress events,
// stopped with hub.cancel and resumed by pulling again), and the snapshots already in that cache. Pure TS + zod.
import { z } from 'zod';
import { defineEvents, defineMethods } from './define';
import { Id, Name, NoParams, Timestamp } from './common';

export const CatalogEntry = z.object({
  id: z.string(),
  title: z.string(),
  description: z.string(),
  sources: z.array(
    z.object({
      repo: z.string(),
      role: z.enum(['vlm', 'vision', 'text']),
      downloadBytes: z.number(),
      cached: z.boolean(),
    }),
  ),
  compose: z.boolean(),
  supported: z.boolean(),
  note: z.string().nullable(),
  modelType: z.string(),
  params: z.number(),
  downloadBytes: z.number(),
  chatBytes: z.number().nullable(),
  trainBytes: z.number().nullable(),
  fit: z.enum(['fits', 'chat-only', 'too-big']).nullable(),
});
export type CatalogEntry = z.infer<typeof CatalogEntry>;

export const PullProgress = z.object({
  phase: z.enum(['resolving', 'downloading', 'verifying', 'done']),
  file: z.string().nullable(),
  bytes: z.number(),
  totalBytes: z.number(),
  filesDone: z.int(),
  filesTotal: z.int(),
  bytesPerSecond: z.number().nullable(),
  etaSeconds: z.number().nullable(),
  retries: z.int(),
  message: z.string().nullable(),
});

export const Pull = z.object({
  id: z.string(),
  repo: z.string(),
  revision: z.string(),
  status: z.enum(['running', 'done', 'failed', 'cancelled']),
  progress: PullProgress,
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
  /** The snapshot folder once done. */
  dir: z.string().nullable(),
  commit: z.string().nullable(),
  downloadedBytes: z.number(),
  reusedBytes: z.number(),
  /** The registered model (a new one, or the one already registered for this folder). */
  modelId: Id.nullable(),
  startedAt: Timestamp,
  finishedAt: Timestamp.nullable(),
});
export type Pull = z.infer<typeof Pull>;

const RepoRef = z.string().min(1).max(300);

export const hubMethods = defineMethods({
  'hub.catalog': {
    input: NoParams,
    output: z.object({
      entries: z.array(CatalogEntry),
      endpoint: z.string(),
      cacheDir: z.string(),
      tokenSet: z.boolean(),
      availableBytes: z.number(),
      totalBytes: z.number(),
    }),
    summary: 'Models Lenslab supports (and those it does not yet, with the reason), their size and memory needs here.',
  },
  'hub.pull': {
    input: z.strictObject({
      /** ORG/NAME or ORG/NAME@REVISION. */
      repo: RepoRef,
      revision: z.string().min(1).max(200).optional(),
      /** Name of the registered model (default ORG/NAME). */
      name: Name.optional(),
      /** Register the snapshot as a model when done (default true). */
      register: z.boolean().optional(),
    }),
    output: z.object({ pull: Pull }),
    summary:
      'Start downloading a model into the Hub cache (progress as hub.progress events; a pull of the same repo already running is returned).',
  },
  'hub.pulls': {
    input: NoParams,
    output: z.object({ pulls: z.array(Pull) }),
    summary: 'Pulls of this session, newest first.',
  },
  'hub.cancel': {
    input: z.strictObject({ id: z.string().min(1).max(100) }),
    output: z.object({ cancelled: z.boolean() }),
    summary: 'Stop a pull; the bytes downloaded so far are kept and the next pull resumes from them.',
  },
  'hub.cached': {
    input: NoParams,
    output: z.object({
      cacheDir: z.string(),
      snapshots: z.array(
        z.object({
          repo: z.string(),
          commit: z.string(),
          refs: z.array(z.string()),
          dir: z.string(),
          files: z.array(z.string()),
          bytes: z.number(),
          modelId: Id.nullable(),
        }),
      ),
    }),
    summary: 'Model snapshots already in the Hub cache (downloaded by Lenslab or by Python tools).',
  },
});

export const hubEvents = defineEvents({
  'hub.progress': Pull,
});
