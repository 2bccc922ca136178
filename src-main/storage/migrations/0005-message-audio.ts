// 0005: a chat message can carry an audio clip (for an audio LLM), stored in the media store beside dataset audio
// (<dataDir>/media/<h[0:2]>/<h>.<ext>, datasets/media-store.ts), as image_hash / image_ext reference the image store.
import type { Migration } from './index';

const migration: Migration = {
  version: 5,
  name: 'message-audio',
  up(db) {
    db.exec(`
      ALTER TABLE messages ADD COLUMN audio_hash TEXT;  -- sha256 hex of the clip's file, NULL = none
      ALTER TABLE messages ADD COLUMN audio_ext TEXT;
    `);
  },
};

export default migration;
