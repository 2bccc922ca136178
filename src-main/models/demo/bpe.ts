// A byte-level BPE trainer (GPT-2 / SmolLM2 style) that writes a standard tokenizer.json.
//
// Pre-tokenization is the GPT-2 regex that the ByteLevel pre-tokenizer of tokenizers / tokenizers.js applies,
// words are counted, then the most frequent adjacent pair is merged until the vocabulary is full (ties broken
// by the pair's text, so training is deterministic). All 256 byte symbols are in the vocabulary, so any text
// encodes without <unk>.

const GPT2_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** GPT-2's bytes_to_unicode: printable stand-ins for the 256 byte values. */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const out = new Array<string>(256);
  bs.forEach((b, i) => (out[b] = String.fromCodePoint(cs[i])));
  return out;
}

export interface BpeTrainOptions {
  /** total vocabulary size including special tokens and the 256 byte symbols */
  vocabSize: number;
  /** special tokens, given ids 0.. in order (e.g. ["<unk>", "<s>", "</s>", "<pad>", "<image>"]) */
  specialTokens: string[];
  /** prepended by the post-processor when add_special_tokens is true (LLaMA-style); null for none */
  bosToken: string | null;
  /** words seen fewer times are not merged */
  minFrequency?: number;
}

/** Train on `texts` and return a tokenizer.json object. */
export function trainByteLevelBpe(texts: Iterable<string>, opts: BpeTrainOptions): Record<string, unknown> {
  const b2u = bytesToUnicode();
  const enc = new TextEncoder();
  const wordCounts = new Map<string, number>();
  const escape = (x: string) => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const specialRe = opts.specialTokens.length ? new RegExp(opts.specialTokens.map(escape).join('|'), 'g') : null;
  for (const text of texts) {
    // special tokens are matched before pre-tokenization (as added tokens are): never learn merges across them
    const t = specialRe ? text.replace(specialRe, '\u0000') : text;
    for (const m of t.split('\u0000').flatMap((piece) => piece.match(GPT2_PATTERN) ?? [])) {
      const w = Array.from(enc.encode(m), (b) => b2u[b]).join('');
      wordCounts.set(w, (wordCounts.get(w) ?? 0) + 1);
    }
  }
  const minFreq = opts.minFrequency ?? 2;
  const vocab = new Map<string, number>();
  for (const s of opts.specialTokens) vocab.set(s, vocab.size);
  // bytes in byte order, as tokenizers' ByteLevel.alphabet() sorted
  for (const ch of [...b2u].sort()) if (!vocab.has(ch)) vocab.set(ch, vocab.size);
  if (opts.vocabSize < vocab.size)
    throw new Error(`vocabSize ${opts.vocabSize} is smaller than the ${vocab.size} special + byte tokens`);

  // words as symbol arrays, sorted for determinism
  const words = [...wordCounts.entries()]
    .filter(([, c]) => c >= 1)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([w, c]) => ({ syms: Array.from(w), count: c }));
  const merges: [string, string][] = [];
  const SEP = '\u0000';
  while (vocab.size < opts.vocabSize) {
    const pairs = new Map<string, number>();
    for (const w of words) {
      if (w.count < minFreq) continue;
      for (let i = 0; i + 1 < w.syms.length; i++) {
        const k = w.syms[i] + SEP + w.syms[i + 1];
        pairs.set(k, (pairs.get(k) ?? 0) + w.count);
      }
    }
    let best: string | null = null;
    let bestCount = 0;
    for (const [k, c] of pairs) {
      if (c > bestCount || (c === bestCount && best !== null && k < best)) {
        best = k;
        bestCount = c;
      }
    }
    if (best === null || bestCount < minFreq) break;
    const [a, b] = best.split(SEP);
    const merged = a + b;
    merges.push([a, b]);
    if (!vocab.has(merged)) vocab.set(merged, vocab.size);
    for (const w of words) {
      const s = w.syms;
      for (let i = 0; i + 1 < s.length; i++) {
        if (s[i] === a && s[i + 1] === b) s.splice(i, 2, merged);
      }
    }
  }

  const added = opts.specialTokens.map((content, id) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const post =
    opts.bosToken === null
      ? { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }
      : {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: opts.bosToken, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [
            { SpecialToken: { id: opts.bosToken, type_id: 0 } },
            { Sequence: { id: 'A', type_id: 0 } },
            { SpecialToken: { id: opts.bosToken, type_id: 1 } },
            { Sequence: { id: 'B', type_id: 1 } },
          ],
          special_tokens: {
            [opts.bosToken]: { id: opts.bosToken, ids: [vocab.get(opts.bosToken)], tokens: [opts.bosToken] },
          },
        };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: post,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(vocab),
      merges,
    },
  };
}
