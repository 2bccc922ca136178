// Test stand-ins for a tokenizer and a chat template (the real ones live in src-main/models).
import type { ChatFormatter, TextTokenizer } from '../../src-main/datasets/render';
import type { ChatMessage } from '../../src-main/datasets/types';

/** Splits into special tokens, whitespace runs and words; ids are handed out on first sight. */
export class WhitespaceTokenizer implements TextTokenizer {
  private vocab = new Map<string, number>();
  private inv: string[] = [];
  readonly bosToken = '<s>';
  constructor(
    readonly specials = ['<s>', '</s>', '<|im_start|>', '<|im_end|>', '<image>'],
    readonly addBos = false,
  ) {
    for (const s of specials) this.id(s);
  }
  id(t: string): number {
    let id = this.vocab.get(t);
    if (id === undefined) {
      id = this.inv.length;
      this.vocab.set(t, id);
      this.inv.push(t);
    }
    return id;
  }
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    const esc = this.specials.map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|');
    const parts = text.match(new RegExp(`${esc}|\\s+|[^\\s<]+|<`, 'g')) ?? [];
    const ids = parts.map((p) => this.id(p));
    return this.addBos && opts.addSpecialTokens !== false ? [this.id('<s>'), ...ids] : ids;
  }
  decode(ids: ArrayLike<number>): string {
    return Array.from(ids, (i) => this.inv[i]).join('');
  }
}

/** ChatML, as Qwen2 uses it. */
export const chatml: ChatFormatter = {
  render(messages: ChatMessage[], opts = {}) {
    return (
      messages.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join('') +
      (opts.addGenerationPrompt ? '<|im_start|>assistant\n' : '')
    );
  },
};
