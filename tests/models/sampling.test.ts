import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Sampler,
  StopStrings,
  SamplingError,
  applyRepetitionPenalty,
  argmax,
  drawIndex,
  logSoftmax,
  nextTokenDistribution,
  processLogits,
  softmax,
} from '../../src-main/models/sampling';

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-7, what = '') {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol, `${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

// Hand-computed: softmax([1,2,3]) = e^k / (e + e^2 + e^3)
const P123 = [0.0900305732, 0.2447284711, 0.6652409558];

test('softmax / log-softmax against hand-computed values', () => {
  close(softmax([1, 2, 3]), P123, 1e-9, 'softmax');
  close(logSoftmax([1, 2, 3]), P123.map(Math.log), 1e-9, 'logSoftmax');
  // shift invariance and -Infinity → 0
  close(softmax([1001, 1002, 1003, -Infinity]), [...P123, 0], 1e-9, 'shifted');
});

test('greedy is argmax of the logits (first on ties), with or without top-k/top-p', () => {
  assert.equal(argmax([0.1, 3, -2, 3]), 1);
  assert.equal(argmax([-Infinity, -Infinity]), 0);
  const s = new Sampler({});
  assert.equal(s.greedy, true);
  assert.equal(s.next([0.5, 0.2, 0.9, 0.1], []), 2);
  assert.deepEqual(Array.from(nextTokenDistribution([0.5, 0.2, 0.9], [], { topK: 1, topP: 0.1 })), [0, 0, 1]);
});

test('temperature divides the logits', () => {
  // softmax([0.5, 1, 1.5]) by hand
  close(
    nextTokenDistribution([1, 2, 3], [], { temperature: 2 }),
    [0.1863237232, 0.3071958857, 0.5064803911],
    1e-9,
    'T=2',
  );
  close(nextTokenDistribution([1, 2, 3], [], { temperature: 1 }), P123, 1e-9, 'T=1');
  // low temperature sharpens: softmax([10, 20, 30]) ≈ [2.06e-9, 4.54e-5, 0.9999546]
  close(
    nextTokenDistribution([1, 2, 3], [], { temperature: 0.1 }),
    [2.06106e-9, 4.5397868e-5, 0.9999546],
    1e-9,
    'T=0.1',
  );
});

test('top-k keeps the k largest (ties with the k-th kept)', () => {
  // e^2 / (e^2 + e^3), e^3 / (e^2 + e^3)
  close(
    nextTokenDistribution([1, 2, 3], [], { temperature: 1, topK: 2 }),
    [0, 0.2689414214, 0.7310585786],
    1e-9,
    'k=2',
  );
  close(nextTokenDistribution([1, 2, 3], [], { temperature: 1, topK: 0 }), P123, 1e-9, 'k=0 off');
  close(nextTokenDistribution([1, 2, 3], [], { temperature: 1, topK: 5 }), P123, 1e-9, 'k>V off');
  close(nextTokenDistribution([1, 2, 2, 0], [], { temperature: 1, topK: 1 }), [0, 0.5, 0.5, 0], 1e-12, 'tie');
});

test('top-p keeps the smallest most-likely set reaching the mass (HF: remove cumulative-ascending <= 1 - p)', () => {
  // ascending cumulative: 0.0900 (<= 0.3: removed), 0.3348 (> 0.3: kept)
  close(
    nextTokenDistribution([1, 2, 3], [], { temperature: 1, topP: 0.7 }),
    [0, 0.2689414214, 0.7310585786],
    1e-9,
    'p=0.7',
  );
  // 1 - 0.6 = 0.4 >= 0.3348: only the top token left
  close(nextTokenDistribution([1, 2, 3], [], { temperature: 1, topP: 0.6 }), [0, 0, 1], 1e-12, 'p=0.6');
  // p = 0.95: 1 - p = 0.05 < 0.0900: all kept
  close(nextTokenDistribution([1, 2, 3], [], { temperature: 1, topP: 0.95 }), P123, 1e-9, 'p=0.95');
  // the most likely token survives any p
  close(nextTokenDistribution([1, 2, 3], [], { temperature: 1, topP: 0.01 }), [0, 0, 1], 1e-12, 'p tiny');
  // top-k then top-p: k=2 gives [0, .269, .731]; p=0.75 → cumulative ascending .269 <= .25? no → both kept
  close(
    nextTokenDistribution([1, 2, 3], [], { temperature: 1, topK: 2, topP: 0.75 }),
    [0, 0.2689414214, 0.7310585786],
    1e-9,
    'k+p',
  );
  // temperature applies before top-p: T=0.5 → softmax([2,4,6]) = [.01587624, .11731043, .86681333]; p=0.9: cumulative ascending .0159 <= .1 removed, .1332 kept
  close(
    nextTokenDistribution([1, 2, 3], [], { temperature: 0.5, topP: 0.9 }),
    [0, 0.119202922, 0.880797078],
    1e-9,
    'T then p',
  );
});

test('repetition penalty: positive logits divided, negative multiplied, once per distinct id, prompt included', () => {
  const s = Float64Array.from([2, -1, 0.5, 3]);
  applyRepetitionPenalty(s, [0, 1, 1, 1, 99], 2);
  assert.deepEqual(Array.from(s), [1, -2, 0.5, 3]);
  // changes the greedy choice: [3, 2.5] with id 0 seen and penalty 1.5 → [2, 2.5]
  assert.equal(new Sampler({ repetitionPenalty: 1.5 }).next([3, 2.5], [0]), 1);
  assert.equal(new Sampler({}).next([3, 2.5], [0]), 0);
  // logits are not modified in place by processLogits
  const logits = new Float32Array([2, -1]);
  processLogits(logits, [0, 1], { repetitionPenalty: 2 });
  assert.deepEqual(Array.from(logits), [2, -1]);
});

test('drawIndex inverts the cumulative distribution and never picks zero-mass tokens', () => {
  const p = [0.2, 0.3, 0, 0.5];
  assert.equal(drawIndex(p, 0), 0);
  assert.equal(drawIndex(p, 0.1999), 0);
  assert.equal(drawIndex(p, 0.2), 1);
  assert.equal(drawIndex(p, 0.49), 1);
  assert.equal(drawIndex(p, 0.5), 3);
  assert.equal(drawIndex(p, 0.9999999), 3);
  assert.equal(drawIndex([0, 0, 1, 0], 0.999), 2);
});

test('sampling is seeded: same seed same tokens, other seed other tokens, frequencies match the distribution', () => {
  const logits = [1, 2, 3, 0.5];
  const draw = (seed: number, n: number) => {
    const s = new Sampler({ temperature: 1, seed });
    return Array.from({ length: n }, () => s.next(logits, []));
  };
  assert.deepEqual(draw(7, 50), draw(7, 50));
  assert.notDeepEqual(draw(7, 50), draw(8, 50));
  const n = 40000;
  const counts = [0, 0, 0, 0];
  for (const t of draw(123, n)) counts[t]++;
  const p = softmax(logits);
  for (let i = 0; i < 4; i++) {
    const sd = Math.sqrt((p[i] * (1 - p[i])) / n);
    assert.ok(Math.abs(counts[i] / n - p[i]) < 5 * sd, `token ${i}: ${counts[i] / n} vs ${p[i]}`);
  }
  // top-k 2 never yields the two unlikely tokens
  const s = new Sampler({ temperature: 1.5, topK: 2, seed: 1 });
  for (let i = 0; i < 500; i++) assert.ok([1, 2].includes(s.next(logits, [])));
});

test('bad options are rejected naming the field', () => {
  assert.throws(
    () => new Sampler({ temperature: -1 }),
    (e: Error) => e instanceof SamplingError && /temperature/.test(e.message),
  );
  assert.throws(() => new Sampler({ topP: 0 }), /topP/);
  assert.throws(() => new Sampler({ topP: 1.5 }), /topP/);
  assert.throws(() => new Sampler({ topK: 1.5 }), /topK/);
  assert.throws(() => new Sampler({ repetitionPenalty: 0 }), /repetitionPenalty/);
  assert.throws(() => new Sampler({ temperature: NaN }), /temperature/);
});

test('stop strings: found at the earliest position, partial matches at the tail held back', () => {
  const st = new StopStrings(['\nUSER:', '###']);
  assert.deepEqual(st.check('The answer is 3.'), { stopped: false, end: 16 });
  assert.deepEqual(st.check('The answer is 3.\nUS'), { stopped: false, end: 16 });
  assert.deepEqual(st.check('The answer is 3.#'), { stopped: false, end: 16 });
  assert.deepEqual(st.check('The answer is 3.\nUSER: hi ###'), { stopped: true, end: 16 });
  assert.deepEqual(st.check('a ### b \nUSER:'), { stopped: true, end: 2 });
  assert.deepEqual(new StopStrings([]).check('abc'), { stopped: false, end: 3 });
  assert.deepEqual(new StopStrings(['']).check('abc'), { stopped: false, end: 3 }, 'empty stop strings ignored');
});
