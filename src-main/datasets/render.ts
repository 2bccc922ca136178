// Rendering a sample for training: messages → chat template text → token ids + loss mask.
// This is the ONE place that decides which tokens are in the loss; the trainer, the tokenized preview and
// the "too long" lint all call it.
//
// Templates with {% generation %} blocks (published llava-hf templates) say themselves which text is the
// assistant's: the loss mask is exactly what transformers' return_assistant_tokens_mask gives for them.
//
// Otherwise, rule: exactly the assistant turns' tokens are in the loss: the assistant content plus the template's
// end-of-turn token(s) after it (e.g. `</s>`, `<|im_end|>`), not the role header before it, nor whitespace
// after the end-of-turn token.
//
// Method (prefix rendering, no template-specific code): the whole conversation is rendered and tokenized
// once (so ids are exactly what the model sees). For assistant turn i, the conversation up to turn i is
// rendered with the generation prompt (P_i: ends where the assistant starts speaking) and up to and
// including turn i (F_i). Both must be prefixes of the full text. The loss span starts at the token where
// tokenize(P_i) stops agreeing with the full ids, and ends where tokenize(F_i without trailing whitespace)
// stops agreeing. Templates that rewrite earlier turns (not prefix-stable) are rejected with a clear error.
import { itemConversations, type ConversationOptions } from './conversation';
import type { Annotation, ChatMessage } from './types';

/** What render needs from a chat template (models/chat-template.ts ChatTemplate satisfies it). */
export interface ChatFormatter {
  render(messages: ChatMessage[], opts?: { addGenerationPrompt?: boolean }): string;
  /** Where the template came from, for errors (a file and field). */
  readonly origin?: string;
  /** The template marks assistant text with {% generation %}: the loss mask follows those spans. */
  readonly hasGeneration?: boolean;
  renderWithSpans?(
    messages: ChatMessage[],
    opts?: { addGenerationPrompt?: boolean },
  ): { text: string; generationSpans: Array<[number, number]> };
}

/** What render needs from a tokenizer (models/tokenizer.ts LensTokenizer satisfies it). */
export interface TextTokenizer {
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  /** Token text for display (optional; the preview falls back to decode, then to the id). */
  idToToken?(id: number): string | undefined;
  decode?(ids: ArrayLike<number>): string;
  /** When the template already writes this at the start, the tokenizer's own special prefix is not added. */
  bosToken?: string | null;
}

export interface RenderSetup {
  template: ChatFormatter;
  tokenizer: TextTokenizer;
  /**
   * Image placeholder expansion: each `tokenId` in the ids becomes `ids` (the model family's tokens for one image,
   * e.g. Idefics3's tile markers and image tokens), or `count` copies of itself when `ids` is absent; never in the
   * loss. Omit to keep one placeholder token per image.
   */
  image?: { tokenId: number; count: number; ids?: readonly number[] };
  /** Let the tokenizer add its special tokens (e.g. <s>) unless the template already starts with bosToken. Default true. */
  addSpecialTokens?: boolean;
  /** What the setup had to assume (e.g. no chat template in the folder, a built-in one is used). */
  warnings?: string[];
  /**
   * The setup for an image of this size, where the model's image tokens depend on it (tiles); without it (or
   * without a size) `image` holds the largest expansion, so lengths are upper bounds.
   */
  forImage?(width: number, height: number): RenderSetup;
  /** The model's own user prompt for caption annotations (BLIP-2: '', prompt-free captioning); default conversation.ts's. */
  captionPrompt?: string;
}

/** The setup for an item's image when its size is known. */
export function setupForImage(
  setup: RenderSetup,
  size?: { width: number | null; height: number | null } | null,
): RenderSetup {
  return setup.forImage && size?.width && size.height ? setup.forImage(size.width, size.height) : setup;
}

export class RenderError extends Error {}

export interface RenderedConversation {
  /** The rendered template text. */
  text: string;
  /** Token ids, images expanded. */
  ids: number[];
  /** 1 where the token is a training target (assistant content + end of turn), else 0. Same length as ids. */
  lossMask: number[];
  /** Number of image placeholders in the conversation. */
  imageCount: number;
  /** Ids before image expansion, with their mask (for display). */
  compactIds: number[];
  compactMask: number[];
}

