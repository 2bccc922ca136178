// The model-dependent part of the lint (too_long / render_error): each item's conversations rendered with the model's
// chat template and tokenizer, measured in tokens. Plain data in and out, so the backend runs it in its worker thread
// (services/work-worker.ts lintLengths) while the rest of the lint (SQLite, files) stays on the main thread.
import { itemConversations, type Conversation, type ConversationOptions } from './conversation';
import { renderConversation, setupForImage, type RenderSetup } from './render';
import type { FullItem } from './rows';

/** What the length check needs of an item (no image bytes). */
export interface LengthItem {
  itemId: number;
  annotations: FullItem['annotations'];
  hasImage: boolean;
  /** the image's size, for models whose image tokens depend on it (tiles) */
  imageSize?: { width: number | null; height: number | null } | null;
}

/** One conversation of an item (itemConversations order): its token count, or why it did not render. */
export type ConversationLength =
  { kind: Conversation['kind']; tokens: number } | { kind: Conversation['kind']; error: string };

export interface ItemLengths {
  itemId: number;
  conversations: ConversationLength[];
}

export function lengthItem(it: Pick<FullItem, 'id' | 'annotations' | 'image'>): LengthItem {
  return {
    itemId: it.id,
    annotations: it.annotations,
    hasImage: !!it.image,
    imageSize: it.image ? { width: it.image.width, height: it.image.height } : null,
  };
}

/** Token lengths of every conversation of every item (same order as `items`). */
export function measureLengths(
  items: readonly LengthItem[],
  setup: RenderSetup,
  copts: ConversationOptions = {},
): ItemLengths[] {
  return items.map((it) => ({
    itemId: it.itemId,
    conversations: itemConversations(it.annotations, it.hasImage, copts).map((c): ConversationLength => {
      try {
        return { kind: c.kind, tokens: renderConversation(c.messages, setupForImage(setup, it.imageSize)).ids.length };
      } catch (err) {
        return { kind: c.kind, error: (err as Error).message };
      }
    }),
  }));
}
