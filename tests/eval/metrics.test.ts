import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  normalizeVqaAnswer,
  majorityBaseline,
  processPunctuation,
  vqaExactMatch,
  vqaAccuracy,
  tokenizeCaption,
  corpusBleu,
  sentenceBleu,
  corpusCider,
  scorePredictions,
  captionBaseline,
} from '../../src-main/eval/metrics';

const close = (a: number, b: number, tol = 1e-9, msg = '') => assert.ok(Math.abs(a - b) <= tol, `${msg} ${a} vs ${b}`);

test('VQA normalisation follows the official script', () => {
  assert.equal(normalizeVqaAnswer('The Two dogs.'), '2 dogs');
  assert.equal(normalizeVqaAnswer('  Yes\n'), 'yes');
  assert.equal(normalizeVqaAnswer('an apple'), 'apple');
  assert.equal(normalizeVqaAnswer('none'), '0');
  assert.equal(normalizeVqaAnswer('ten'), '10');
  assert.equal(normalizeVqaAnswer('dont'), "don't");
  assert.equal(normalizeVqaAnswer('Isnt it'), "isn't it");
  // a mark touching no space becomes a space; one touching a space is deleted
  assert.equal(normalizeVqaAnswer('red-and-white'), 'red and white');
  assert.equal(normalizeVqaAnswer('hello , world'), 'hello world');
  // a digit,digit comma anywhere makes every mark be deleted
  assert.equal(normalizeVqaAnswer('10,000'), '10000');
  // periods go unless a digit follows
  assert.equal(normalizeVqaAnswer('3.5'), '3.5');
  assert.equal(normalizeVqaAnswer('yes.'), 'yes');
  assert.equal(processPunctuation('a/b'), 'a b');
  assert.equal(normalizeVqaAnswer('(left)'), 'left');
});

test('VQA exact match and soft accuracy', () => {
  assert.equal(vqaExactMatch('Two', ['2']), 1);
  assert.equal(vqaExactMatch('the cat', ['dog', 'cat']), 1);
  assert.equal(vqaExactMatch('cats', ['cat']), 0);
  const refs = (k: number) => [...Array(k).fill('yes'), ...Array(10 - k).fill('no')];
  // k matching humans out of 10: leave-one-out mean of min(1, matches/3)
  close(vqaAccuracy('yes', refs(2)), (2 * (1 / 3) + 8 * (2 / 3)) / 10);
  close(vqaAccuracy('Yes!', refs(3)), (3 * (2 / 3) + 7 * 1) / 10);
  close(vqaAccuracy('yes', refs(4)), 1);
  close(vqaAccuracy('maybe', refs(4)), 0);
  assert.equal(vqaAccuracy('blue', ['Blue']), 1); // one reference: exact match
  assert.throws(() => vqaExactMatch('x', []), /no reference/);
});

test("caption tokenisation is PTB tokenisation with coco-caption's punctuation dropped", () => {
  assert.deepEqual(tokenizeCaption('A man, riding a horse.'), ['a', 'man', 'riding', 'a', 'horse']);
  assert.deepEqual(tokenizeCaption("It's 'quoted'!"), ['it', "'s", 'quoted']);
  // Stanford PTBTokenizer's documented example ("Oh , no , '' she 's saying , `` our $ 400 blender ca n't …"),
  // lowercased and without the tokens coco-caption drops
  assert.equal(
    tokenizeCaption('"Oh, no," she\'s saying, "our $400 blender can\'t handle something this hard!"').join(' '),
    "oh no she 's saying our $ 400 blender ca n't handle something this hard",
  );
  // hyphenated words, decimals, thousands, slashes, abbreviations and acronyms stay whole; cannot and brackets split
  assert.deepEqual(tokenizeCaption('A black-and-white photo of Mr. Smith in the U.S.'), [
    'a',
    'black-and-white',
    'photo',
    'of',
    'mr.',
    'smith',
    'in',
    'the',
    'u.s.',
  ]);
  assert.deepEqual(tokenizeCaption('The 3.5 ft. dog (brown) -- cannot run... 50% of 1,000'), [
    'the',
    '3.5',
    'ft.',
    'dog',
    'brown',
    'can',
    'not',
    'run',
    '50',
    '%',
    'of',
    '1,000',
  ]);
  // curly quotes and apostrophes, dashes
  assert.deepEqual(tokenizeCaption("dogs' toys and/or cats\u2019 toys \u2014 \u201cnice\u201d"), [
    'dogs',
    'toys',
    'and/or',
    'cats',
    'toys',
    'nice',
  ]);
  assert.deepEqual(tokenizeCaption('A woman wearing a net on her head cutting a cake. '), [
    'a',
    'woman',
    'wearing',
    'a',
    'net',
    'on',
    'her',
    'head',
    'cutting',
    'a',
    'cake',
  ]);
});

