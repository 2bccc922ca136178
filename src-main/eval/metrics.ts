// Scores for generated answers and captions.
//
// - VQA: the answer normalisation of the official VQA evaluation script (GT-Vision-Lab/VQA, vqaEval.py:
//   processPunctuation + processDigitArticle), exact match against any reference, and the VQA "soft" accuracy
//   (min(1, #matching humans / 3), averaged over the leave-one-out subsets of the references).
// - BLEU-4: corpus-level BLEU (Papineni et al. 2002): clipped n-gram counts summed over the corpus, geometric mean of
//   the four precisions, brevity penalty from the closest reference length (ties to the shorter, as coco-caption does).
// - CIDEr-D: the variant shipped as "CIDEr" by coco-caption / pycocoevalcap: tf-idf vectors of 1..4-grams with
//   document frequencies counted over the references of the evaluated corpus, clipped hypothesis weights, a Gaussian
//   length penalty (sigma = 6), averaged over n and over references, times 10.
//
// Text for BLEU/CIDEr goes through `tokenizeCaption`: the PTB tokenisation coco-caption runs before scoring (clitics
// split, punctuation tokens dropped), reproduced rule by rule in TypeScript (no Java at run time).

// ---------------------------------------------------------------------------------------------- VQA normalisation

const CONTRACTIONS: Record<string, string> = {
  aint: "ain't",
  arent: "aren't",
  cant: "can't",
  couldve: "could've",
  couldnt: "couldn't",
  "couldn'tve": "couldn't've",
  "couldnt've": "couldn't've",
  didnt: "didn't",
  doesnt: "doesn't",
  dont: "don't",
  hadnt: "hadn't",
  "hadnt've": "hadn't've",
  "hadn'tve": "hadn't've",
  hasnt: "hasn't",
  havent: "haven't",
  hed: "he'd",
  "hed've": "he'd've",
  "he'dve": "he'd've",
  hes: "he's",
  howd: "how'd",
  howll: "how'll",
  hows: "how's",
  // The official table also has "Id've", "I'dve", "Im", "Ive" with capital I; they can never match because words are
  // lowercased before the lookup, so they are left out here with the same effect.
  isnt: "isn't",
  itd: "it'd",
  "itd've": "it'd've",
  "it'dve": "it'd've",
  itll: "it'll",
  "let's": "let's",
  maam: "ma'am",
  mightnt: "mightn't",
  "mightnt've": "mightn't've",
  "mightn'tve": "mightn't've",
  mightve: "might've",
  mustnt: "mustn't",
  mustve: "must've",
  neednt: "needn't",
  notve: "not've",
  oclock: "o'clock",
  oughtnt: "oughtn't",
  "ow's'at": "'ow's'at",
  "'ows'at": "'ow's'at",
  "'ow'sat": "'ow's'at",
  shant: "shan't",
  "shed've": "she'd've",
  "she'dve": "she'd've",
  "she's": "she's",
  shouldve: "should've",
  shouldnt: "shouldn't",
  "shouldnt've": "shouldn't've",
  "shouldn'tve": "shouldn't've",
  "somebody'd": 'somebodyd',
  "somebodyd've": "somebody'd've",
  "somebody'dve": "somebody'd've",
  somebodyll: "somebody'll",
  somebodys: "somebody's",
  someoned: "someone'd",
  "someoned've": "someone'd've",
  "someone'dve": "someone'd've",
  someonell: "someone'll",
  someones: "someone's",
  somethingd: "something'd",
  "somethingd've": "something'd've",
  "something'dve": "something'd've",
  somethingll: "something'll",
  thats: "that's",
  thered: "there'd",
  "thered've": "there'd've",
  "there'dve": "there'd've",
  therere: "there're",
  theres: "there's",
  theyd: "they'd",
  "theyd've": "they'd've",
  "they'dve": "they'd've",
  theyll: "they'll",
  theyre: "they're",
  theyve: "they've",
  twas: "'twas",
  wasnt: "wasn't",
  "wed've": "we'd've",
  "we'dve": "we'd've",
  weve: "we've",
  werent: "weren't",
  whatll: "what'll",
  whatre: "what're",
  whats: "what's",
  whatve: "what've",
  whens: "when's",
  whered: "where'd",
  wheres: "where's",
  whereve: "where've",
  whod: "who'd",
  "whod've": "who'd've",
  "who'dve": "who'd've",
  wholl: "who'll",
  whos: "who's",
  whove: "who've",
  whyll: "why'll",
  whyre: "why're",
  whys: "why's",
  wont: "won't",
  wouldve: "would've",
  wouldnt: "wouldn't",
  "wouldnt've": "wouldn't've",
  "wouldn'tve": "wouldn't've",
  yall: "y'all",
  "yall'll": "y'all'll",
  "y'allll": "y'all'll",
  "yall'd've": "y'all'd've",
  "y'alld've": "y'all'd've",
  "y'all'dve": "y'all'd've",
  youd: "you'd",
  "youd've": "you'd've",
  "you'dve": "you'd've",
  youll: "you'll",
  youre: "you're",
  youve: "you've",
};

