// LLaVA / ShareGPT records (`conversations` of {from, value}, `image` or `images`) and the
// `messages` + `images` form (LLaMA-Factory, TRL; content as a string or a list of parts).
import { conversationToAnnotations, countImageTokens, normalizeRole } from '../conversation';
import { llavaRecord, messagesRecord, zodProblems } from '../schemas';
import { IMAGE_TOKEN, type Annotation, type ChatMessage, type ImageSource } from '../types';
import { isRecord, readMeta, type ParseContext, type RecordOut } from './common';
import type { JsonRecord } from '../read';

/** Does this record look like a conversation record (either form)? */
export function conversationKind(v: unknown): 'llava' | 'messages' | undefined {
  if (!isRecord(v)) return undefined;
  if ('conversations' in v) return 'llava';
  if ('messages' in v) return 'messages';
  return undefined;
}

/** Parse conversation records from `file`. Bad records become problems; good ones records. */
export function parseConversationRecords(
  ctx: ParseContext,
  file: string,
  records: JsonRecord[],
  split?: RecordOut['split'],
): RecordOut[] {
  const out: RecordOut[] = [];
  for (const { ref, value } of records) {
    const kind = conversationKind(value);
    if (!kind) {
      ctx.error(
        ref,
        isRecord(value)
          ? 'record has neither `conversations` nor `messages`'
          : `expected an object, got ${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value}`,
      );
      continue;
    }
    const rec = kind === 'llava' ? fromLlava(ctx, file, ref, value) : fromMessages(ctx, file, ref, value);
    if (rec) {
      if (split && !rec.split) rec.split = split;
      out.push(rec);
    }
  }
  return out;
}

function finish(
  ctx: ParseContext,
  ref: string,
  messages: ChatMessage[],
  images: ImageSource[],
  raw: Record<string, unknown>,
): RecordOut | undefined {
  if (images.length > 1) {
    ctx.error(
      ref,
      `has ${images.length} images; a Lenslab item holds one image (split the sample or keep one image)`,
      'images',
    );
    return undefined;
  }
  const tags = countImageTokens(messages);
  if (tags > images.length) {
    const field = 'conversations' in raw ? 'conversations' : 'messages';
    ctx.warn(
      ref,
      `${tags} ${IMAGE_TOKEN} tags but ${images.length} image${images.length === 1 ? '' : 's'}: each tag stands for one image, so this record cannot be trained as it is (the linter reports it as image_token_mismatch); remove the extra tag${tags - images.length === 1 ? '' : 's'}`,
      field,
    );
  }
  const meta = readMeta(ctx, ref, raw.lenslab);
  let annotations: Annotation[] | undefined;
  if (meta?.kind && meta.kind !== 'chat') {
    annotations = conversationToAnnotations(meta.kind, messages);
    if (!annotations)
      ctx.warn(ref, `conversation does not have the shape of a ${meta.kind}; kept as a chat`, 'lenslab.kind');
  }
  annotations ??= [{ kind: 'chat', data: { messages } }];
  return { ref, image: images[0], annotations, meta };
}

function fromLlava(ctx: ParseContext, file: string, ref: string, value: unknown): RecordOut | undefined {
  const r = llavaRecord.safeParse(value);
  if (!r.success) {
    ctx.problems.push(...zodProblems(r.error, ref));
    return undefined;
  }
  const rec = r.data;
  const messages: ChatMessage[] = [];
  if (rec.system && rec.system.trim()) messages.push({ role: 'system', content: rec.system });
  for (let i = 0; i < rec.conversations.length; i++) {
    const t = rec.conversations[i];
    const role = normalizeRole(t.from);
    if (!role) {
      ctx.error(
        ref,
        `unsupported speaker '${t.from}' (expected human/user, gpt/assistant or system)`,
        `conversations[${i}].from`,
      );
      return undefined;
    }
    messages.push({ role, content: t.value });
  }
  const written = rec.images ?? (rec.image != null ? [rec.image] : []);
  const images: ImageSource[] = [];
  for (let i = 0; i < written.length; i++) {
    const img = ctx.image(ref, rec.images ? `images[${i}]` : 'image', written[i], file);
    if (!img) return undefined;
    images.push(img);
  }
  return finish(ctx, ref, messages, images, rec);
}

function fromMessages(ctx: ParseContext, file: string, ref: string, value: unknown): RecordOut | undefined {
  const r = messagesRecord.safeParse(value);
  if (!r.success) {
    ctx.problems.push(...zodProblems(r.error, ref));
    return undefined;
  }
  const rec = r.data;
  const messages: ChatMessage[] = [];
  for (let i = 0; i < rec.messages.length; i++) {
    const t = rec.messages[i];
    const role = normalizeRole(t.role);
    if (!role) {
      ctx.error(ref, `unsupported role '${t.role}' (expected system, user or assistant)`, `messages[${i}].role`);
      return undefined;
    }
    const content =
      typeof t.content === 'string' ? t.content : joinParts(t.content as { type: string; text?: string }[]);
    messages.push({ role, content });
  }
  const images: ImageSource[] = [];
  const list = rec.images ?? [];
  for (let i = 0; i < list.length; i++) {
    const w = list[i];
    const img = ctx.image(ref, `images[${i}]`, typeof w === 'string' ? w : w.path, file);
    if (!img) return undefined;
    images.push(img);
  }
  return finish(ctx, ref, messages, images, rec);
}

/** Content parts (`{type:'image'}`, `{type:'text', text}`) → text with `<image>` tags, LLaVA style (`<image>\n` before text). */
export function joinParts(parts: { type: string; text?: string }[]): string {
  let out = '';
  for (const p of parts) {
    if (p.type === 'image') out += IMAGE_TOKEN;
    else out += out.endsWith(IMAGE_TOKEN) && !String(p.text).startsWith('\n') ? `\n${p.text}` : String(p.text);
  }
  return out;
}