test('BLEU-4 after PTB tokenisation: a hand-computed case (checked with tests/eval/reference_metrics.py)', () => {
  // hyp: a dog 's ball on the red mat (8) · refs: the dog 's ball is on the red mat (9), a ball on a mat (5)
  // clipped matches 8/8, 6/7, 3/6, 1/5; closest reference length 9 → BP = exp(1 − 9/8)
  const r = corpusBleu([
    {
      hypothesis: "A dog's ball, on the red mat.",
      references: ["The dog's ball is on the red mat", 'a ball on a mat'],
    },
  ]);
  assert.deepEqual(r.matches, [8, 6, 3, 1]);
  assert.deepEqual(r.totals, [8, 7, 6, 5]);
  assert.equal(r.hypothesisLength, 8);
  assert.equal(r.referenceLength, 9);
  close(r.bleu, Math.exp(1 - 9 / 8) * Math.pow((8 / 8) * (6 / 7) * (3 / 6) * (1 / 5), 1 / 4), 1e-15);
  close(r.bleu, 0.47750342648354643, 1e-15, 'the Python reference on the same tokens');
});

test('BLEU: hand-computed cases', () => {
  // identical → 1
  close(corpusBleu([{ hypothesis: 'the cat sat on the mat', references: ['the cat sat on the mat'] }]).bleu, 1);
  // Papineni et al. 2002's example: modified unigram precision 2/7, hyp length 7 = closest ref length 7
  const r = corpusBleu(
    [{ hypothesis: 'the the the the the the the', references: ['the cat is on the mat', 'there is a cat on the mat'] }],
    { maxN: 1 },
  );
  close(r.bleu, 2 / 7);
  assert.equal(r.brevityPenalty, 1);
  // brevity penalty: 4-word hypothesis all matching, reference of 8 words
  const bp = corpusBleu([{ hypothesis: 'a b c d', references: ['a b c d e f g h'] }]);
  close(bp.brevityPenalty, Math.exp(1 - 8 / 4));
  close(bp.bleu, Math.exp(1 - 8 / 4)); // all precisions 1
  // closest reference length, tie → shorter: hyp 5, refs 4 and 6 → 4, so no penalty
  assert.equal(corpusBleu([{ hypothesis: 'a b c d e', references: ['a b c d', 'a b c d e f'] }]).referenceLength, 4);
  // no 4-gram match → 0 without smoothing, > 0 with add-one
  const noFour = [{ hypothesis: 'a b c x d e f', references: ['a b c y d e f'] }];
  assert.equal(corpusBleu(noFour).bleu, 0);
  const add1 = corpusBleu(noFour, { smoothing: 'add-one' });
  // p1 = 6/7, p2 = (4+1)/(6+1), p3 = (2+1)/(5+1), p4 = (0+1)/(4+1)
  close(add1.bleu, Math.pow((6 / 7) * (5 / 7) * (3 / 6) * (1 / 5), 1 / 4));
  close(corpusBleu(noFour, { smoothing: 'epsilon' }).precisions[3], 0.1 / 4);
  close(sentenceBleu('a b c x d e f', ['a b c y d e f']), add1.bleu);
});

