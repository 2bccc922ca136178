// Pure helpers for the item editor: cloning/comparing drafts, the <image> token, validation.
import type { EditorAnnotation, AnnotationKind } from '../components/types';

export const IMAGE_TOKEN = '<image>';

export function cloneAnnotations(list: readonly EditorAnnotation[]): EditorAnnotation[] {
  return list.map((a) => {
    switch (a.kind) {
      case 'caption':
        return { ...(a.id !== undefined ? { id: a.id } : {}), kind: 'caption', data: { text: a.data.text } };
      case 'qa':
        return {
          ...(a.id !== undefined ? { id: a.id } : {}),
          kind: 'qa',
          data: { question: a.data.question, answer: a.data.answer },
        };
      case 'chat':
        return {
          ...(a.id !== undefined ? { id: a.id } : {}),
          kind: 'chat',
          data: { messages: a.data.messages.map((m) => ({ role: m.role, content: m.content })) },
        };
    }
  });
}

/** Same content (kinds, order, text); ids are ignored, since a save may store the same labels under new ids. */
export function sameAnnotations(a: readonly EditorAnnotation[], b: readonly EditorAnnotation[]): boolean {
  const content = (l: readonly EditorAnnotation[]) =>
    JSON.stringify(cloneAnnotations(l).map(({ kind, data }) => ({ kind, data })));
  return content(a) === content(b);
}

/** Split a message into (has leading image token, the rest) for the chip UI. A token mid-text stays in the text. */
export function splitImageToken(content: string): { image: boolean; text: string } {
  if (content.startsWith(IMAGE_TOKEN)) {
    return { image: true, text: content.slice(IMAGE_TOKEN.length).replace(/^\r?\n/, '') };
  }
  return { image: false, text: content };
}
export function joinImageToken(image: boolean, text: string): string {
  return image ? `${IMAGE_TOKEN}\n${text}` : text;
}

export interface FieldError {
  /** Annotation index, and the field: 'text' | 'question' | 'answer' | `messages.${i}` | 'messages'. */
  index: number;
  field: string;
  message: string;
}

/** Problems that block saving, in words, pointing at the field. */
export function validateAnnotations(list: readonly EditorAnnotation[]): FieldError[] {
  const errors: FieldError[] = [];
  list.forEach((a, index) => {
    if (a.kind === 'caption') {
      if (!a.data.text.trim())
        errors.push({ index, field: 'text', message: 'The caption is empty: write one or remove it.' });
    } else if (a.kind === 'qa') {
      if (!a.data.question.trim()) errors.push({ index, field: 'question', message: 'The question is empty.' });
      if (!a.data.answer.trim()) errors.push({ index, field: 'answer', message: 'The answer is empty.' });
    } else {
      const msgs = a.data.messages;
      if (!msgs.some((m) => m.role === 'assistant'))
        errors.push({
          index,
          field: 'messages',
          message: 'A conversation needs at least one assistant turn to learn from.',
        });
      msgs.forEach((m, i) => {
        if (m.role !== 'system' && !splitImageToken(m.content).text.trim()) {
          errors.push({ index, field: `messages.${i}`, message: `The ${m.role} turn is empty.` });
        }
      });
    }
  });
  return errors;
}

export function newAnnotation(kind: AnnotationKind): EditorAnnotation {
  if (kind === 'caption') return { kind, data: { text: '' } };
  if (kind === 'qa') return { kind, data: { question: '', answer: '' } };
  return {
    kind,
    data: {
      messages: [
        { role: 'user', content: joinImageToken(true, '') },
        { role: 'assistant', content: '' },
      ],
    },
  };
}

/** Shortcuts the item editor handles (for ShortcutHelp). */
export const ITEM_EDITOR_SHORTCUTS = [
  { keys: ['Mod+S'], description: 'Save the item', group: 'Editor' },
  { keys: ['Mod+Enter'], description: 'Save and go to the next item', group: 'Editor' },
  { keys: ['Mod+Z'], description: 'Undo', group: 'Editor' },
  { keys: ['Mod+Shift+Z', 'Mod+Y'], description: 'Redo', group: 'Editor' },
  { keys: ['Alt+Q'], description: 'Add a question/answer pair', group: 'Editor' },
  { keys: ['Alt+T'], description: 'Add a turn to the last conversation', group: 'Editor' },
];
