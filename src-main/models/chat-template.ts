// Chat templates (Jinja, as in tokenizer_config.json / chat_template.json / chat_template.jinja), rendered with
// @huggingface/jinja the way transformers' apply_chat_template does: messages, add_generation_prompt, and the
// special tokens as variables. Message content is a plain string or a LLaVA-style list of parts
// ({type: 'text', text} / {type: 'image'}).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';

export class ChatTemplateError extends Error {}

export type ContentPart = { type: 'text'; text: string } | { type: 'image' };
export interface ChatMessage {
  role: string;
  content: string | ContentPart[];
}

export interface RenderOptions {
  addGenerationPrompt?: boolean;
  /** extra variables for the template (e.g. tools, date_string) */
  extra?: Record<string, unknown>;
}

export class ChatTemplate {
  readonly source: string;
  /** where the template came from, for error messages, e.g. "…/tokenizer_config.json: field chat_template" */
  readonly origin: string;
  private tpl: Template;
  private specials: Record<string, string | null>;

  constructor(source: string, specials: { bos_token?: string | null; eos_token?: string | null; unk_token?: string | null; pad_token?: string | null } = {}, origin = 'chat_template') {
    this.source = source;
    this.origin = origin;
    this.specials = { bos_token: specials.bos_token ?? '', eos_token: specials.eos_token ?? '', unk_token: specials.unk_token ?? '', pad_token: specials.pad_token ?? '' };
    try {
      this.tpl = new Template(source);
    } catch (e) {
      throw new ChatTemplateError(`${origin}: template does not parse (${(e as Error).message})`);
    }
  }

  render(messages: ChatMessage[], opts: RenderOptions = {}): string {
    messages.forEach((m, i) => {
      if (typeof m.role !== 'string') throw new ChatTemplateError(`messages[${i}].role must be a string`);
      if (typeof m.content !== 'string' && !Array.isArray(m.content)) throw new ChatTemplateError(`messages[${i}].content must be a string or a list of parts`);
    });
    try {
      return this.tpl.render({
        ...this.specials,
        ...(opts.extra ?? {}),
        messages,
        add_generation_prompt: opts.addGenerationPrompt ?? false,
      });
    } catch (e) {
      throw new ChatTemplateError(`${this.origin}: rendering failed (${(e as Error).message})`);
    }
  }
}

/**
 * The template text of a folder, in transformers' order of precedence: chat_template.jinja, chat_template.json
 * ({"chat_template": ...}), then tokenizer_config.json's chat_template (a string, or a list of {name, template}
 * from which "default" is taken). Returns null when the folder has none.
 */
export function findChatTemplate(dir: string, tokenizerConfig: Record<string, unknown>): { source: string; origin: string } | null {
  const jinja = join(dir, 'chat_template.jinja');
  if (existsSync(jinja)) return { source: readFileSync(jinja, 'utf8'), origin: jinja };
  const json = join(dir, 'chat_template.json');
  if (existsSync(json)) {
    let o: unknown;
    try {
      o = JSON.parse(readFileSync(json, 'utf8'));
    } catch (e) {
      throw new ChatTemplateError(`${json}: not valid JSON (${(e as Error).message})`);
    }
    const t = (o as { chat_template?: unknown })?.chat_template;
    if (typeof t !== 'string') throw new ChatTemplateError(`${json}: field "chat_template" is not a string`);
    return { source: t, origin: `${json}: field "chat_template"` };
  }
  const t = tokenizerConfig.chat_template;
  const origin = `${join(dir, 'tokenizer_config.json')}: field "chat_template"`;
  if (t === undefined || t === null) return null;
  if (typeof t === 'string') return { source: t, origin };
  if (Array.isArray(t)) {
    const d = t.find((x) => x && typeof x === 'object' && (x as { name?: unknown }).name === 'default') as { template?: unknown } | undefined;
    if (d && typeof d.template === 'string') return { source: d.template, origin };
    throw new ChatTemplateError(`${origin}: a list of templates without one named "default"`);
  }
  throw new ChatTemplateError(`${origin}: must be a string or a list of {name, template}`);
}

/**
 * LLaVA-1.5 style template ("USER: <image>\n… ASSISTANT: …</s>") that accepts both plain-string and list content.
 * The bos token is not in the template: the tokenizer's post-processor adds it (encode with special tokens).
 */
export const LLAVA_CHAT_TEMPLATE =
  "{% for message in messages %}" +
  "{% if message['role'] == 'system' %}" +
  "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}{{ '\\n' }}" +
  "{% else %}" +
  "{{ message['role'].upper() + ': ' }}" +
  "{% if message['content'] is string %}{{ message['content'] }}" +
  "{% else %}{% for part in message['content'] %}{% if part['type'] == 'image' %}{{ '<image>\\n' }}{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}" +
  "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}" +
  "{% endif %}" +
  "{% endfor %}" +
  "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}";
