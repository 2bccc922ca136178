import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { pidAlive, processStartTime } from '../../src-main/util/pid';
import { makeZombie } from '../helpers/zombie';

test(
  'a zombie (exited, not reaped) is not alive, though signal 0 still reaches it',
  { skip: process.platform !== 'linux' && 'zombies are read from /proc' },
  async () => {
    const z = await makeZombie();
    try {
      process.kill(z.pid, 0); // the old check: no error for a zombie
      assert.equal(pidAlive(z.pid), false);
    } finally {
      z.done();
    }
  },
);

test('pidAlive: this process yes, an exited one no, nonsense no', async () => {
  assert.equal(pidAlive(process.pid), true);
  const c = spawn(process.execPath, ['-e', '0']);
  await new Promise((r) => c.on('exit', r));
  assert.equal(pidAlive(c.pid!), false);
  for (const bad of [0, -1, 1.5, Number.NaN]) assert.equal(pidAlive(bad), false);
});

test(
  'processStartTime tells two processes with the same pid apart and is stable for one',
  { skip: process.platform !== 'linux' && '/proc only' },
  async () => {
    const mine = processStartTime(process.pid);
    assert.match(mine ?? '', /^\d+$/);
    assert.equal(processStartTime(process.pid), mine);
    const c = spawn('sleep', ['5']);
    await new Promise((r) => c.on('spawn', r));
    await new Promise((r) => setTimeout(r, 30));
    const theirs = processStartTime(c.pid!);
    assert.match(theirs ?? '', /^\d+$/);
    assert.ok(Number(theirs) >= Number(mine));
    c.kill('SIGKILL');
    await new Promise((r) => c.on('exit', r));
    assert.equal(processStartTime(c.pid!), null);
  },
);
