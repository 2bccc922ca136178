import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp';
import { makeZombie } from '../helpers/zombie';
import {
  acquireFolderLock,
  folderEntries,
  folderLockHolder,
  FolderBusyError,
  lockPath,
  readLock,
  releaseFolderLock,
} from '../../src-main/jobs/folder-lock';
import { processStartTime } from '../../src-main/util/pid';

const tmp = tempDir('folder-lock-');
after(() => tmp.cleanup());

test('the second taker is refused with the holder named; release frees it; a folder made for the lock goes', () => {
  const dir = join(tmp.dir, 'a');
  const lock = acquireFolderLock(dir, 'run 1, starting');
  assert.deepEqual(folderEntries(dir), [], 'a folder holding only its lock counts as empty');
  assert.throws(
    () => acquireFolderLock(dir, 'run 2, starting'),
    (e: unknown) =>
      e instanceof FolderBusyError &&
      e.holder.pid === process.pid &&
      new RegExp(`^run folder ${dir} is in use by process ${process.pid} \\(run 1, starting, since `).test(e.message),
  );
  assert.equal(folderLockHolder(dir)?.what, 'run 1, starting');
  lock.release();
  assert.equal(existsSync(dir), false, 'the folder was created for the lock and is empty again');
  const again = acquireFolderLock(dir, 'run 2');
  writeFileSync(join(dir, 'data.json'), '{}');
  again.release();
  assert.deepEqual(readdirSync(dir), ['data.json'], 'a folder the run wrote into stays');
});

test('handOver names the job process; only the named holder releases', async () => {
  const dir = join(tmp.dir, 'b');
  const lock = acquireFolderLock(dir, 'run 3, starting');
  const child = spawn('sleep', ['10']);
  await new Promise((r) => child.on('spawn', r));
  lock.handOver(child.pid!, 'run 3, job process');
  assert.equal(readLock(dir)?.pid, child.pid);
  assert.equal(readLock(dir)?.startTime, processStartTime(child.pid!));
  releaseFolderLock(dir, process.pid);
  assert.ok(existsSync(lockPath(dir)), 'not ours any more');
  assert.throws(() => acquireFolderLock(dir, 'x'), FolderBusyError);
  child.kill('SIGKILL');
  await new Promise((r) => child.on('exit', r));
  const next = acquireFolderLock(dir, 'run 3, resuming'); // the holder died: stale, taken over
  assert.equal(readLock(dir)?.pid, process.pid);
  next.release();
});

test('stale locks are taken over: dead pid, reused pid (other start time), zombie, unreadable', async () => {
  const cases: [string, () => Promise<{ pid: number; startTime: string | null; done?: () => void }>][] = [
    [
      'dead',
      async () => {
        const c = spawn(process.execPath, ['-e', '0']);
        await new Promise((r) => c.on('exit', r));
        return { pid: c.pid!, startTime: null };
      },
    ],
    ['reused', async () => ({ pid: process.pid, startTime: '1' })], // this pid, but not the process that took it
  ];
  if (process.platform === 'linux')
    cases.push([
      'zombie',
      async () => {
        const z = await makeZombie();
        return { pid: z.pid, startTime: null, done: z.done };
      },
    ]);
  for (const [name, make] of cases) {
    const dir = join(tmp.dir, `stale-${name}`);
    const h = await make();
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      lockPath(dir),
      JSON.stringify({ pid: h.pid, startTime: h.startTime, since: '2020-01-01T00:00:00.000Z', what: 'old' }),
    );
    assert.equal(folderLockHolder(dir), null, name);
    const l = acquireFolderLock(dir, 'new');
    assert.equal(readLock(dir)?.what, 'new', name);
    l.release();
    h.done?.();
  }
  const dir = join(tmp.dir, 'garbage');
  acquireFolderLock(dir, 'x');
  writeFileSync(lockPath(dir), 'not json');
  acquireFolderLock(dir, 'y').release();
});
