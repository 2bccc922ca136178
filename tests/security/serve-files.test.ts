// Serving files must survive the file going away underneath (image garbage collection runs beside the server).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { ServerResponse } from 'node:http';
import { sendFile } from '../../src-main/transport/serve/static';
import { tempDir } from '../helpers/tmp';

const tmp = tempDir('sec-files-');
after(() => tmp.cleanup());

function fakeResponse(): {
  res: ServerResponse;
  body: Promise<string>;
  head: () => Record<string, string> | undefined;
} {
  const out = new PassThrough();
  let headers: Record<string, string> | undefined;
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const body = new Promise<string>((resolve, reject) => {
    out.on('end', () => resolve(Buffer.concat(chunks).toString()));
    out.on('error', reject);
  });
  const res = Object.assign(out, {
    writeHead: (_s: number, h: Record<string, string>) => (headers = h),
  }) as unknown as ServerResponse;
  return { res, body, head: () => headers };
}

test('a file removed right after it was chosen is still sent whole, without an unhandled stream error', async () => {
  const file = join(tmp.dir, 'img.png');
  writeFileSync(file, 'png-bytes');
  let uncaught: unknown;
  const onUncaught = (e: unknown) => (uncaught = e);
  process.on('uncaughtException', onUncaught);
  try {
    const { res, body, head } = fakeResponse();
    assert.equal(sendFile(res, file), true);
    rmSync(file); // before the stream had a chance to open it
    const timeout = new Promise<string>((_, reject) =>
      setTimeout(() => reject(new Error(`no complete body within 5 s (uncaught: ${String(uncaught)})`)), 5000).unref(),
    );
    assert.equal(await Promise.race([body, timeout]), 'png-bytes');
    assert.equal(head()?.['Content-Length'], '9');
    await new Promise((r) => setTimeout(r, 20));
  } finally {
    process.off('uncaughtException', onUncaught);
  }
  assert.equal(uncaught, undefined);
  // a missing file or a folder is simply not sent
  assert.equal(sendFile(fakeResponse().res, file), false);
  assert.equal(sendFile(fakeResponse().res, tmp.dir), false);
});
