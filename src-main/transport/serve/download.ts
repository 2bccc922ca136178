// Downloads for the browser (serve mode), where a folder on the server is no use to the person at the browser:
//   GET /download/dataset/<id>.zip?format=llava|messages|imagefolder[&split=S]   datasets.export, zipped
//   GET /download/adapter/<runId>.zip[?step=N]                                    models.exportAdapter, zipped
//   GET /download/model/<id>.zip                                                  a registered model's folder
// Each export goes through the dispatcher into <data>/downloads/<random>, is streamed as a zip (images and
// weights stored, text deflated; one file read at a time) and removed when the response ends.
import { createReadStream, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { join, relative, sep } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Zip, ZipDeflate, ZipPassThrough } from 'fflate';
import type { Backend } from '../../services/backend';
import { ApiError } from '../../contract/errors';

export const DOWNLOAD_PREFIX = '/download/';
const ROUTE = /^\/download\/(dataset|adapter|model)\/(\d+)\.zip$/;

function files(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() || (e.isSymbolicLink() && statSync(p, { throwIfNoEntry: false })?.isFile())) out.push(p);
    }
  };
  walk(dir);
  return out.sort();
}

const STORED = /\.(png|jpe?g|webp|gif|safetensors|zip|gz|parquet)$/i;

/** Stream the files of `dir` as a zip, names relative to it. */
export async function sendZip(
  res: ServerResponse,
  dir: string,
  name: string,
  headers: Record<string, string>,
): Promise<void> {
  const list = files(dir);
  res.writeHead(200, {
    ...headers,
    'Content-Type': 'application/zip',
    'Content-Disposition': `attachment; filename="${name.replace(/[^A-Za-z0-9._-]/g, '_')}"`,
    'Cache-Control': 'no-store',
  });
  await new Promise<void>((resolve, reject) => {
    const zip = new Zip((err, chunk, final) => {
      if (err) return reject(err);
      res.write(Buffer.from(chunk));
      if (final) {
        res.end();
        resolve();
      }
    });
    (async () => {
      for (const f of list) {
        const entry = STORED.test(f)
          ? new ZipPassThrough(relative(dir, f).split(sep).join('/'))
          : new ZipDeflate(relative(dir, f).split(sep).join('/'), { level: 6 });
        zip.add(entry);
        for await (const c of createReadStream(f) as AsyncIterable<Buffer>) {
          entry.push(new Uint8Array(c.buffer, c.byteOffset, c.length));
          if (res.writableNeedDrain) await new Promise((r) => res.once('drain', r));
        }
        entry.push(new Uint8Array(0), true);
      }
      zip.end();
    })().catch(reject);
  });
}

export function isDownload(pathname: string): boolean {
  return pathname.startsWith(DOWNLOAD_PREFIX);
}

/** Answer a download request; errors are ApiErrors for the caller to send. */
export async function handleDownload(
  url: URL,
  res: ServerResponse,
  backend: Backend,
  headers: Record<string, string>,
): Promise<void> {
  const m = ROUTE.exec(url.pathname);
  if (!m)
    throw new ApiError(
      'not_found',
      `no download ${url.pathname} (dataset/<id>.zip, adapter/<runId>.zip, model/<id>.zip)`,
    );
  const [, kind, idText] = m;
  const id = Number(idText);
  const call = async (method: string, params: unknown) => {
    const env = await backend.dispatcher.dispatch(method, params);
    if (!env.ok) throw new ApiError(env.error.code, env.error.message, env.error.field);
    return env.result as Record<string, unknown>;
  };
  if (kind === 'model') {
    const model = (await call('models.get', { id })) as { name: string; path: string };
    await sendZip(res, model.path, `${model.name}.zip`, headers);
    return;
  }
  const tmp = join(backend.dataDir, 'downloads', randomUUID());
  mkdirSync(tmp, { recursive: true });
  try {
    if (kind === 'dataset') {
      const format = url.searchParams.get('format') ?? 'llava';
      const split = url.searchParams.get('split');
      const ds = (await call('datasets.get', { id })) as { name: string };
      await call('datasets.export', { datasetId: id, dir: join(tmp, 'out'), format, ...(split ? { split } : {}) });
      await sendZip(res, join(tmp, 'out'), `${ds.name}-${format}.zip`, headers);
    } else {
      const step = url.searchParams.get('step');
      await call('models.exportAdapter', {
        adapter: { runId: id, ...(step ? { step: Number(step) } : {}) },
        dir: join(tmp, 'out'),
      });
      await sendZip(res, join(tmp, 'out'), `run-${id}-adapter${step ? `-step-${step}` : ''}.zip`, headers);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
