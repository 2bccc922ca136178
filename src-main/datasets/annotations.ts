// The stored annotation shapes (annotations.data_json) as zod schemas: every write goes through these.
import { z } from 'zod';
import { MAX_TEXT_CHARS, MAX_TURNS } from './schemas';
import type { Annotation } from './types';

const text = z.string().max(MAX_TEXT_CHARS, { message: `text is too long (more than ${MAX_TEXT_CHARS} characters)` });
export const chatMessageSchema = z.strictObject({ role: z.enum(['system', 'user', 'assistant']), content: text });
export const annotationSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('caption'), data: z.strictObject({ text }) }),
  z.strictObject({ kind: z.literal('qa'), data: z.strictObject({ question: text, answer: text }) }),
  z.strictObject({
    kind: z.literal('chat'),
    data: z.strictObject({
      messages: z.array(chatMessageSchema).min(1, { message: 'a chat needs at least one message' }).max(MAX_TURNS),
    }),
  }),
]);

/** Validate an annotation; throws an Error naming the field. */
export function checkAnnotation(a: unknown, where = 'annotation'): Annotation {
  const r = annotationSchema.safeParse(a);
  if (r.success) return r.data as Annotation;
  const issue = r.error.issues[0];
  const path = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
  throw new Error(`${where}${path}: ${issue.message.replace(/^Invalid input: /, '')}`);
}
