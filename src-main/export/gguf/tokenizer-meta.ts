// tokenizer.ggml.* metadata from a Hugging Face tokenizer.json, as llama.cpp's convert_hf_to_gguf.py writes it:
// byte-level BPE -> model "gpt2" with merges and a pre-tokenizer name llama.cpp knows; BPE with byte fallback
// (SentencePiece-style, LLaMA / TinyLlama) -> model "llama" with scores. Tokens are padded to the config's
// vocab_size with [PAD<i>] tokens of type UNUSED, as the converter does, since the embedding has that many rows.
import type { LensTokenizer } from '../../models/tokenizer';
import type { GgufValue } from './writer';

export class GgufTokenizerError extends Error {}

/** llama_token_type / gguf TokenType */
export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

const QWEN2_DIGITS = '\\p{N}|';
const LLAMA3_DIGITS = '\\p{N}{1,3}';

interface PreTok {
  type?: string;
  pretokenizers?: PreTok[];
  pattern?: { Regex?: string; String?: string };
  use_regex?: boolean;
  individual_digits?: boolean;
}

/** The llama.cpp pre-tokenizer ("tokenizer.ggml.pre") whose regex split equals this byte-level tokenizer's. */
export function bpePreName(tokenizerJson: Record<string, unknown>, file = 'tokenizer.json'): string {
  const pre = tokenizerJson.pre_tokenizer as PreTok | null | undefined;
  const where = `${file}: pre_tokenizer`;
  if (!pre) throw new GgufTokenizerError(`${where} is missing; llama.cpp needs to know how byte-level BPE splits text`);
  if (pre.type === 'ByteLevel') {
    if (pre.use_regex === false)
      throw new GgufTokenizerError(`${where}: ByteLevel without a regex split has no llama.cpp pre-tokenizer`);
    return 'gpt-2';
  }
  if (pre.type === 'Sequence' && Array.isArray(pre.pretokenizers)) {
    const parts = pre.pretokenizers;
    const split = parts.find((p) => p.type === 'Split');
    const regex = split?.pattern?.Regex;
    if (regex) {
      if (regex.includes(LLAMA3_DIGITS)) return 'llama-bpe';
      if (regex.includes(QWEN2_DIGITS)) return 'qwen2';
    }
    if (parts.length === 2 && parts[0].type === 'Digits' && parts[0].individual_digits && parts[1].type === 'ByteLevel')
      return 'smollm';
  }
  throw new GgufTokenizerError(
    `${where} (${JSON.stringify(pre).slice(0, 120)}…) matches none of the pre-tokenizers Lenslab maps to llama.cpp's (gpt-2, llama-bpe, qwen2, smollm)`,
  );
}

function mergeStrings(merges: unknown, file: string): string[] {
  if (!Array.isArray(merges)) throw new GgufTokenizerError(`${file}: model.merges is missing`);
  return merges.map((m, i) => {
    if (typeof m === 'string') return m;
    if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string')
      return `${m[0]} ${m[1]}`;
    throw new GgufTokenizerError(`${file}: model.merges[${i}] is neither "a b" nor ["a", "b"]`);
  });
}

