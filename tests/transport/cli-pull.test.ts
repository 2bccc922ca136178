import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { runCli } from '../../src-main/cli';
import { BUNDLED_DEMO_DIR } from '../../src-main/services/models';
import { hubServiceOptions } from '../../src-main/services/hub';
import { FakeHub, filesOf } from '../helpers/fake-hub';
import { tempDir } from '../helpers/tmp';

const tmp = tempDir('cli-pull-');
const hub = new FakeHub();
const saved = { ...process.env };
before(async () => {
  await hub.start();
  hub.addRepo('lenslab/demo-llava', { files: filesOf(BUNDLED_DEMO_DIR) });
  process.env.HF_ENDPOINT = hub.endpoint;
  process.env.HF_HUB_CACHE = join(tmp.dir, 'hf');
  delete process.env.HF_TOKEN;
  hubServiceOptions.backoffMs = 5;
});
after(async () => {
  await hub.close();
  process.env = saved;
  tmp.cleanup();
});

async function cli(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(argv, { out: (t) => out.push(t), err: (t) => err.push(t) }, {});
  return { code, out: out.join('\n'), err: err.join('\n') };
}

test('lenslab pull downloads, resumes a cut transfer, registers; --cached and --catalog list', async () => {
  const dir = join(tmp.dir, 'data');
  hub.fault({ file: 'model.safetensors', kind: 'truncate', afterBytes: 500_000 });
  let r = await cli('pull', 'lenslab/demo-llava', '--data-dir', dir);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /model\.safetensors: the transfer of model\.safetensors (was cut short|broke off)/);
  assert.match(
    r.out,
    /lenslab\/demo-llava@[0-9a-f]{10}: .* downloaded, 0 B already in the cache\nFolder: .*models--lenslab--demo-llava\/snapshots\/[0-9a-f]{40}\nRegistered as model 1/,
  );
  r = await cli('pull', '--cached', '--json', '--data-dir', dir);
  const cached = JSON.parse(r.out);
  assert.equal(cached.snapshots[0].repo, 'lenslab/demo-llava');
  assert.equal(cached.snapshots[0].modelId, 1);
  r = await cli('pull', '--catalog', '--data-dir', dir);
  assert.equal(r.code, 0);
  assert.match(r.out, /BLIP VQA base .*not supported: BLIP family/);
  assert.match(r.out, /llava-hf\/llava-interleave-qwen-0\.5b-hf\s+1\.7 GiB/);
  r = await cli('pull', 'nobody/nothing', '--data-dir', dir);
  assert.equal(r.code, 1);
  assert.match(r.err, /error \(unauthorized\): nobody\/nothing needs a login .* set HF_TOKEN/);
  r = await cli('pull', '--data-dir', dir);
  assert.equal(r.code, 2);
});
