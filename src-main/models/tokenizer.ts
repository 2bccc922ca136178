// A tokenizer from a Hugging Face folder: tokenizer.json (+ tokenizer_config.json), run by @huggingface/tokenizers.
// Adds: special-token lookup (bos/eos/unk/pad and the image token), errors naming the file, empty-input safety,
// and a streaming decoder for generation (emits text only once its UTF-8 bytes are complete).
import { readFileSync } from 'node:fs';
import { Tokenizer } from '@huggingface/tokenizers';

export class TokenizerError extends Error {}

export interface TokenizerFiles {
  /** parsed tokenizer.json */
  tokenizerJson: Record<string, unknown>;
  /** parsed tokenizer_config.json ({} when the folder has none) */
  tokenizerConfig: Record<string, unknown>;
}

/** Special tokens in tokenizer_config.json are strings or serialized AddedTokens ({content: "..."}). */
function tokenString(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string')
    return (v as { content: string }).content;
  return null;
}

function readJson(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new TokenizerError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new TokenizerError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new TokenizerError(`${path}: not a JSON object`);
  return json as Record<string, unknown>;
}

export function readTokenizerFiles(tokenizerJsonPath: string, tokenizerConfigPath?: string): TokenizerFiles {
  const tokenizerJson = readJson(tokenizerJsonPath);
  let tokenizerConfig: Record<string, unknown> = {};
  if (tokenizerConfigPath) {
    try {
      readFileSync(tokenizerConfigPath);
      tokenizerConfig = readJson(tokenizerConfigPath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  return { tokenizerJson, tokenizerConfig };
}

export interface EncodeOptions {
  /** add what the post-processor adds (e.g. <s>); default true, as transformers does */
  addSpecialTokens?: boolean;
}

export class LensTokenizer {
  readonly files: TokenizerFiles;
  /** names used in error messages */
  readonly source: { tokenizerJson: string; tokenizerConfig: string };
  private tk: Tokenizer;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly unkToken: string | null;
  readonly padToken: string | null;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly unkTokenId: number | null;
  readonly padTokenId: number | null;
  /** ids of every special added token (skipped by decode with skipSpecialTokens) */
  readonly specialIds: Set<number>;
  /** one more than the largest id (vocab + added tokens) */
  readonly vocabSize: number;

  constructor(
    files: TokenizerFiles,
    source = { tokenizerJson: 'tokenizer.json', tokenizerConfig: 'tokenizer_config.json' },
  ) {
    this.files = files;
    this.source = source;
    const j = files.tokenizerJson;
    if (!j.model || typeof j.model !== 'object')
      throw new TokenizerError(`${source.tokenizerJson}: field "model" is missing or not an object`);
    const added = j.added_tokens ?? [];
    if (!Array.isArray(added)) throw new TokenizerError(`${source.tokenizerJson}: field "added_tokens" is not a list`);
    added.forEach((t, i) => {
      if (
        !t ||
        typeof t !== 'object' ||
        typeof (t as { content?: unknown }).content !== 'string' ||
        !Number.isInteger((t as { id?: unknown }).id)
      )
        throw new TokenizerError(
          `${source.tokenizerJson}: added_tokens[${i}] needs an integer "id" and a string "content"`,
        );
    });
    try {
      this.tk = new Tokenizer({ ...j, added_tokens: added }, files.tokenizerConfig);
    } catch (e) {
      throw new TokenizerError(`${source.tokenizerJson}: cannot build the tokenizer (${(e as Error).message})`);
    }
    const c = files.tokenizerConfig;
    const lookup = (field: string): [string | null, number | null] => {
      const s = tokenString(c[field]);
      if (s === null) return [null, null];
      const id = this.tk.token_to_id(s);
      if (id === undefined)
        throw new TokenizerError(
          `${source.tokenizerConfig}: field "${field}" is "${s}", which is not in ${source.tokenizerJson}`,
        );
      return [s, id];
    };
    [this.bosToken, this.bosTokenId] = lookup('bos_token');
    [this.eosToken, this.eosTokenId] = lookup('eos_token');
    [this.unkToken, this.unkTokenId] = lookup('unk_token');
    [this.padToken, this.padTokenId] = lookup('pad_token');
    this.specialIds = new Set();
    for (const [id, t] of this.tk.get_added_tokens_decoder()) if (t.special) this.specialIds.add(id);
    let max = -1;
    for (const id of this.tk.get_vocab(true).values()) if (id > max) max = id;
    this.vocabSize = max + 1;
  }

  static fromFiles(tokenizerJsonPath: string, tokenizerConfigPath?: string): LensTokenizer {
    return new LensTokenizer(readTokenizerFiles(tokenizerJsonPath, tokenizerConfigPath), {
      tokenizerJson: tokenizerJsonPath,
      tokenizerConfig: tokenizerConfigPath ?? 'tokenizer_config.json',
    });
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (text.length === 0 && opts.addSpecialTokens === false) return [];
    return this.tk.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  tokens(text: string, opts: EncodeOptions = {}): string[] {
    return this.tk.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).tokens;
  }

  decode(ids: ArrayLike<number>, opts: { skipSpecialTokens?: boolean } = {}): string {
    const arr = Array.from(ids);
    if (arr.length === 0) return '';
    for (const id of arr) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize)
        throw new TokenizerError(`token id ${id} is outside the vocabulary (size ${this.vocabSize})`);
    }
    return this.tk.decode(arr, { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | undefined {
    return this.tk.token_to_id(token);
  }
  idToToken(id: number): string | undefined {
    return this.tk.id_to_token(id);
  }

  /** The id of the image placeholder token (default "<image>"); throws naming the file when absent. */
  imageTokenId(token = '<image>'): number {
    const id = this.tk.token_to_id(token);
    if (id === undefined) throw new TokenizerError(`${this.source.tokenizerJson}: no image token "${token}"`);
    return id;
  }

  /** A decoder for streamed ids: push() returns the newly completed text. */
  streamDecoder(opts: { skipSpecialTokens?: boolean } = {}): StreamDecoder {
    return new StreamDecoder(this, opts.skipSpecialTokens ?? true);
  }
}

/**
 * Incremental detokenization: decodes all ids so far (so leading-space rules and multi-token characters are right;
 * generated answers are short) and holds text back while it ends in an incomplete UTF-8 sequence (U+FFFD).
 */
export class StreamDecoder {
  private ids: number[] = [];
  private emitted = '';
  constructor(
    private tok: LensTokenizer,
    private skipSpecial: boolean,
  ) {}
  push(id: number): string {
    this.ids.push(id);
    const text = this.tok.decode(this.ids, { skipSpecialTokens: this.skipSpecial });
    if (text.endsWith('\uFFFD')) return '';
    if (!text.startsWith(this.emitted)) {
      // decoding changed earlier text (rare with byte-level BPE): emit nothing new, resync
      this.emitted = text;
      return '';
    }
    const delta = text.slice(this.emitted.length);
    this.emitted = text;
    return delta;
  }
  /** everything decoded so far */
  get text(): string {
    return this.emitted;
  }
}