// Values from tests/eval/reference_metrics.py (an independent Python rendering of the pycocoevalcap formulas).
const CORPUS: { hypothesis: string; references: string[] }[] = [
  {
    hypothesis: 'a man is riding a horse on the beach',
    references: [
      'a man rides a horse on the beach',
      'a person riding a horse near the ocean',
      'man on a horse at the beach',
    ],
  },
  {
    hypothesis: 'two dogs play in the snow',
    references: ['two dogs are playing in the snow', 'a pair of dogs playing in snow'],
  },
  {
    hypothesis: 'a red car',
    references: ['a red car parked on the street', 'a small red car on a road', 'red car next to a curb'],
  },
  {
    hypothesis: 'a plate of food with broccoli',
    references: ['a plate with broccoli and rice', 'a white plate of food with broccoli', 'food on a plate'],
  },
];

test('BLEU-1..4 match the Python reference on a small corpus', () => {
  const expected = [0.8089554940358792, 0.7557251975767142, 0.6569331445162494, 0.5373891136394127];
  const r4 = corpusBleu(CORPUS);
  assert.deepEqual(r4.matches, [22, 16, 9, 4]);
  assert.deepEqual(r4.totals, [24, 20, 16, 12]);
  assert.equal(r4.hypothesisLength, 24);
  assert.equal(r4.referenceLength, 27);
  for (let n = 1; n <= 4; n++) close(corpusBleu(CORPUS, { maxN: n }).bleu, expected[n - 1], 1e-12, `BLEU-${n}`);
  // by hand: BLEU-1 = 22/24 · exp(1 − 27/24)
  close(expected[0], (22 / 24) * Math.exp(1 - 27 / 24), 1e-12);
});

test('CIDEr-D matches the Python reference on a small corpus', () => {
  const r = corpusCider(CORPUS);
  const per = [3.2392257538823026, 2.5724487041725776, 2.554216365720982, 4.022760046862973];
  r.perItem.forEach((v, i) => close(v, per[i], 1e-9, `item ${i}`));
  close(r.cider, 3.0971627176597085, 1e-9);
});

test('CIDEr-D: hand-computed cases', () => {
  // Two items with disjoint vocabularies, hypothesis = its single reference: every n-gram has df 1, so each order's
  // cosine is 1, lengths are equal (no penalty) → 10 · mean(1,1,1,1) = 10.
  const same = corpusCider([
    { hypothesis: 'red apple on table', references: ['red apple on table'] },
    { hypothesis: 'blue sky over sea', references: ['blue sky over sea'] },
  ]);
  close(same.perItem[0], 10);
  close(same.cider, 10);
  // n-grams present in every item's references get idf 0 and count for nothing
  const shared = corpusCider([
    { hypothesis: 'a a', references: ['a a'] },
    { hypothesis: 'a a', references: ['a a'] },
  ]);
  assert.equal(shared.cider, 0);
  // Gaussian length penalty: hypothesis "x y z w" against reference "x y z w p q" (+2 words) in a 2-item corpus.
  // Only orders whose hyp n-grams all occur in the ref contribute; with idf w = log 2 for every n-gram,
  // cos_n = (#hyp n-grams · w²)/(sqrt(#hyp)·w · sqrt(#ref)·w) = sqrt(#hyp n-grams / #ref n-grams).
  const pen = corpusCider([
    { hypothesis: 'x y z w', references: ['x y z w p q'] },
    { hypothesis: 'k', references: ['m'] },
  ]);
  const cos = [Math.sqrt(4 / 6), Math.sqrt(3 / 5), Math.sqrt(2 / 4), Math.sqrt(1 / 3)];
  const expected = (10 * cos.reduce((a, b) => a + b, 0) * Math.exp(-(2 * 2) / (2 * 36))) / 4;
  close(pen.perItem[0], expected, 1e-12);
  // clipping: repeating a matching word cannot raise the score above the unrepeated one
  const base = corpusCider([
    { hypothesis: 'dog runs', references: ['dog runs fast'] },
    { hypothesis: 'cat sleeps', references: ['cat sleeps'] },
  ]).perItem[0];
  const repeated = corpusCider([
    { hypothesis: 'dog dog dog runs', references: ['dog runs fast'] },
    { hypothesis: 'cat sleeps', references: ['cat sleeps'] },
  ]).perItem[0];
  assert.ok(repeated < base, `${repeated} < ${base}`);
});