const NUMBER_WORDS: Record<string, string> = {
  none: '0',
  zero: '0',
  one: '1',
  two: '2',
  three: '3',
  four: '4',
  five: '5',
  six: '6',
  seven: '7',
  eight: '8',
  nine: '9',
  ten: '10',
};

const ARTICLES = new Set(['a', 'an', 'the']);

const PUNCT = [
  ';',
  '/',
  '[',
  ']',
  '"',
  '{',
  '}',
  '(',
  ')',
  '=',
  '+',
  '\\',
  '_',
  '-',
  '>',
  '<',
  '@',
  '`',
  ',',
  '?',
  '!',
];
const COMMA_BETWEEN_DIGITS = /(\d)(,)(\d)/;
/** The official pattern is `(?!<=\d)(\.)(?!\d)`: a typo for a look-behind, so it removes every '.' not followed by a digit. */
const PERIOD_STRIP = /\.(?!\d)/g;

function hasOwn(o: object, k: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, k);
}

/** vqaEval.processPunctuation: each mark is deleted when it touches a space (or the text has a digit,digit comma), else replaced by a space; then periods not before a digit are removed. */
export function processPunctuation(text: string): string {
  let out = text;
  const commaDigits = COMMA_BETWEEN_DIGITS.test(text);
  for (const p of PUNCT) {
    if (text.includes(p + ' ') || text.includes(' ' + p) || commaDigits) out = out.split(p).join('');
    else out = out.split(p).join(' ');
  }
  // Deviation: Python's `periodStrip.sub("", outText, re.UNICODE)` passes re.UNICODE (=32) as `count`, so the official
  // script stops after 32 periods; answers never have that many.
  return out.replace(PERIOD_STRIP, '');
}

/** vqaEval.processDigitArticle: lowercase, split on whitespace, number words → digits, drop articles, restore contractions. */
export function processDigitArticle(text: string): string {
  const words: string[] = [];
  for (const raw of text.toLowerCase().split(/\s+/)) {
    if (raw === '') continue;
    const w = hasOwn(NUMBER_WORDS, raw) ? NUMBER_WORDS[raw] : raw;
    if (!ARTICLES.has(w)) words.push(w);
  }
  return words.map((w) => (hasOwn(CONTRACTIONS, w) ? CONTRACTIONS[w] : w)).join(' ');
}

/** The official VQA answer normalisation: newlines/tabs → spaces, trim, punctuation, digits/articles/contractions. */
export function normalizeVqaAnswer(answer: string): string {
  const t = answer.replace(/\n/g, ' ').replace(/\t/g, ' ').trim();
  return processDigitArticle(processPunctuation(t));
}

/** 1 when the normalised prediction equals the normalised form of any reference, else 0. */
export function vqaExactMatch(prediction: string, references: readonly string[]): number {
  if (references.length === 0) throw new Error('vqaExactMatch: an item has no reference answers');
  const p = normalizeVqaAnswer(prediction);
  return references.some((r) => normalizeVqaAnswer(r) === p) ? 1 : 0;
}

