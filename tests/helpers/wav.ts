// A PCM16 mono WAV in memory, for tests that hand audio to the decoder, the API or the UI as a file would: the
// renderer's own encoder (what the chat sends for a recording), so these tests exercise it too.
export { encodeWav as wav } from '../../src-renderer/composables/wav';
