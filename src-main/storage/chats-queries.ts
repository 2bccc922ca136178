// Typed queries for chats and their messages (tables chats, messages; migration 0001).
import type { Database } from './database';
import { nowIso } from './database';
import type { ChatRole } from '../contract/chat';

export interface ChatRow {
  id: number;
  title: string;
  model_id: number | null;
  run_id: number | null;
  checkpoint_id: number | null;
  settings_json: string;
  created_at: string;
  updated_at: string;
  message_count: number;
}

export interface MessageRow {
  id: number;
  chat_id: number;
  role: ChatRole;
  content: string;
  image_hash: string | null;
  image_ext: string | null;
  audio_hash: string | null;
  audio_ext: string | null;
  position: number;
  stats_json: string;
  created_at: string;
}

const CHAT_SELECT =
  'SELECT c.*, (SELECT COUNT(*) FROM messages m WHERE m.chat_id = c.id) AS message_count FROM chats c';

export function getChatRow(db: Database, id: number): ChatRow | undefined {
  return db.prepare(`${CHAT_SELECT} WHERE c.id = ?`).get(id) as ChatRow | undefined;
}

/** Most recently updated first. */
export function listChatRows(db: Database): ChatRow[] {
  return db.prepare(`${CHAT_SELECT} ORDER BY c.updated_at DESC, c.id DESC`).all() as ChatRow[];
}

export function chatMessages(db: Database, chatId: number): MessageRow[] {
  return db.prepare('SELECT * FROM messages WHERE chat_id = ? ORDER BY position, id').all(chatId) as MessageRow[];
}

/** Append a message at the chat's next position; the chat's updated_at moves. */
export function insertMessage(
  db: Database,
  m: {
    chatId: number;
    role: ChatRole;
    content: string;
    imageHash?: string | null;
    imageExt?: string | null;
    audioHash?: string | null;
    audioExt?: string | null;
    stats?: Record<string, unknown>;
  },
): MessageRow {
  const pos = (
    db.prepare('SELECT COALESCE(MAX(position) + 1, 0) AS p FROM messages WHERE chat_id = ?').get(m.chatId) as {
      p: number;
    }
  ).p;
  const now = nowIso();
  const info = db
    .prepare(
      'INSERT INTO messages (chat_id, role, content, image_hash, image_ext, audio_hash, audio_ext, position, stats_json, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    )
    .run(
      m.chatId,
      m.role,
      m.content,
      m.imageHash ?? null,
      m.imageExt ?? null,
      m.audioHash ?? null,
      m.audioExt ?? null,
      pos,
      JSON.stringify(m.stats ?? {}),
      now,
    );
  touchChat(db, m.chatId, now);
  return db.prepare('SELECT * FROM messages WHERE id = ?').get(info.lastInsertRowid) as MessageRow;
}

export function insertChat(
  db: Database,
  c: { title: string; modelId: number | null; settings: Record<string, unknown> },
): number {
  const now = nowIso();
  return Number(
    db
      .prepare('INSERT INTO chats (title, model_id, settings_json, created_at, updated_at) VALUES (?, ?, ?, ?, ?)')
      .run(c.title, c.modelId, JSON.stringify(c.settings), now, now).lastInsertRowid,
  );
}

export function updateChatSettings(
  db: Database,
  id: number,
  modelId: number | null,
  settings: Record<string, unknown>,
): void {
  db.prepare('UPDATE chats SET settings_json = ?, model_id = ?, updated_at = ? WHERE id = ?').run(
    JSON.stringify(settings),
    modelId,
    nowIso(),
    id,
  );
}

export function renameChat(db: Database, id: number, title: string): void {
  db.prepare('UPDATE chats SET title = ?, updated_at = ? WHERE id = ?').run(title, nowIso(), id);
}

/** Delete the messages at `fromPosition` and after; returns how many went. */
export function truncateChat(db: Database, id: number, fromPosition: number): number {
  const removed = db.prepare('DELETE FROM messages WHERE chat_id = ? AND position >= ?').run(id, fromPosition).changes;
  touchChat(db, id);
  return removed;
}

export function deleteChat(db: Database, id: number): void {
  db.prepare('DELETE FROM chats WHERE id = ?').run(id);
}

function touchChat(db: Database, id: number, now = nowIso()): void {
  db.prepare('UPDATE chats SET updated_at = ? WHERE id = ?').run(now, id);
}
