import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatDuration,
  estimateEta,
  formatBytes,
  formatMetric,
  formatPercent,
} from '../../src-renderer/composables/format';
import { useUndoStack } from '../../src-renderer/composables/useUndoStack';
import { reconnectWatcher } from '../../src-renderer/composables/reconnect';
import { alignSeries, chartSummary, structureKey } from '../../src-renderer/composables/chartData';
import {
  defaultsOf,
  parseNumberInput,
  validateField,
  validateAll,
  type FieldSpec,
} from '../../src-renderer/composables/hyperparams';

test('formatDuration / estimateEta', () => {
  assert.equal(formatDuration(0), '0s');
  assert.equal(formatDuration(75), '1m 15s');
  assert.equal(formatDuration(3725), '1h 02m');
  assert.equal(formatDuration(90061), '1d 1h');
  assert.equal(formatDuration(-1), '—');
  assert.equal(formatDuration(NaN), '—');
  assert.equal(estimateEta(100, 25, 100), 300);
  assert.equal(estimateEta(100, 0, 100), null, 'unknown before the first step');
  assert.equal(estimateEta(100, 10, 0), null);
});

test('formatBytes / formatMetric / formatPercent', () => {
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(1536), '1.5 KB');
  assert.equal(formatBytes(3 * 1024 ** 3), '3.0 GB');
  assert.equal(formatBytes(300 * 1024 ** 2), '300 MB');
  assert.equal(formatMetric(0.000123), '1.23e-4');
  assert.equal(formatMetric(0.53123), '0.5312');
  assert.equal(formatMetric(12345.6), '12,346');
  assert.equal(formatMetric(null), '—');
  assert.equal(formatMetric(0), '0');
  assert.equal(formatPercent(0.4567), '45.7%');
});

test('useUndoStack: records, coalesces a typing burst, undo/redo, new edit clears redo', () => {
  const u = useUndoStack('a');
  u.record('ab', 'caption');
  u.record('abc', 'caption'); // same field: one step
  u.record('abc!', 'answer');
  assert.equal(u.present.value, 'abc!');
  assert.equal(u.undo(), 'abc');
  assert.equal(u.undo(), 'a', 'the typing burst undoes as one step');
  assert.equal(u.canUndo.value, false);
  assert.equal(u.undo(), undefined);
  assert.equal(u.redo(), 'abc');
  assert.equal(u.canRedo.value, true);
  u.record('abX', 'caption'); // after undo, typing in the same field starts a new step
  assert.equal(u.canRedo.value, false);
  assert.equal(u.undo(), 'abc');
  u.seal();
  u.reset('fresh');
  assert.equal(u.present.value, 'fresh');
  assert.equal(u.canUndo.value, false);
  const small = useUndoStack(0, 3);
  for (let i = 1; i <= 10; i++) small.record(i);
  let n = 0;
  while (small.undo() !== undefined) n++;
  assert.equal(n, 3, 'history is bounded');
});

test('alignSeries merges steps, fills gaps with null, drops non-positive values for log scale', () => {
  const train = {
    points: [
      { step: 1, value: 2 },
      { step: 2, value: 1.5 },
      { step: 3, value: 1.2 },
      { step: 4, value: 0 },
    ],
  };
  const evalS = {
    points: [
      { step: 4, value: 1.4 },
      { step: 2, value: 1.6 },
    ],
  };
  assert.deepEqual(alignSeries([train, evalS]), [
    [1, 2, 3, 4],
    [2, 1.5, 1.2, 0],
    [null, 1.6, null, 1.4],
  ]);
  assert.deepEqual(alignSeries([train], true), [
    [1, 2, 3, 4],
    [2, 1.5, 1.2, null],
  ]);
  // Duplicated step: last value wins; NaN becomes a gap.
  assert.deepEqual(
    alignSeries([
      {
        points: [
          { step: 1, value: 5 },
          { step: 1, value: 6 },
          { step: 2, value: NaN },
        ],
      },
    ]),
    [
      [1, 2],
      [6, null],
    ],
  );
  assert.deepEqual(alignSeries([]), [[]]);
});

test('chartSummary and structureKey', () => {
  const s = [
    {
      name: 'train',
      points: [
        { step: 1, value: 2 },
        { step: 2, value: null },
      ],
    },
    { name: 'eval', points: [] },
  ];
  assert.equal(chartSummary('Loss', s), 'Loss: train 2 at step 1 (2 points); eval no data');
  assert.equal(chartSummary('Loss', [{ name: 'a', points: [] }]), 'Loss: no data yet');
  assert.notEqual(structureKey(s), structureKey([s[0]]));
  assert.equal(
    structureKey(s),
    structureKey(s.map((x) => ({ ...x, points: [] }))),
    'points do not change the structure',
  );
});

