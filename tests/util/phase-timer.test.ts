import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatPhases, PhaseTimer } from '../../src-main/util/phase-timer';
import { spinFromEnv } from '../../src-main/engine/runtime/session';

test('phase timer sums time and counts per phase, merges and formats largest first', async () => {
  const t = new PhaseTimer();
  t.add('run', 8);
  t.add('feeds', 1);
  t.add('run', 2);
  const v = await t.time('wait', () => new Promise<number>((r) => setTimeout(() => r(7), 5)));
  assert.equal(v, 7);
  const tot = t.totals();
  assert.equal(tot.ms.run, 10);
  assert.equal(tot.count.run, 2);
  assert.equal(tot.count.wait, 1);
  assert.ok(tot.ms.wait >= 4, `wait took ${tot.ms.wait} ms`);
  const other = new PhaseTimer();
  other.merge(tot);
  other.merge({ ms: { run: 10 }, count: { run: 3 } });
  assert.equal(other.totals().ms.run, 20);
  assert.equal(other.totals().count.run, 5);
  const s = formatPhases({ ms: { a: 1, b: 3 }, count: { a: 1, b: 1 } }, 2);
  assert.equal(s, 'b 75% (1.50 ms), a 25% (0.50 ms)');
  // a timed phase that throws is still counted
  await assert.rejects(
    t.time('bad', () => {
      throw new Error('x');
    }),
  );
  assert.equal(t.totals().count.bad, 1);
  t.reset();
  assert.deepEqual(t.totals(), { ms: {}, count: {} });
});

test('LENSLAB_ORT_SPIN parses 1/0 and names itself on a bad value', () => {
  assert.equal(spinFromEnv({}), undefined);
  assert.equal(spinFromEnv({ LENSLAB_ORT_SPIN: '1' }), true);
  assert.equal(spinFromEnv({ LENSLAB_ORT_SPIN: 'off' }), false);
  assert.throws(() => spinFromEnv({ LENSLAB_ORT_SPIN: 'maybe' }), /LENSLAB_ORT_SPIN/);
});
