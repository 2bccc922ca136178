import { handlers } from './context';
import { schemaVersion } from '../storage/database';
import { LENSLAB_VERSION } from './version';
import { vlmModelTypes } from '../models/registry';

export const systemHandlers = handlers({
  'system.info': (_p, ctx) => ({
    name: 'lenslab' as const,
    version: LENSLAB_VERSION,
    dataDir: ctx.dataDir,
    schemaVersion: schemaVersion(ctx.db),
    node: process.versions.node,
    platform: process.platform,
    host: ctx.host,
    modelTypes: vlmModelTypes(),
  }),
  'system.ping': (p) => ({
    pong: true as const,
    ...(p.echo === undefined ? {} : { echo: p.echo }),
    time: new Date().toISOString(),
  }),
});
