import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng, permutation, shuffleInPlace, deriveSeed } from '../../src-main/training/rng';

test('xoshiro128** matches the reference algorithm from a known state', () => {
  // Reference values: the C algorithm (Blackman & Vigna) from state {1,2,3,4}, computed by hand in Python.
  const r = Rng.fromState({ algo: 'xoshiro128**', s: [1, 2, 3, 4] });
  assert.deepEqual(
    [r.nextU32(), r.nextU32(), r.nextU32(), r.nextU32(), r.nextU32()],
    [11520, 0, 5927040, 70819200, 2031721883],
  );
});

test('same seed → same stream; different seeds differ', () => {
  const a = new Rng(7);
  const b = new Rng(7);
  const c = new Rng(8);
  const xa = Array.from({ length: 20 }, () => a.nextU32());
  const xb = Array.from({ length: 20 }, () => b.nextU32());
  const xc = Array.from({ length: 20 }, () => c.nextU32());
  assert.deepEqual(xa, xb);
  assert.notDeepEqual(xa, xc);
  assert.notEqual(deriveSeed(1, 0), deriveSeed(1, 1));
  assert.notEqual(deriveSeed(0x100000000), deriveSeed(0));
});

test('state round-trips through JSON and continues the same stream', () => {
  const r = new Rng(123);
  for (let i = 0; i < 10; i++) r.float();
  const saved = JSON.parse(JSON.stringify(r.state()));
  const cont = Array.from({ length: 10 }, () => r.normal());
  const r2 = Rng.fromState(saved);
  assert.deepEqual(
    Array.from({ length: 10 }, () => r2.normal()),
    cont,
  );
  assert.throws(() => Rng.fromState({ algo: 'xoshiro128**', s: [0, 0, 0, 0] }), /all-zero/);
  assert.throws(() => Rng.fromState({ algo: 'xoshiro128**', s: [1, 2, 3, -1] } as never), /unsigned 32-bit/);
});

test('float in [0,1), int unbiased over a range, normal has unit variance', () => {
  const r = new Rng(1);
  const counts = new Array(6).fill(0);
  let s = 0;
  let s2 = 0;
  const N = 60000;
  for (let i = 0; i < N; i++) {
    const f = r.float();
    assert.ok(f >= 0 && f < 1);
    counts[r.int(6)]++;
    const z = r.normal();
    s += z;
    s2 += z * z;
  }
  for (const c of counts) assert.ok(Math.abs(c - N / 6) < 0.05 * (N / 6), `count ${c}`);
  assert.ok(Math.abs(s / N) < 0.03);
  assert.ok(Math.abs(s2 / N - 1) < 0.05);
});

test('seeded Fisher–Yates gives a permutation, reproducible by seed', () => {
  const p = permutation(50, 9);
  assert.deepEqual(
    [...p].sort((a, b) => a - b),
    Array.from({ length: 50 }, (_, i) => i),
  );
  assert.deepEqual(permutation(50, 9), p);
  assert.notDeepEqual(permutation(50, 10), p);
  assert.deepEqual(shuffleInPlace([], new Rng(1)), []);
  // every position reachable: over many seeds, element 0 lands everywhere in a 5-permutation
  const seen = new Set<number>();
  for (let seed = 0; seed < 200; seed++) seen.add(permutation(5, seed).indexOf(0));
  assert.equal(seen.size, 5);
});
