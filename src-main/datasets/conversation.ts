// Annotations <-> chat messages. One place decides how a caption or a QA pair becomes a conversation
// (used by export, the tokenized preview, the trainer) and how such a conversation turns back into
// the annotation it came from (used by re-import of Lenslab's own exports).
import { IMAGE_TOKEN, type Annotation, type ChatMessage, type Role } from './types';

export const DEFAULT_CAPTION_PROMPT = 'Describe the image.';

export interface ConversationOptions {
  /** The user prompt for caption annotations. */
  captionPrompt?: string;
}

export interface Conversation {
  /** What the messages came from: a caption, all QA pairs of the item, or one chat. */
  kind: Annotation['kind'];
  messages: ChatMessage[];
}

function withImage(text: string, hasImage: boolean): string {
  return hasImage && !text.includes(IMAGE_TOKEN) ? `${IMAGE_TOKEN}\n${text}` : text;
}

/**
 * The conversations of an item, in annotation order: one per caption, one per run of consecutive QA pairs
 * (a multi-turn chat whose first question carries the image), and one per chat annotation (as stored).
 */
export function itemConversations(
  annotations: Annotation[],
  hasImage: boolean,
  opts: ConversationOptions = {},
): Conversation[] {
  const prompt = opts.captionPrompt ?? DEFAULT_CAPTION_PROMPT;
  const out: Conversation[] = [];
  let qa: ChatMessage[] | undefined;
  for (const a of annotations) {
    if (a.kind !== 'qa') qa = undefined;
    if (a.kind === 'caption') {
      out.push({
        kind: 'caption',
        messages: [
          { role: 'user', content: withImage(prompt, hasImage) },
          { role: 'assistant', content: a.data.text },
        ],
      });
    } else if (a.kind === 'qa') {
      if (!qa) out.push({ kind: 'qa', messages: (qa = []) });
      qa.push({ role: 'user', content: qa.length === 0 ? withImage(a.data.question, hasImage) : a.data.question });
      qa.push({ role: 'assistant', content: a.data.answer });
    } else {
      out.push({ kind: 'chat', messages: a.data.messages.map((m) => ({ role: m.role, content: m.content })) });
    }
  }
  return out;
}

function stripImageToken(text: string): string {
  if (text.startsWith(`${IMAGE_TOKEN}\n`)) return text.slice(IMAGE_TOKEN.length + 1);
  if (text.startsWith(IMAGE_TOKEN)) return text.slice(IMAGE_TOKEN.length);
  return text;
}

/**
 * Turn a conversation back into annotations of `kind` (the inverse of itemConversations).
 * Returns undefined when the messages do not have that kind's shape.
 */
export function conversationToAnnotations(kind: Annotation['kind'], messages: ChatMessage[]): Annotation[] | undefined {
  if (kind === 'chat') return [{ kind: 'chat', data: { messages } }];
  const turns = messages.filter((m) => m.role !== 'system');
  if (turns.length === 0 || turns.length % 2 !== 0 || turns.length !== messages.length) return undefined;
  for (let i = 0; i < turns.length; i++) if (turns[i].role !== (i % 2 === 0 ? 'user' : 'assistant')) return undefined;
  if (kind === 'caption') {
    if (turns.length !== 2) return undefined;
    return [{ kind: 'caption', data: { text: turns[1].content } }];
  }
  const out: Annotation[] = [];
  for (let i = 0; i < turns.length; i += 2) {
    out.push({
      kind: 'qa',
      data: { question: i === 0 ? stripImageToken(turns[i].content) : turns[i].content, answer: turns[i + 1].content },
    });
  }
  return out;
}

/** Map a ShareGPT `from` or a chat `role` to Lenslab's roles; undefined when unsupported. */
export function normalizeRole(from: string): Role | undefined {
  const k = from.trim().toLowerCase();
  if (k === 'human' || k === 'user') return 'user';
  if (k === 'gpt' || k === 'assistant' || k === 'model' || k === 'bot' || k === 'chatgpt') return 'assistant';
  if (k === 'system') return 'system';
  return undefined;
}

/** Count `<image>` tags in a conversation. */
export function countImageTokens(messages: ChatMessage[]): number {
  let n = 0;
  for (const m of messages) n += m.content.split(IMAGE_TOKEN).length - 1;
  return n;
}