/** Every tokenizer.* key for a model whose embedding has `vocabSize` rows. */
export function tokenizerMetadata(
  tok: LensTokenizer,
  vocabSize: number,
  chatTemplate: string | null,
): Map<string, GgufValue> {
  const file = tok.source.tokenizerJson;
  const json = tok.files.tokenizerJson;
  const model = json.model as
    { type?: string; vocab?: Record<string, number>; merges?: unknown; byte_fallback?: boolean } | undefined;
  if (!model || model.type !== 'BPE' || !model.vocab || typeof model.vocab !== 'object')
    throw new GgufTokenizerError(
      `${file}: model.type ${JSON.stringify(model?.type)} is not supported for GGUF export (BPE tokenizers only: byte-level like GPT-2 / Qwen2 / LLaMA-3, or SentencePiece-style with byte fallback like LLaMA 2)`,
    );
  const added = new Map<number, { content: string; special: boolean }>();
  for (const a of (json.added_tokens as Array<{ id: number; content: string; special?: boolean }>) ?? [])
    added.set(a.id, { content: a.content, special: !!a.special });
  const byId: string[] = [];
  for (const [t, id] of Object.entries(model.vocab)) byId[id] = t;
  for (const [id, a] of added) byId[id] = a.content;
  if (byId.length > vocabSize)
    throw new GgufTokenizerError(
      `${file}: the tokenizer has ${byId.length} tokens but the model's embedding only ${vocabSize} rows`,
    );
  const spm = model.byte_fallback === true;
  const tokens: string[] = [];
  const types: number[] = [];
  const scores: number[] = [];
  const merges = mergeStrings(model.merges, file);
  // SentencePiece scores decide the merge order in llama.cpp's SPM tokenizer: a token made by an earlier merge
  // gets a higher score, like the -rank scores SentencePiece's BPE trainer writes.
  const mergeRank = new Map<string, number>();
  if (spm) merges.forEach((m, r) => mergeRank.set(m.replace(' ', ''), r));
  for (let id = 0; id < vocabSize; id++) {
    const t = byId[id];
    if (t === undefined) {
      tokens.push(`[PAD${id}]`);
      types.push(TokenType.UNUSED);
      scores.push(-1e9);
      continue;
    }
    tokens.push(t);
    const a = added.get(id);
    if (a) types.push(a.special ? TokenType.CONTROL : TokenType.USER_DEFINED);
    else if (spm && /^<0x[0-9A-F]{2}>$/.test(t)) types.push(TokenType.BYTE);
    else if (spm && t === tok.unkToken) types.push(TokenType.UNKNOWN);
    else types.push(TokenType.NORMAL);
    scores.push(spm ? (mergeRank.has(t) ? -(mergeRank.get(t)! + 1) : 0) : 0);
  }
  const kv = new Map<string, GgufValue>();
  kv.set('tokenizer.ggml.model', { type: 'string', value: spm ? 'llama' : 'gpt2' });
  if (!spm) kv.set('tokenizer.ggml.pre', { type: 'string', value: bpePreName(json, file) });
  else kv.set('tokenizer.ggml.pre', { type: 'string', value: 'default' });
  kv.set('tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: tokens });
  if (spm) kv.set('tokenizer.ggml.scores', { type: 'array', itemType: 'f32', value: scores });
  kv.set('tokenizer.ggml.token_type', { type: 'array', itemType: 'i32', value: types });
  if (!spm) kv.set('tokenizer.ggml.merges', { type: 'array', itemType: 'string', value: merges });
  const id = (k: string, v: number | null) => {
    if (v !== null && v >= 0 && v < vocabSize) kv.set(k, { type: 'u32', value: v });
  };
  id('tokenizer.ggml.bos_token_id', tok.bosTokenId);
  id('tokenizer.ggml.eos_token_id', tok.eosTokenId);
  id('tokenizer.ggml.unknown_token_id', tok.unkTokenId);
  id('tokenizer.ggml.padding_token_id', tok.padTokenId);
  // what the tokenizer actually adds around a text (its post-processor), which is what llama.cpp must reproduce
  const probe = tok.encode('a', { addSpecialTokens: true });
  const plain = tok.encode('a', { addSpecialTokens: false });
  const addsBos = tok.bosTokenId !== null && probe.length > plain.length && probe[0] === tok.bosTokenId;
  const addsEos = tok.eosTokenId !== null && probe.length > plain.length && probe[probe.length - 1] === tok.eosTokenId;
  kv.set('tokenizer.ggml.add_bos_token', { type: 'bool', value: addsBos });
  kv.set('tokenizer.ggml.add_eos_token', { type: 'bool', value: addsEos });
  if (chatTemplate) kv.set('tokenizer.chat_template', { type: 'string', value: chatTemplate });
  return kv;
}