test('scorePredictions gives corpus and per-item scores per task', () => {
  const vqa = scorePredictions('vqa', [
    { prediction: 'Two', references: ['2'] },
    { prediction: 'red', references: ['blue'] },
  ]);
  assert.equal(vqa.metrics.exact_match, 0.5);
  assert.deepEqual(
    vqa.perItem.map((p) => p.exact_match),
    [1, 0],
  );
  const cap = scorePredictions(
    'caption',
    CORPUS.map((c) => ({ prediction: c.hypothesis, references: c.references })),
  );
  close(cap.metrics.bleu4, 0.5373891136394127, 1e-12);
  close(cap.metrics.cider, 3.0971627176597085, 1e-9);
  assert.equal(cap.perItem.length, 4);
  // captions also get a per-item exact match (case and punctuation ignored), so a gallery can mark items right/wrong
  const ex = scorePredictions('caption', [
    { prediction: 'A dog runs on the grass.', references: ['a cat sleeps', 'a dog runs on the grass'] },
    { prediction: 'a dog runs', references: ['a dog runs on the grass'] },
  ]);
  assert.deepEqual(
    ex.perItem.map((p) => p.exact_match),
    [1, 0],
  );
  assert.equal(ex.metrics.exact_match, 0.5);
  assert.deepEqual(Object.keys(ex.metrics).sort(), [
    'baseline_bleu4',
    'baseline_cider',
    'bleu4',
    'cider',
    'exact_match',
  ]);
  assert.equal(
    ex.perItem[0].bleu4,
    sentenceBleu('A dog runs on the grass.', ['a cat sleeps', 'a dog runs on the grass']),
    'the other scores are unchanged',
  );
  assert.throws(
    () => scorePredictions('caption', [{ prediction: 'x', references: [] }]),
    /item 0 has no reference captions/,
  );
});

test('the caption baseline: the most common reference caption for every item, scored like a model', () => {
  const preds = [
    { prediction: 'a dog runs on the grass', references: ['A dog runs on the grass.', 'a brown dog running'] },
    { prediction: 'a cat on a sofa', references: ['a cat sleeps on a sofa', 'a dog runs on the grass'] },
    { prediction: 'two birds on a wire', references: ['two birds sit on a wire', 'birds on a power line'] },
  ];
  const b = captionBaseline(preds);
  assert.equal(
    b.caption,
    'A dog runs on the grass.',
    'the same caption after tokenisation counts together; the first spelling is kept',
  );
  const asModel = scorePredictions(
    'caption',
    preds.map((p) => ({ ...p, prediction: b.caption })),
  );
  assert.equal(b.bleu4, asModel.metrics.bleu4);
  assert.equal(b.cider, asModel.metrics.cider);
  const model = scorePredictions('caption', preds);
  assert.equal(model.metrics.baseline_bleu4, b.bleu4);
  assert.equal(model.metrics.baseline_cider, b.cider);
  assert.equal(model.majorityAnswer, b.caption);
  assert.ok(
    model.metrics.cider > b.cider,
    `a model describing each image beats the baseline (${model.metrics.cider} vs ${b.cider})`,
  );
  assert.deepEqual(captionBaseline([]), { caption: '', bleu4: 0, cider: 0 });
});

test('the majority baseline is the exact match of always giving the most common answer', () => {
  const refs = ['triangle', 'Triangle.', 'circle', 'square', 'triangle', 'circle', 'star'];
  const preds = refs.map((r) => ({ prediction: 'circle', references: [r] }));
  const m = majorityBaseline(preds);
  assert.equal(m.answer, 'triangle');
  assert.equal(m.exactMatch, 3 / 7, 'case and punctuation are normalised as exact match does');
  const s = scorePredictions('vqa', preds);
  assert.equal(s.metrics.majority_baseline, 3 / 7);
  assert.equal(s.metrics.exact_match, 2 / 7);
  assert.equal(s.majorityAnswer, 'triangle');
  assert.deepEqual(majorityBaseline([]), { answer: '', exactMatch: 0 });
});
