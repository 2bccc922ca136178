// Kept in step with package.json "version" (tests/services checks it).
export const LENSLAB_VERSION = '0.1.0';
