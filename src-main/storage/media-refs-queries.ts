// Typed queries for what refers to a stored image or media file (by content hash): items, chat messages, and
// the undo/redo history; the store's garbage collection (datasets/images.ts) keeps whatever these name.

/** The app database. */
type Db = import('./database').Database;

/** A checker: does an item or a chat message still refer to this hash? (one prepared statement, reused) */
export function hashReferenceCheck(db: Db): (hash: string) => boolean {
  const used = db.prepare(
    'SELECT 1 FROM items WHERE image_hash = ? OR media_hash = ? UNION ALL SELECT 1 FROM messages WHERE image_hash = ? LIMIT 1',
  );
  return (hash) => !!used.get(hash, hash, hash);
}

/** Every hash an item (image or media) or a chat message refers to. */
export function referencedHashes(db: Db): string[] {
  return (
    db
      .prepare(
        'SELECT DISTINCT image_hash AS h FROM items WHERE image_hash IS NOT NULL UNION SELECT DISTINCT media_hash FROM items WHERE media_hash IS NOT NULL UNION SELECT DISTINCT image_hash FROM messages WHERE image_hash IS NOT NULL',
      )
      .all() as { h: string }[]
  ).map((r) => r.h);
}

/** The changes_json of every history entry that may name an image or media hash (streamed). */
export function historyChangesWithHashes(db: Db): Iterable<string> {
  const rows = db
    .prepare(
      "SELECT changes_json FROM history WHERE changes_json LIKE '%image_hash%' OR changes_json LIKE '%media_hash%'",
    )
    .iterate() as Iterable<{ changes_json: string }>;
  return (function* () {
    for (const r of rows) yield r.changes_json;
  })();
}