function lcp(a: number[], b: number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** Render one conversation and compute its loss mask. */
export function renderConversation(messages: ChatMessage[], setup: RenderSetup): RenderedConversation {
  if (messages.length === 0) throw new RenderError('the conversation is empty');
  const render = (msgs: ChatMessage[], gen: boolean): string => {
    try {
      return setup.template.render(msgs, { addGenerationPrompt: gen });
    } catch (err) {
      throw new RenderError(`chat template failed: ${(err as Error).message}`);
    }
  };
  const tpl = setup.template;
  const spanned = tpl.hasGeneration && tpl.renderWithSpans ? renderSpans(tpl, messages) : null;
  const full = spanned ? spanned.text : render(messages, false);
  const bos = setup.tokenizer.bosToken;
  const special = (setup.addSpecialTokens ?? true) && !(bos && full.startsWith(bos));
  const enc = (t: string) => setup.tokenizer.encode(t, { addSpecialTokens: special });
  const ids = enc(full);
  const mask = new Array<number>(ids.length).fill(0);
  if (spanned) {
    // transformers' return_assistant_tokens_mask: from the token holding the span's first character to the token
    // holding its last (char_to_token(start) .. char_to_token(end - 1)); a token is located as the first one where
    // the tokenization of the text before that character stops agreeing with the whole text's
    for (const [s, e] of spanned.generationSpans) {
      if (e <= s) continue;
      const start = lcp(enc(full.slice(0, s)), ids);
      const upto = enc(full.slice(0, e));
      const agreed = lcp(upto, ids);
      const end = agreed < upto.length && agreed < ids.length ? agreed + 1 : agreed;
      for (let k = start; k < end; k++) mask[k] = 1;
    }
  }
  for (let i = 0; i < messages.length && !spanned; i++) {
    if (messages[i].role !== 'assistant') continue;
    const prompt = render(messages.slice(0, i), true);
    const upto = render(messages.slice(0, i + 1), false);
    if (!upto.startsWith(prompt) || !full.startsWith(upto)) {
      throw new RenderError(
        `the chat template is not prefix-stable at message ${i} (rendering a shorter conversation changes earlier text), so the assistant tokens cannot be located`,
      );
    }
    const start = lcp(enc(prompt), ids);
    const end = lcp(enc(upto.replace(/\s+$/, '')), ids);
    for (let k = start; k < end; k++) mask[k] = 1;
  }
  let imageCount = 0;
  if (!setup.image) {
    return { text: full, ids, lossMask: mask, imageCount: countImages(messages), compactIds: ids, compactMask: mask };
  }
  const outIds: number[] = [];
  const outMask: number[] = [];
  const expansion = setup.image.ids ?? new Array<number>(setup.image.count).fill(setup.image.tokenId);
  for (let k = 0; k < ids.length; k++) {
    if (ids[k] === setup.image.tokenId) {
      imageCount++;
      for (const id of expansion) {
        outIds.push(id);
        outMask.push(0);
      }
    } else {
      outIds.push(ids[k]);
      outMask.push(mask[k]);
    }
  }
  const tags = countImages(messages);
  if (tags > 0 && imageCount !== tags) {
    throw new RenderError(
      `${tpl.origin ?? 'the chat template'}: the conversation has ${tags} image(s) but the rendered text holds ${imageCount} image token(s) (id ${setup.image.tokenId}); ` +
        (imageCount === 0
          ? 'the template writes no image placeholder, so the model would never see the image'
          : 'the template places images differently than the conversation does'),
    );
  }
  return {
    text: full,
    ids: outIds,
    lossMask: outMask,
    imageCount,
    compactIds: ids,
    compactMask: mask.map((m, k) => (ids[k] === setup.image!.tokenId ? 0 : m)),
  };
}

function renderSpans(
  tpl: ChatFormatter,
  messages: ChatMessage[],
): { text: string; generationSpans: Array<[number, number]> } {
  try {
    return tpl.renderWithSpans!(messages, { addGenerationPrompt: false });
  } catch (err) {
    throw new RenderError(`chat template failed: ${(err as Error).message}`);
  }
}

function countImages(messages: ChatMessage[]): number {
  let n = 0;
  for (const m of messages) n += m.content.split('<image>').length - 1;
  return n;
}

/** A training sample as training/batching.ts consumes it. */
export interface RenderedSample {
  ids: number[];
  lossMask: number[];
  imageCount: number;
  key: string;
}

/**
 * Render every conversation of an item (see conversation.ts: one per caption, per run of QA pairs,
 * per chat) into training samples.
 */
export function renderItem(
  item: { id: number | string; annotations: Annotation[]; hasImage: boolean },
  setup: RenderSetup,
  opts: ConversationOptions = {},
): RenderedSample[] {
  return itemConversations(item.annotations, item.hasImage, {
    ...opts,
    captionPrompt: opts.captionPrompt ?? setup.captionPrompt,
  }).map((c, k) => {
    const r = renderConversation(c.messages, setup);
    return { ids: r.ids, lossMask: r.lossMask, imageCount: r.imageCount, key: `${item.id}#${k}` };
  });
}

export interface PreviewToken {
  id: number;
  text: string;
  inLoss: boolean;
  /** For an image placeholder: how many image tokens it stands for. */
  repeat?: number;
}

export interface ConversationPreview {
  kind: Annotation['kind'];
  text: string;
  tokens: PreviewToken[];
  /** Tokens the model sees (images expanded). */
  totalTokens: number;
  lossTokens: number;
}

/** The tokenized preview of an item: rendered template text and each token with whether it is in the loss. */
export function previewItem(
  item: {
    annotations: Annotation[];
    hasImage: boolean;
    imageSize?: { width: number | null; height: number | null } | null;
  },
  setup: RenderSetup,
  opts: ConversationOptions = {},
): ConversationPreview[] {
  setup = setupForImage(setup, item.imageSize);
  return itemConversations(item.annotations, item.hasImage, {
    ...opts,
    captionPrompt: opts.captionPrompt ?? setup.captionPrompt,
  }).map((c) => {
    const r = renderConversation(c.messages, setup);
    const tokens: PreviewToken[] = r.compactIds.map((id, k) => {
      const t: PreviewToken = { id, text: tokenText(setup.tokenizer, id), inLoss: r.compactMask[k] === 1 };
      if (setup.image && id === setup.image.tokenId) t.repeat = setup.image.count;
      return t;
    });
    return {
      kind: c.kind,
      text: r.text,
      tokens,
      totalTokens: r.ids.length,
      lossTokens: r.lossMask.reduce((a, b) => a + b, 0),
    };
  });
}

function tokenText(tk: TextTokenizer, id: number): string {
  try {
    if (tk.decode) return tk.decode([id]);
  } catch {
    /* fall through */
  }
  return tk.idToToken?.(id) ?? `#${id}`;
}