const FIELDS: FieldSpec[] = [
  {
    key: 'method',
    label: 'Method',
    type: 'select',
    default: 'lora',
    options: [
      { value: 'lora', label: 'LoRA' },
      { value: 'projector', label: 'Projector only' },
    ],
  },
  { key: 'lr', label: 'Learning rate', type: 'number', default: 2e-4, min: 0, exclusiveMin: true, max: 1 },
  {
    key: 'rank',
    label: 'LoRA rank',
    type: 'number',
    default: 8,
    min: 1,
    max: 256,
    integer: true,
    visibleWhen: (v) => v.method === 'lora',
  },
  {
    key: 'warmup',
    label: 'Warmup steps',
    type: 'number',
    default: 10,
    min: 0,
    integer: true,
    check: (v, all) =>
      typeof v === 'number' && v > Number(all.steps) ? 'Warmup must not exceed the number of steps' : null,
  },
  { key: 'steps', label: 'Steps', type: 'number', default: 100, min: 1, integer: true },
  { key: 'name', label: 'Run name', type: 'text', default: '', required: true, maxLength: 10 },
];

test('hyperparams: defaults, number parsing and messages in words', () => {
  const d = defaultsOf(FIELDS);
  assert.deepEqual(d, { method: 'lora', lr: 2e-4, rank: 8, warmup: 10, steps: 100, name: '' });
  assert.equal(parseNumberInput('3e-4'), 3e-4);
  assert.equal(parseNumberInput(' 16 '), 16);
  assert.equal(parseNumberInput('1,000'), 1000);
  assert.equal(parseNumberInput('.5'), 0.5);
  assert.equal(parseNumberInput('abc'), null);
  assert.equal(parseNumberInput('1e'), null);
  assert.equal(parseNumberInput(''), null);
  const lr = FIELDS[1];
  assert.equal(validateField(lr, 0, d), 'Must be greater than 0');
  assert.equal(validateField(lr, 2, d), 'Must be at most 1');
  assert.equal(validateField(lr, null, d, 'fast'), '“fast” is not a number');
  assert.equal(validateField(lr, null, d, ''), 'Required');
  assert.equal(validateField(FIELDS[2], 2.5, d), 'Must be a whole number');
  assert.equal(validateField(FIELDS[2], 0, d), 'Must be at least 1');
  assert.equal(validateField(FIELDS[0], 'full', d), 'Choose one of the options');
  assert.equal(validateField(FIELDS[5], 'a very long name', d), 'At most 10 characters');
});

test('validateAll skips hidden fields and runs cross-field checks', () => {
  const values = { method: 'projector', lr: 1e-3, rank: 0, warmup: 200, steps: 100, name: 'x' };
  const errors = validateAll(FIELDS, values);
  assert.deepEqual(
    errors,
    { warmup: 'Warmup must not exceed the number of steps' },
    'rank is hidden for projector-only',
  );
  const raw = validateAll(FIELDS, { ...values, method: 'lora' }, { lr: '1e-3x' });
  assert.deepEqual(Object.keys(raw).sort(), ['lr', 'rank', 'warmup']);
  assert.equal(raw.lr, '“1e-3x” is not a number');
});

import { describeError } from '../../src-renderer/composables/errors';
test('describeError gives a title in words for API error codes and keeps the field', () => {
  const e = Object.assign(new Error('invalid params: name: must not be empty'), {
    code: 'invalid_request',
    field: 'name',
  });
  assert.deepEqual(describeError(e), {
    title: 'Please check the input',
    message: 'invalid params: name: must not be empty',
    field: 'name',
  });
  assert.equal(describeError(new TypeError('Failed to fetch')).title, 'Lost the connection to Lenslab');
  assert.deepEqual(describeError('plain words'), { title: 'Something went wrong', message: 'plain words' });
  assert.equal(describeError(new Error('boom'), 'Import failed').title, 'Import failed');
});

import { emaSmooth } from '../../src-renderer/composables/chartData';
test('emaSmooth is debiased, keeps nulls, and is the identity at weight 0', () => {
  const pts = [
    { step: 1, value: 10 },
    { step: 2, value: null },
    { step: 3, value: 0 },
  ];
  const s = emaSmooth(pts, 0.5);
  assert.equal(s[0].value, 10, 'first point is not pulled towards zero');
  assert.equal(s[1].value, null);
  // last = 0.5*5 + 0.5*0 = 2.5, debias 1 - 0.25 = 0.75 -> 3.333…
  assert.ok(Math.abs((s[2].value as number) - 10 / 3) < 1e-12);
  assert.deepEqual(emaSmooth(pts, 0), pts);
});

import { flatRange, tickLabels, yAxisSize, logTickFilter, logRange } from '../../src-renderer/composables/chartData';

