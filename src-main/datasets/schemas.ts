// Zod schemas of the source formats, and turning zod issues into field-named problems
// such as `data.json[3].conversations[1].value: expected string, received number`.
import { z } from 'zod';
import type { ImportProblem } from './types';

/** Longest text accepted in one field (characters). Larger fields are rejected per item. */
export const MAX_TEXT_CHARS = 1_000_000;
/** Most turns accepted in one conversation. */
export const MAX_TURNS = 1000;

export const text = z
  .string()
  .max(MAX_TEXT_CHARS, { message: `text is too long (more than ${MAX_TEXT_CHARS} characters)` });
const pathString = z.string().min(1, { message: 'path is empty' }).max(4096, { message: 'path is too long' });

export const splitSchema = z.enum(['train', 'val', 'test']);
const tagName = z.string().trim().min(1).max(200);

/** Lenslab's own extension field on exported records: restores item grouping, kinds, tags and split on re-import. */
export const lenslabMetaSchema = z.object({
  item: z.union([z.string().max(200), z.number()]),
  kind: z.enum(['caption', 'qa', 'chat']).optional(),
  tags: z.array(tagName).max(1000).optional(),
  split: splitSchema.optional(),
});
export type LenslabMeta = z.infer<typeof lenslabMetaSchema>;

export const shareGptTurn = z.looseObject({ from: z.string().max(64), value: text });
export const llavaRecord = z.looseObject({
  id: z.union([z.string().max(1000), z.number()]).optional(),
  image: pathString.optional().nullable(),
  images: z.array(pathString).max(64).optional().nullable(),
  conversations: z.array(shareGptTurn).min(1, { message: 'conversation is empty' }).max(MAX_TURNS),
  system: text.optional().nullable(),
});
export type LlavaRecord = z.infer<typeof llavaRecord>;

const contentPart = z.union([
  z.looseObject({ type: z.literal('text'), text }),
  z.looseObject({ type: z.literal('image') }),
]);
export const chatTurn = z.looseObject({
  role: z.string().max(64),
  content: z.union([text, z.array(contentPart).max(256)]),
});
export const messagesRecord = z.looseObject({
  messages: z.array(chatTurn).min(1, { message: 'conversation is empty' }).max(MAX_TURNS),
  images: z
    .array(z.union([pathString, z.looseObject({ path: pathString })]))
    .max(64)
    .optional()
    .nullable(),
});
export type MessagesRecord = z.infer<typeof messagesRecord>;

export const imagefolderRow = z.looseObject({ file_name: pathString });

/** Convert a zod error into problems for record `ref`. */
export function zodProblems(err: z.ZodError, ref: string): ImportProblem[] {
  return err.issues.slice(0, 5).map((issue) => ({
    ref,
    field: formatPath(issue.path) || undefined,
    message: issue.message.replace(/^Invalid input: /, ''),
    severity: 'error' as const,
  }));
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out;
}
