// runs.progress coalescing: at most one event per run per interval, each carrying every step since the previous
// one, in order; a status change, evaluation or checkpoint first sends the steps before it.
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { ProgressBatcher } from '../../src-main/services/training-runtime';
import type { ServiceContext } from '../../src-main/services/context';

function fakeContext() {
  const sent: { event: string; payload: any }[] = [];
  const ctx = { emit: (event: string, payload: unknown) => sent.push({ event, payload }) } as unknown as ServiceContext;
  return { ctx, sent };
}
const point = (step: number) => ({ step, metrics: { loss: 1 / step } });

test('the first step goes out at once, the next ones together after the interval, none lost or repeated', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000 });
  const { ctx, sent } = fakeContext();
  const b = new ProgressBatcher(ctx, 100);
  b.add(7, 50, point(1));
  assert.equal(sent.length, 1, 'step 1 at once');
  assert.deepEqual(sent[0].payload, { runId: 7, step: 1, totalSteps: 50, metrics: { loss: 1 }, points: [point(1)] });
  for (let s = 2; s <= 6; s++) {
    t.mock.timers.tick(10);
    b.add(7, 50, point(s));
  }
  assert.equal(sent.length, 1, 'steps 2..6 wait for the interval');
  t.mock.timers.tick(50);
  assert.equal(sent.length, 2);
  assert.deepEqual(
    sent[1].payload.points.map((p: any) => p.step),
    [2, 3, 4, 5, 6],
  );
  assert.equal(sent[1].payload.step, 6);
  assert.deepEqual(sent[1].payload.metrics, point(6).metrics);
  // runs are batched separately
  b.add(8, null, point(1));
  assert.equal(sent.length, 3, 'another run is not held back by this one');
  assert.equal(sent[2].payload.runId, 8);
  assert.equal(sent[2].payload.totalSteps, null);
});

test('flush sends the pending steps before another event; flushAll leaves no timer behind', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000 });
  const { ctx, sent } = fakeContext();
  const b = new ProgressBatcher(ctx, 100);
  b.add(1, 10, point(1));
  b.add(1, 10, point(2));
  b.add(1, 10, point(3));
  b.flush(1);
  assert.deepEqual(
    sent.map((e) => e.payload.points.map((p: any) => p.step)),
    [[1], [2, 3]],
  );
  b.flush(1);
  assert.equal(sent.length, 2, 'nothing pending, nothing sent');
  t.mock.timers.tick(500);
  assert.equal(sent.length, 2, 'the flushed batch does not go out again from its timer');

  b.add(1, 10, point(4)); // interval passed: at once
  b.add(1, 10, point(5));
  b.add(2, 10, point(1));
  b.add(2, 10, point(2));
  b.flushAll();
  assert.deepEqual(
    sent.slice(2).map((e) => [e.payload.runId, e.payload.points.map((p: any) => p.step)]),
    [
      [1, [4]],
      [2, [1]],
      [1, [5]],
      [2, [2]],
    ],
  );
  t.mock.timers.tick(1_000);
  assert.equal(sent.length, 6);
});

test('after a run stops (forget), its first step after a resume goes out at once', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000 });
  const { ctx, sent } = fakeContext();
  const b = new ProgressBatcher(ctx, 100);
  b.add(3, 10, point(1));
  b.add(3, 10, point(2));
  b.forget(3);
  assert.equal(sent.length, 2, 'the pending step went out with the stop');
  b.add(3, 10, point(3));
  assert.equal(sent.length, 3);
  assert.deepEqual(sent[2].payload.points, [point(3)]);
});