test('flatRange: a lone value gets a range around it (not crossing zero for non-negative data); differing min/max keep the default', () => {
  assert.deepEqual(flatRange(2000, 2000), [1800, 2200]);
  assert.deepEqual(flatRange(1, 1), [0, 2]);
  assert.deepEqual(flatRange(0, 0, 1), [0, 1]);
  assert.deepEqual(flatRange(0.5, 0.5, 0), [0.45, 0.55]);
  assert.deepEqual(flatRange(-4, -4, 0), [-4.4, -3.6]);
  assert.equal(flatRange(1, 2), null);
  assert.equal(flatRange(null, null), null);
  // nearly flat (a cosine schedule's first steps): a range around it, not uPlot's sliver
  const r = flatRange(2e-4 * (1 - 1e-11), 2e-4, 0)!;
  assert.ok(r && Math.abs(r[0] - 1.8e-4) < 1e-12 && Math.abs(r[1] - 2.2e-4) < 1e-12, `${r}`);
  assert.equal(flatRange(0.199, 0.2, 0), null);
});

test('tickLabels: more digits only when the format gives two ticks the same label', () => {
  const exp1 = (v: number) => v.toExponential(1).replace('e+', 'e');
  assert.deepEqual(tickLabels([0.001997, 0.001998, 0.001999, null], exp1), ['0.001997', '0.001998', '0.001999', '']);
  assert.deepEqual(tickLabels([0, 0.001, 0.002], exp1), ['0.0e0', '1.0e-3', '2.0e-3']);
  assert.deepEqual(
    tickLabels([0.0019, 0.00195, 0.002], (v) => String(Number(v.toPrecision(2)))),
    ['0.0019', '0.00195', '0.002'],
  );
});

test('yAxisSize: wide enough for the widest tick label, 40 px at least', () => {
  assert.equal(yAxisSize([]), 40);
  assert.equal(yAxisSize([10, 20]), 40);
  const w = yAxisSize([18, 44.3, 30]);
  assert.ok(w >= 44.3 + 4 + 5, `${w}`);
  assert.ok(yAxisSize([60]) > yAxisSize([44]));
});

test('logTickFilter: a log axis labels powers of ten, not the odd value where its range starts', () => {
  const splits = [0.001164, 0.002, 0.003, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2];
  assert.deepEqual(logTickFilter(splits), [null, null, null, null, 0.01, null, null, 0.1, null]);
  // less than a decade: 1/2/5 steps instead
  assert.deepEqual(logTickFilter([0.15, 0.2, 0.3, 0.4, 0.5]), [null, 0.2, null, null, 0.5]);
  // nothing nice: every whole mantissa, else every tick as it came
  assert.deepEqual(logTickFilter([0.31, 0.4, 0.6]), [null, 0.4, 0.6]);
  assert.deepEqual(logTickFilter([0.31, 0.33]), [0.31, 0.33]);
});

test("logRange: hugs the data from a one-digit bottom, so uPlot's log splits step onto the next power of ten", () => {
  // a loss curve whose minimum was 0.1148 gave the bottom 0.0998: uPlot stepped to 0.11 and never ended
  assert.deepEqual(logRange(0.1148, 2), [0.09, 2.3]);
  assert.deepEqual(logRange(0.0115, 0.5), [0.01, 0.575]);
  assert.deepEqual(logRange(null, 1), [0.1, 10]);
  assert.deepEqual(logRange(0, 1), [0.1, 10]);
  // uPlot's rule: from the bottom, add 10^e and round to e's decimals until the next power of ten
  for (let x = 1e-9; x < 1e4; x *= 1.0137) {
    const [lo, hi] = logRange(x, 10 * x);
    assert.ok(lo <= x / 1.15 && lo > x / 1.15 / 10, `${x}: bottom ${lo}`);
    const e = Math.floor(Math.log10(lo) + 1e-9);
    const dec = Math.max(0, -e);
    let split = lo;
    while (split < Math.pow(10, e + 1) - 1e-12 * Math.pow(10, e + 1))
      split = Number((split + Math.pow(10, e)).toFixed(dec));
    assert.equal(split, Number(`1e${e + 1}`), `${x}: from ${lo} the steps of 1e${e} pass the decade at ${split}`);
    assert.ok(hi >= 10 * x);
  }
});

test('reconnectWatcher: called when the connection is open again after being lost, not on the first open', () => {
  let calls = 0;
  const w = reconnectWatcher(() => calls++);
  for (const s of ['connecting', 'closed', 'connecting', 'open'] as const) w(s); // failed tries before the first open
  assert.equal(calls, 0);
  w('open');
  assert.equal(calls, 0, 'open again without a loss is not a reconnect');
  for (const s of ['closed', 'connecting', 'closed', 'connecting'] as const) w(s);
  assert.equal(calls, 0);
  w('open');
  assert.equal(calls, 1);
  w('closed');
  w('open');
  assert.equal(calls, 2);
});
