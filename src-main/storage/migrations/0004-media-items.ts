// 0004: items can hold an audio clip or a video instead of an image. The file is content-addressed like images
// (<dataDir>/media/<h[0:2]>/<h>.<ext>, datasets/media-store.ts); image_hash stays NULL for such items, so
// every image consumer (training, search, thumbnails) sees them as items without an image.
import type { Migration } from './index';

const migration: Migration = {
  version: 4,
  name: 'media-items',
  up(db) {
    db.exec(`
      ALTER TABLE items ADD COLUMN media_kind TEXT CHECK (media_kind IN ('audio','video'));
      ALTER TABLE items ADD COLUMN media_hash TEXT;   -- sha256 hex of the media file
      ALTER TABLE items ADD COLUMN media_ext TEXT;
      -- {"seconds","sampleRate","channels","encoding"} for audio; {"seconds","width","height","frames","fps","codec"} for video
      ALTER TABLE items ADD COLUMN media_json TEXT;
      CREATE INDEX items_media_hash ON items(media_hash);
    `);
  },
};

export default migration;
