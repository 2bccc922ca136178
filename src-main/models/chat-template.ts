// Chat templates (Jinja, as in tokenizer_config.json / chat_template.json / chat_template.jinja), rendered with
// @huggingface/jinja the way transformers' apply_chat_template does: trim_blocks + lstrip_blocks, messages,
// add_generation_prompt, the special tokens as variables, raise_exception, range() capped as Jinja's sandbox caps it,
// and {% generation %} ... {% endgeneration %} (transformers' AssistantTracker) marking the assistant text that
// return_assistant_tokens_mask puts in the loss. Rendering runs in a sandbox worker with time, output and memory
// limits (template-sandbox.ts).
//
// Message content: callers pass a string (the "<image>" tag marks the image, as datasets and generate write it) or
// a list of parts ({type: 'text', text} / {type: 'image'}). Published VLM templates (llava-hf, SmolVLM) read
// content only as a list of parts; text-model templates read it as a string. Which one a template reads is found
// once by rendering probe messages both ways (a template reading both gets strings), and content is converted to
// that form: "<image>\nWhat?" becomes
// [{type: 'image'}, {type: 'text', text: 'What?'}] (the newline after a tag belongs to the tag), and parts given to
// a string template become "<image>\n" + text.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_TEMPLATE_LIMITS, sandboxCall, type SandboxReply, type TemplateLimits } from './template-sandbox';

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

/** Rendered text and the [start, end) UTF-16 offsets of what each {% generation %} block wrote. */
export interface RenderedChat {
  text: string;
  generationSpans: Array<[number, number]>;
}

/** The image tag in string content (LLaVA's convention, used by datasets and generate). */
export const IMAGE_PLACEHOLDER = '<image>';

// Noncharacters (never in interchange text) written where {% generation %} blocks start and end.
const GEN_OPEN = '\uFDD0';
const GEN_CLOSE = '\uFDD1';
const MARKERS = /[\uFDD0\uFDD1]/g;

// Jinja tags @huggingface/jinja implements (plus generation, rewritten before it sees the text).
const SUPPORTED_TAGS = new Set([
  'if',
  'elif',
  'else',
  'endif',
  'for',
  'endfor',
  'set',
  'endset',
  'macro',
  'endmacro',
  'call',
  'endcall',
  'filter',
  'endfilter',
  'break',
  'continue',
  'generation',
  'endgeneration',
]);

/**
 * Apply transformers' lstrip_blocks and trim_blocks to the source (as Jinja's lexer does, on the source lines: spaces
 * and tabs before a block tag or comment that starts its line go, as does the newline right after a block tag or
 * comment; `{%+` / `+%}` keep them), then turn {% generation %} / {% endgeneration %} into expressions writing the
 * markers, with their own `-` whitespace control. The engine's own lstrip/trim pass finds nothing left to do after this.
 */
