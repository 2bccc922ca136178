// Where Lenslab keeps its data when no Electron userData is available (headless serve / CLI).
// Order: explicit --data-dir, then LENSLAB_DATA_DIR, then the platform's per-user data folder.
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export function defaultDataDir(
  platform: NodeJS.Platform = process.platform,
  env: NodeJS.ProcessEnv = process.env,
): string {
  const home = homedir();
  if (platform === 'win32') return join(env.APPDATA || join(home, 'AppData', 'Roaming'), 'Lenslab');
  if (platform === 'darwin') return join(home, 'Library', 'Application Support', 'Lenslab');
  return join(env.XDG_DATA_HOME || join(home, '.local', 'share'), 'lenslab');
}

export function resolveDataDir(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (explicit && explicit.trim()) return resolve(explicit);
  if (env.LENSLAB_DATA_DIR && env.LENSLAB_DATA_DIR.trim()) return resolve(env.LENSLAB_DATA_DIR);
  return defaultDataDir(process.platform, env);
}

/** The database file inside a data directory. */
export function databasePath(dataDir: string): string {
  return join(dataDir, 'lenslab.db');
}

/** The env variable that moves the compiled-graph cache (else it lives in the data directory). */
export const GRAPH_CACHE_ENV = 'LENSLAB_GRAPH_CACHE';

/**
 * The one compiled-graph cache of a data directory: chat, the CLI, evaluations and training jobs all compile into
 * it, so a graph built by one (say an evaluation's generation graphs) is a cache hit for the others, and one size
 * cap covers it. LENSLAB_GRAPH_CACHE overrides it.
 */
export function graphCacheDirOf(dataDir: string, env: NodeJS.ProcessEnv = process.env): string {
  const v = env[GRAPH_CACHE_ENV];
  return v && v.trim() ? resolve(v) : join(dataDir, 'cache', 'graphs');
}

/** The env variable that moves the image-feature cache (training/feature-cache.ts; else it lives in the data directory). */
export const FEATURE_CACHE_ENV = 'LENSLAB_FEATURE_CACHE';

/** The image-feature cache of a data directory: features of frozen image paths, shared by the runs on it. */
export function featureCacheDirOf(dataDir: string, env: NodeJS.ProcessEnv = process.env): string {
  const v = env[FEATURE_CACHE_ENV];
  return v && v.trim() ? resolve(v) : join(dataDir, 'cache', 'features');
}