/**
 * The VQA accuracy of one prediction against (usually 10) human answers: for each reference left out in turn,
 * min(1, matches among the others / 3); the mean over those. Deviation: with a single reference the official formula
 * always gives 0 (there are no "others"), so one reference falls back to exact match.
 */
export function vqaAccuracy(prediction: string, references: readonly string[]): number {
  if (references.length === 0) throw new Error('vqaAccuracy: an item has no reference answers');
  if (references.length === 1) return vqaExactMatch(prediction, references);
  const p = normalizeVqaAnswer(prediction);
  const refs = references.map(normalizeVqaAnswer);
  let sum = 0;
  for (let i = 0; i < refs.length; i++) {
    let matches = 0;
    for (let j = 0; j < refs.length; j++) if (j !== i && refs[j] === p) matches++;
    sum += Math.min(1, matches / 3);
  }
  return sum / refs.length;
}

// ---------------------------------------------------------------------------------------------- tokenisation

/** Tokens coco-caption's PTBTokenizer wrapper drops after tokenising (pycocoevalcap/tokenizer/ptbtokenizer.py). */
const PTB_DROPPED = new Set([
  "''",
  "'",
  '``',
  '`',
  '-lrb-',
  '-rrb-',
  '-lcb-',
  '-rcb-',
  '.',
  '?',
  '!',
  ',',
  ':',
  '-',
  '--',
  '...',
  ';',
]);
/** Words PTB keeps a final period on (abbreviations); other words have it split off as a '.' token. */
const PTB_ABBREVIATIONS = new Set([
  'mr',
  'mrs',
  'ms',
  'dr',
  'st',
  'jr',
  'sr',
  'prof',
  'vs',
  'etc',
  'inc',
  'ltd',
  'co',
  'corp',
  'no',
  'mt',
  'ft',
  'ave',
  'jan',
  'feb',
  'mar',
  'apr',
  'aug',
  'sept',
  'oct',
  'nov',
  'dec',
]);
/** PTB's split of informal contractions (Stanford PTBLexer): cannot → can not, gonna → gon na … */
const PTB_SPLIT_WORDS: Record<string, string[]> = {
  cannot: ['can', 'not'],
  gonna: ['gon', 'na'],
  gotta: ['got', 'ta'],
  wanna: ['wan', 'na'],
  lemme: ['lem', 'me'],
  gimme: ['gim', 'me'],
  "'tis": ["'t", 'is'],
  "'twas": ["'t", 'was'],
};
const PTB_CONTRACTION = /^(.+?)(n't|'s|'m|'re|'ve|'ll|'d)$/;
const PTB_LEADING = /^(``|\.\.\.|--|["'`([{<$#])/;
const PTB_TRAILING = /(''|\.\.\.|--|["'`)\]}>,;:?!%])$/;
const PTB_BRACKETS: Record<string, string> = {
  '(': '-lrb-',
  ')': '-rrb-',
  '[': '-lsb-',
  ']': '-rsb-',
  '{': '-lcb-',
  '}': '-rcb-',
  '"': "''",
  '<': '<',
  '>': '>',
};

/** One whitespace-free chunk into PTB tokens (already lowercased). */
function ptbChunk(chunk: string, out: string[]): void {
  const tail: string[] = [];
  let w = chunk;
  // opening quotes, brackets and currency / number signs come off the front
  for (let m = PTB_LEADING.exec(w); m && w.length > 0; m = PTB_LEADING.exec(w)) {
    // a leading apostrophe that starts a contraction ('s, 're, 'tis) stays on its word
    if (m[1] === "'" && (/^'(s|m|d|re|ve|ll|t|tis|twas)$/.test(w) || /^'\d0s$/.test(w))) break;
    out.push(PTB_BRACKETS[m[1]] ?? (m[1] === "'" ? '`' : m[1]));
    w = w.slice(m[1].length);
  }
  // closing punctuation comes off the back (kept in order)
  for (;;) {
    const m = PTB_TRAILING.exec(w);
    if (m && w.length > m[1].length) {
      tail.unshift(PTB_BRACKETS[m[1]] ?? m[1]);
      w = w.slice(0, -m[1].length);
      continue;
    }
    if (m && w.length === m[1].length) break;
    // a final period: split off unless the word is an abbreviation or an acronym with inner periods (u.s.)
    if (w.length > 1 && w.endsWith('.') && !w.endsWith('..')) {
      const stem = w.slice(0, -1);
      if (!PTB_ABBREVIATIONS.has(stem) && !(stem.includes('.') && /^[\p{L}.]+$/u.test(stem))) {
        tail.unshift('.');
        w = stem;
        continue;
      }
    }
    break;
  }
  if (w.length > 0) {
    // inner dashes and ellipses separate words; single hyphens (black-and-white) and slashes (and/or) do not
    const parts = w.split(/(--|\.\.\.)/).filter((x) => x.length > 0);
    for (const part of parts) {
      if (part === '--' || part === '...') {
        out.push(part);
        continue;
      }
      const split = PTB_SPLIT_WORDS[part];
      if (split) {
        out.push(...split);
        continue;
      }
      const c = PTB_CONTRACTION.exec(part);
      if (c && /\p{L}/u.test(c[1])) out.push(c[1], c[2]);
      else out.push(part);
    }
  }
  out.push(...tail);
}

/**
 * Lowercase and tokenise a caption as coco-caption does before BLEU / CIDEr: Stanford's PTBTokenizer (`-lowerCase`),
 * then the punctuation tokens it produces dropped. Reproduced rules: quotes become `` / '' (dropped), brackets
 * -LRB- / -RRB- (dropped; square brackets -LSB- / -RSB- are not in the drop list and stay), clitics split off
 * (`can't` → `ca n't`, `she's` → `she 's`, `cannot` → `can not`), a final period split off except after
 * abbreviations and acronyms, `$`, `#` and `%` their own tokens, hyphenated words, numbers such as 3.5 or 1,000
 * and `and/or` kept whole, `--` and `...` dropped. Curly quotes and apostrophes count as straight ones and dashes
 * (– —) as `--`. Not reproduced: PTB's rarer lexer cases (emoticons, URLs, phone numbers, British spellings).
 */
export function tokenizeCaption(text: string): string[] {
  const norm = text
    .toLowerCase()
    .replace(/[\u2018\u2019\u201a\u2032]/g, "'")
    .replace(/[\u201c\u201d\u201e\u2033]/g, '"')
    .replace(/[\u2013\u2014]/g, ' -- ')
    .replace(/\u2026/g, '...');
  const out: string[] = [];
  for (const chunk of norm.split(/\s+/)) if (chunk.length > 0) ptbChunk(chunk, out);
  return out.filter((t) => !PTB_DROPPED.has(t));
}

type Tokens = readonly string[];

function ngramCounts(words: Tokens, maxN: number): Map<string, number>[] {
  const out: Map<string, number>[] = [];
  for (let n = 1; n <= maxN; n++) {
    const m = new Map<string, number>();
    for (let i = 0; i + n <= words.length; i++) {
      const key = words.slice(i, i + n).join(' ');
      m.set(key, (m.get(key) ?? 0) + 1);
    }
    out.push(m);
  }
  return out;
}

function toTokens(x: string | Tokens): Tokens {
  return typeof x === 'string' ? tokenizeCaption(x) : x;
}

// ---------------------------------------------------------------------------------------------- BLEU

/**
 * Smoothing of zero n-gram precisions:
 * - 'none': Papineni; any zero precision makes BLEU 0 (the corpus-level standard).
 * - 'add-one': Lin & Och (2004): +1 to matches and totals for n ≥ 2 (usual for sentence-level BLEU).
 * - 'epsilon': a zero match count becomes 0.1 (Chen & Cherry 2014 method 1).
 */
export type BleuSmoothing = 'none' | 'add-one' | 'epsilon';

export interface BleuOptions {
  /** Highest n-gram order (default 4). */
  maxN?: number;
  smoothing?: BleuSmoothing;
}

export interface BleuResult {
  /** BLEU-maxN in [0, 1]. */
  bleu: number;
  /** Modified n-gram precisions p_1..p_N (after smoothing). */
  precisions: number[];
  /** Clipped matches and candidate n-gram totals per order (before smoothing). */
  matches: number[];
  totals: number[];
  brevityPenalty: number;
  hypothesisLength: number;
  referenceLength: number;
}

/** Corpus-level BLEU over (hypothesis, references) pairs; strings are tokenised with `tokenizeCaption`. */
export function corpusBleu(
  items: readonly { hypothesis: string | Tokens; references: readonly (string | Tokens)[] }[],
  options: BleuOptions = {},
): BleuResult {
  const maxN = options.maxN ?? 4;
  const smoothing = options.smoothing ?? 'none';
  if (!Number.isInteger(maxN) || maxN < 1) throw new Error(`corpusBleu: maxN must be a positive integer, got ${maxN}`);
  const matches = new Array<number>(maxN).fill(0);
  const totals = new Array<number>(maxN).fill(0);
  let hypLen = 0;
  let refLen = 0;
  items.forEach((item, idx) => {
    if (item.references.length === 0) throw new Error(`corpusBleu: item ${idx} has no references`);
    const hyp = toTokens(item.hypothesis);
    const refs = item.references.map(toTokens);
    const maxRef: Map<string, number>[] = Array.from({ length: maxN }, () => new Map());
    for (const r of refs) {
      ngramCounts(r, maxN).forEach((m, n) => {
        for (const [g, c] of m) if (c > (maxRef[n].get(g) ?? 0)) maxRef[n].set(g, c);
      });
    }
    ngramCounts(hyp, maxN).forEach((m, n) => {
      for (const [g, c] of m) matches[n] += Math.min(c, maxRef[n].get(g) ?? 0);
      totals[n] += Math.max(0, hyp.length - n);
    });
    hypLen += hyp.length;
    // closest reference length; ties go to the shorter one
    let best = refs[0].length;
    for (const r of refs) {
      const d = Math.abs(r.length - hyp.length);
      const bd = Math.abs(best - hyp.length);
      if (d < bd || (d === bd && r.length < best)) best = r.length;
    }
    refLen += best;
  });
  const precisions = matches.map((m, n) => {
    const t = totals[n];
    if (smoothing === 'add-one' && n > 0) return (m + 1) / (t + 1);
    if (t === 0) return 0;
    if (m === 0 && smoothing === 'epsilon') return 0.1 / t;
    return m / t;
  });
  const brevityPenalty = hypLen === 0 ? 0 : hypLen >= refLen ? 1 : Math.exp(1 - refLen / hypLen);
  let bleu = 0;
  if (precisions.every((p) => p > 0)) {
    const logSum = precisions.reduce((s, p) => s + Math.log(p), 0);
    bleu = brevityPenalty * Math.exp(logSum / maxN);
  }
  return { bleu, precisions, matches, totals, brevityPenalty, hypothesisLength: hypLen, referenceLength: refLen };
}

/** Sentence-level BLEU of one hypothesis (add-one smoothing by default, so short near-misses are not all 0). */
export function sentenceBleu(
  hypothesis: string | Tokens,
  references: readonly (string | Tokens)[],
  options: BleuOptions = {},
): number {
  return corpusBleu([{ hypothesis, references }], { smoothing: 'add-one', ...options }).bleu;
}

// ---------------------------------------------------------------------------------------------- CIDEr-D

export interface CiderOptions {
  /** Highest n-gram order (default 4). */
  maxN?: number;
  /** Standard deviation of the Gaussian length penalty (default 6). */
  sigma?: number;
}

export interface CiderResult {
  /** Mean CIDEr-D over items (the corpus score). */
  cider: number;
  /** CIDEr-D of each item, in input order. */
  perItem: number[];
}

interface TfIdf {
  vec: Map<string, number>[];
  norm: number[];
  length: number;
}

/**
 * CIDEr-D over a corpus (the idf needs the whole corpus: document frequency of an n-gram = number of items whose
 * references contain it; idf = log(#items) − log(max(1, df))).
 *
 * For each item: score = 10 · mean_n [ mean_refs ( Σ_g min(h_g, r_g)·r_g / (‖h‖·‖r‖) · exp(−δ²/2σ²) ) ]
 * with h, r the tf-idf vectors of order n and δ the length difference. As in pycocoevalcap, a vector's "length" is
 * its bigram count (words − 1, 0 for one word), which gives the same δ as word counts except for one-word texts.
 */
export function corpusCider(
  items: readonly { hypothesis: string | Tokens; references: readonly (string | Tokens)[] }[],
  options: CiderOptions = {},
): CiderResult {
  const maxN = options.maxN ?? 4;
  const sigma = options.sigma ?? 6;
  if (items.length === 0) return { cider: 0, perItem: [] };
  const hyps = items.map((it) => ngramCounts(toTokens(it.hypothesis), maxN));
  const refs = items.map((it, idx) => {
    if (it.references.length === 0) throw new Error(`corpusCider: item ${idx} has no references`);
    return it.references.map((r) => ngramCounts(toTokens(r), maxN));
  });
  const df = new Map<string, number>();
  for (const itemRefs of refs) {
    const seen = new Set<string>();
    for (const r of itemRefs) for (const m of r) for (const g of m.keys()) seen.add(g);
    for (const g of seen) df.set(g, (df.get(g) ?? 0) + 1);
  }
  const logDocs = Math.log(items.length);
  const toVec = (counts: Map<string, number>[]): TfIdf => {
    const vec: Map<string, number>[] = [];
    const norm: number[] = [];
    let length = 0;
    counts.forEach((m, n) => {
      const v = new Map<string, number>();
      let sq = 0;
      for (const [g, tf] of m) {
        const w = tf * (logDocs - Math.log(Math.max(1, df.get(g) ?? 0)));
        v.set(g, w);
        sq += w * w;
        if (n === 1) length += tf;
      }
      vec.push(v);
      norm.push(Math.sqrt(sq));
    });
    return { vec, norm, length };
  };
  const perItem = hyps.map((h, i) => {
    const hv = toVec(h);
    const sum = new Array<number>(maxN).fill(0);
    for (const r of refs[i]) {
      const rv = toVec(r);
      const delta = hv.length - rv.length;
      const penalty = Math.exp(-(delta * delta) / (2 * sigma * sigma));
      for (let n = 0; n < maxN; n++) {
        let val = 0;
        for (const [g, w] of hv.vec[n]) {
          const rw = rv.vec[n].get(g) ?? 0;
          val += Math.min(w, rw) * rw;
        }
        if (hv.norm[n] !== 0 && rv.norm[n] !== 0) val /= hv.norm[n] * rv.norm[n];
        sum[n] += val * penalty;
      }
    }
    const meanN = sum.reduce((a, b) => a + b, 0) / maxN;
    return (meanN / refs[i].length) * 10;
  });
  return { cider: perItem.reduce((a, b) => a + b, 0) / perItem.length, perItem };
}

// ---------------------------------------------------------------------------------------------- task scoring

export type EvalTask = 'vqa' | 'caption';

export interface ScoredPrediction {
  prediction: string;
  references: readonly string[];
}

export interface TaskScores {
  task: EvalTask;
  count: number;
  /** Corpus scores: vqa → exact_match, vqa_accuracy, majority_baseline (all in [0,1]); caption → bleu4 ([0,1]), cider,
   *  exact_match ([0,1]) and the trivial baseline's baseline_bleu4 / baseline_cider (see captionBaseline). */
  metrics: Record<string, number>;
  /** Per-item scores in input order (vqa: exact_match, vqa_accuracy; caption: bleu4 sentence-level, cider, exact_match). */
  perItem: Record<string, number>[];
  /** vqa: the most common reference answer (metrics.majority_baseline is its exact match); caption: the most common
   *  reference caption (metrics.baseline_bleu4 / baseline_cider are its scores). */
  majorityAnswer?: string;
}

/**
 * What a model that always gives the most common answer would score (exact match): the floor a fine-tune must beat
 * on a question set with a dominant answer (the demo's shapes: always "triangle" scores 28%). Ties go to the answer
 * seen first.
 */
export function majorityBaseline(preds: readonly ScoredPrediction[]): { answer: string; exactMatch: number } {
  const counts = new Map<string, { n: number; text: string }>();
  for (const p of preds) {
    const key = normalizeVqaAnswer(p.references[0] ?? '');
    const c = counts.get(key);
    if (c) c.n++;
    else counts.set(key, { n: 1, text: p.references[0] ?? '' });
  }
  let best: { n: number; text: string } | null = null;
  for (const c of counts.values()) if (!best || c.n > best.n) best = c;
  if (!best || !preds.length) return { answer: '', exactMatch: 0 };
  const answer = best.text;
  return { answer, exactMatch: preds.reduce((s, p) => s + vqaExactMatch(answer, p.references), 0) / preds.length };
}

/** Score a list of predictions for a task; the shape evaluations store (metrics_json, predictions.scores_json). */
export function scorePredictions(task: EvalTask, preds: readonly ScoredPrediction[]): TaskScores {
  preds.forEach((p, i) => {
    if (p.references.length === 0)
      throw new Error(`scorePredictions: item ${i} has no reference ${task === 'vqa' ? 'answers' : 'captions'}`);
  });
  if (task === 'vqa') {
    const perItem = preds.map((p) => ({
      exact_match: vqaExactMatch(p.prediction, p.references),
      vqa_accuracy: vqaAccuracy(p.prediction, p.references),
    }));
    const mean = (k: 'exact_match' | 'vqa_accuracy') =>
      perItem.length ? perItem.reduce((s, x) => s + x[k], 0) / perItem.length : 0;
    const majority = majorityBaseline(preds);
    return {
      task,
      count: preds.length,
      metrics: {
        exact_match: mean('exact_match'),
        vqa_accuracy: mean('vqa_accuracy'),
        majority_baseline: majority.exactMatch,
      },
      perItem,
      majorityAnswer: majority.answer,
    };
  }
  const items = preds.map((p) => ({ hypothesis: p.prediction, references: p.references }));
  const bleu = corpusBleu(items);
  const cider = corpusCider(items);
  const perItem = preds.map((p, i) => ({
    bleu4: sentenceBleu(p.prediction, p.references),
    cider: cider.perItem[i],
    exact_match: captionExactMatch(p.prediction, p.references),
  }));
  const exact = perItem.length ? perItem.reduce((s, x) => s + x.exact_match, 0) / perItem.length : 0;
  const base = captionBaseline(preds);
  return {
    task,
    count: preds.length,
    metrics: {
      bleu4: bleu.bleu,
      cider: cider.cider,
      exact_match: exact,
      baseline_bleu4: base.bleu4,
      baseline_cider: base.cider,
    },
    perItem,
    majorityAnswer: base.caption,
  };
}

/**
 * The trivial caption baseline: the most common reference caption (compared after tokenisation; ties go to the one
 * seen first) given as the prediction for every item, scored like a model (corpus BLEU-4 and CIDEr-D). A fine-tune
 * that does not beat it has learnt the corpus's favourite sentence, not the images.
 */
export function captionBaseline(preds: readonly ScoredPrediction[]): { caption: string; bleu4: number; cider: number } {
  const counts = new Map<string, { n: number; text: string }>();
  for (const p of preds)
    for (const r of p.references) {
      const key = tokenizeCaption(r).join(' ');
      const c = counts.get(key);
      if (c) c.n++;
      else counts.set(key, { n: 1, text: r });
    }
  let best: { n: number; text: string } | null = null;
  for (const c of counts.values()) if (!best || c.n > best.n) best = c;
  if (!best || preds.length === 0) return { caption: '', bleu4: 0, cider: 0 };
  const caption = best.text;
  const items = preds.map((p) => ({ hypothesis: caption, references: p.references }));
  return { caption, bleu4: corpusBleu(items).bleu, cider: corpusCider(items).cider };
}

/** 1 when the caption equals a reference after caption tokenisation (case and punctuation ignored), else 0. */
export function captionExactMatch(prediction: string, references: readonly string[]): number {
  const p = tokenizeCaption(prediction).join(' ');
  return references.some((r) => tokenizeCaption(r).join(' ') === p) ? 1 : 0;
}
