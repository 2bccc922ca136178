import type { CommandGroup } from './command';
import { UsageError, parse } from './command';
import { createBackend } from '../../services/backend';
import { startServer } from '../serve/server';

const usage = `lenslab serve [--port N] [--data-dir DIR] [--static DIR]

Serves the app to a browser on 127.0.0.1 only. Prints the URL to open; it carries a random
token that every request and socket must present. Stop with Ctrl+C.

  --port N        port to listen on (default: a free one)
  --static DIR    the built renderer (default: out/renderer; build it with npm run build)
  --json          print {url, port, token, dataDir} as one JSON line`;

export const serveCommand: CommandGroup = {
  name: 'serve',
  summary: 'serve the app to a browser on 127.0.0.1 (prints the URL with its token)',
  usage,
  async run(argv, ctx) {
    const { values } = parse(argv, { port: { type: 'string' }, static: { type: 'string' } }, false);
    let port = 0;
    if (values.port !== undefined) {
      if (!/^\d+$/.test(values.port) || Number(values.port) > 65535)
        throw new UsageError(`--port must be 0..65535, got ${values.port}`);
      port = Number(values.port);
    }
    const backend = createBackend({ dataDir: ctx.dataDir, host: 'serve' });
    let server;
    try {
      server = await startServer({ backend, port, staticDir: values.static, log: (l) => ctx.io.err(`[serve] ${l}`) });
    } catch (e) {
      backend.close();
      throw e;
    }
    if (ctx.json)
      ctx.io.out(JSON.stringify({ url: server.url, port: server.port, token: server.token, dataDir: ctx.dataDir }));
    else {
      ctx.io.out(`Lenslab is running. Data: ${ctx.dataDir}`);
      ctx.io.out(`Open ${server.url}`);
    }
    await new Promise<void>((resolveStop) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        void server.close().then(() => {
          backend.close();
          resolveStop();
        });
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    return 0;
  },
};