export function rewriteGenerationTags(source: string): string {
  const trimmed = source.replace(/^[ \t]+(?=\{%(?!\+)|\{#)/gm, '').replace(/((?<!\+)%\}|#\})\n/g, '$1');
  return trimmed.replace(
    /\{%([-+]?)\s*(end)?generation\s*([-+]?)%\}/g,
    (_m, pre: string, end: string | undefined, post: string) =>
      `{{${pre === '-' ? '-' : ''} '${end ? GEN_CLOSE : GEN_OPEN}' ${post === '-' ? '-' : ''}}}`,
  );
}

/** The block tags a template uses that the engine does not implement. */
function unsupportedTags(source: string): string[] {
  const found = new Set<string>();
  for (const m of source.matchAll(/\{%[-+]?\s*([A-Za-z_]\w*)/g)) if (!SUPPORTED_TAGS.has(m[1])) found.add(m[1]);
  return [...found];
}

/** Name the unsupported feature in an engine error, when it is one. */
function describeEngineError(message: string): string {
  let m = /Unknown statement type: (\w+)/.exec(message);
  if (m) return `unsupported Jinja feature: the {% ${m[1]} %} tag`;
  m = /Unknown (?:(\w+)Value )?filter: (\w+)/.exec(message);
  if (m) return `unsupported Jinja feature: the filter "${m[2]}"${m[1] ? ` on a ${m[1].toLowerCase()}` : ''}`;
  m = /Unknown test: (\w+)/.exec(message);
  if (m) return `unsupported Jinja feature: the test "is ${m[1]}"`;
  m = /Unknown operator "?([^"\s]+)"?/.exec(message);
  if (m) return `unsupported Jinja feature: the operator "${m[1]}" (${message})`;
  return message;
}

/** String content -> parts: "<image>" tags become image parts, the newline right after a tag goes with it. */
export function contentToParts(content: string): ContentPart[] {
  const parts: ContentPart[] = [];
  const pieces = content.split(IMAGE_PLACEHOLDER);
  pieces.forEach((piece, i) => {
    let text = piece;
    if (i > 0) {
      parts.push({ type: 'image' });
      if (text.startsWith('\n')) text = text.slice(1);
    }
    if (text) parts.push({ type: 'text', text });
  });
  return parts;
}

/** Parts -> string content: an image part becomes "<image>\n". */
export function partsToContent(parts: ContentPart[]): string {
  return parts.map((p) => (p.type === 'image' ? `${IMAGE_PLACEHOLDER}\n` : p.type === 'text' ? p.text : '')).join('');
}

export class ChatTemplate {
  readonly source: string;
  /** where the template came from, for error messages, e.g. "…/tokenizer_config.json: field chat_template" */
  readonly origin: string;
  /** the template marks assistant text with {% generation %} (the loss mask then follows it) */
  readonly hasGeneration: boolean;
  private readonly engineSource: string;
  private specials: Record<string, string | null>;
  private limits: TemplateLimits;
  private probed: { style: 'parts' | 'string'; writesImages: boolean } | null = null;
  /** The first limit this template overran: every later render fails with it at once instead of waiting again. */
  private overrun: ChatTemplateError | null = null;

  constructor(
    source: string,
    specials: {
      bos_token?: string | null;
      eos_token?: string | null;
      unk_token?: string | null;
      pad_token?: string | null;
    } = {},
    origin = 'chat_template',
    limits: Partial<TemplateLimits> = {},
  ) {
    if (typeof source !== 'string') throw new ChatTemplateError(`${origin}: the template is not a string`);
    this.source = source;
    this.origin = origin;
    this.limits = { ...DEFAULT_TEMPLATE_LIMITS, ...limits };
    this.specials = {
      bos_token: specials.bos_token ?? '',
      eos_token: specials.eos_token ?? '',
      unk_token: specials.unk_token ?? '',
      pad_token: specials.pad_token ?? '',
    };
    this.engineSource = rewriteGenerationTags(source);
    this.hasGeneration = this.engineSource.includes(GEN_OPEN);
    const bad = unsupportedTags(source);
    if (bad.length)
      throw new ChatTemplateError(
        `${origin}: unsupported Jinja feature: ${bad.map((t) => `the {% ${t} %} tag`).join(', ')}`,
      );
    const r = sandboxCall('parse', this.engineSource, {}, this.limits);
    if (!r.ok) {
      if (r.kind === 'limit') throw new ChatTemplateError(`${origin}: parsing ${r.message}`);
      const what = describeEngineError(r.message);
      throw new ChatTemplateError(
        what === r.message ? `${origin}: template does not parse (${r.message})` : `${origin}: ${what}`,
      );
    }
  }

  /** How the template reads message content: a list of {type} parts (published VLM templates) or a string. */
  get contentStyle(): 'parts' | 'string' {
    return this.probe().style;
  }

  /** Whether the template writes anything for an image part (false: images given to it would be dropped). */
  get writesImages(): boolean {
    return this.probe().writesImages;
  }

  /**
   * One render in the sandbox. An overrun is confirmed by a second try before it is reported: a loaded machine can
   * starve the worker past limits an ordinary template never comes near, and an overrun is remembered (every later
   * render of this template is refused at once), so one stall must not fail the rest of a run's samples. A worker
   * that gave no answer has already been replaced by sandboxCall.
   */
  private renderInSandbox(items: Record<string, unknown>): SandboxReply {
    const r = sandboxCall('render', this.engineSource, items, this.limits);
    if (r.ok || r.kind !== 'limit') return r;
    return sandboxCall('render', this.engineSource, items, this.limits);
  }

  private probe(): { style: 'parts' | 'string'; writesImages: boolean } {
    if (this.probed) return this.probed;
    const mark = 'lenslab probe text 7f3a';
    const attempt = (content: string | ContentPart[]): string | null => {
      const r = this.renderInSandbox(this.items([{ role: 'user', content }], true));
      // a template that overruns a limit on a one-line probe is broken whatever it is given: say so once
      if (!r.ok && r.kind === 'limit')
        throw (this.overrun = new ChatTemplateError(`${this.origin}: rendering ${r.message}`));
      return r.ok && typeof r.text === 'string' ? r.text.replace(MARKERS, '') : null;
    };
    const asString = attempt(mark);
    const asParts = attempt([{ type: 'text', text: mark }]);
    // a string template given a list prints the list itself ("[{'type': 'text', ...}]"): that is not reading parts
    const partsRead = asParts !== null && asParts.includes(mark) && !/['"]type['"]|\[object /.test(asParts);
    const stringRead = asString !== null && asString.includes(mark);
    // a template that reads both forms gets strings, where the "<image>" tag stays where the caller put it
    const style = partsRead && !stringRead ? 'parts' : 'string';
    let writesImages = true;
    if (style === 'parts') {
      const withImage = attempt([{ type: 'image' }, { type: 'text', text: mark }]);
      writesImages = withImage !== null && withImage !== asParts;
    } else {
      const withImage = attempt(`${IMAGE_PLACEHOLDER}\n${mark}`);
      writesImages = withImage !== null && withImage.includes(IMAGE_PLACEHOLDER);
    }
    this.probed = { style, writesImages };
    return this.probed;
  }

  private items(
    messages: ChatMessage[],
    addGenerationPrompt: boolean,
    extra: Record<string, unknown> = {},
  ): Record<string, unknown> {
    return { ...this.specials, ...extra, messages, add_generation_prompt: addGenerationPrompt };
  }

  render(messages: ChatMessage[], opts: RenderOptions = {}): string {
    return this.renderWithSpans(messages, opts).text;
  }

  /** Render, and say where each {% generation %} block's text is (empty when the template has none). */
  renderWithSpans(messages: ChatMessage[], opts: RenderOptions = {}): RenderedChat {
    if (this.overrun) throw this.overrun;
    if (!Array.isArray(messages)) throw new ChatTemplateError('messages must be a list');
    messages.forEach((m, i) => {
      if (!m || typeof m.role !== 'string') throw new ChatTemplateError(`messages[${i}].role must be a string`);
      if (typeof m.content !== 'string' && !Array.isArray(m.content))
        throw new ChatTemplateError(`messages[${i}].content must be a string or a list of parts`);
    });
    const style = this.contentStyle;
    const strip = (t: string) => t.replace(MARKERS, '');
    const shaped = messages.map((m) => {
      if (style === 'parts') {
        const parts = typeof m.content === 'string' ? contentToParts(m.content) : m.content;
        return { ...m, content: parts.map((p) => (p.type === 'text' ? { ...p, text: strip(String(p.text)) } : p)) };
      }
      return { ...m, content: strip(typeof m.content === 'string' ? m.content : partsToContent(m.content)) };
    });
    const r = this.renderInSandbox(this.items(shaped, opts.addGenerationPrompt ?? false, opts.extra));
    if (!r.ok) {
      if (r.kind === 'limit') throw (this.overrun = new ChatTemplateError(`${this.origin}: rendering ${r.message}`));
      throw new ChatTemplateError(`${this.origin}: rendering failed (${describeEngineError(r.message)})`);
    }
    const raw = r.text ?? '';
    if (!this.hasGeneration) return { text: raw, generationSpans: [] };
    let text = '';
    const spans: Array<[number, number]> = [];
    let open = -1;
    let last = 0;
    for (const m of raw.matchAll(MARKERS)) {
      text += raw.slice(last, m.index);
      last = m.index + 1;
      if (m[0] === GEN_OPEN) open = text.length;
      else if (open >= 0) {
        spans.push([open, text.length]);
        open = -1;
      }
    }
    text += raw.slice(last);
    return { text, generationSpans: spans };
  }
}

/**
 * The template text of a folder, in transformers' order of precedence: chat_template.jinja, chat_template.json
 * ({"chat_template": ...}), then tokenizer_config.json's chat_template (a string, or a list of {name, template}
 * from which "default" is taken). Returns null when the folder has none.
 */
export function findChatTemplate(
  dir: string,
  tokenizerConfig: Record<string, unknown>,
): { source: string; origin: string } | null {
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
    const d = t.find((x) => x && typeof x === 'object' && (x as { name?: unknown }).name === 'default') as
      { template?: unknown } | undefined;
    if (d && typeof d.template === 'string') return { source: d.template, origin };
    throw new ChatTemplateError(`${origin}: a list of templates without one named "default"`);
  }
  throw new ChatTemplateError(`${origin}: must be a string or a list of {name, template}`);
}

/** What a folder without a chat template gets told. */
export function missingTemplateWarning(dir: string): string {
  return `${dir}: no chat template (chat_template.jinja, chat_template.json or tokenizer_config.json "chat_template"): the built-in LLaVA-1.5 template ("USER: <image>\\n... ASSISTANT:") is used`;
}

/**
 * LLaVA-1.5 style template ("USER: <image>\n… ASSISTANT: …</s>") that accepts both plain-string and list content.
 * The bos token is not in the template: the tokenizer's post-processor adds it (encode with special tokens).
 */
export const LLAVA_CHAT_TEMPLATE =
  '{% for message in messages %}' +
  "{% if message['role'] == 'system' %}" +
  "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}{{ '\\n' }}" +
  '{% else %}' +
  "{{ message['role'].upper() + ': ' }}" +
  "{% if message['content'] is string %}{{ message['content'] }}" +
  "{% else %}{% for part in message['content'] %}{% if part['type'] == 'image' %}{{ '<image>\\n' }}{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}" +
  "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}" +
  '{% endif %}' +
  '{% endfor %}' +
  "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}";
