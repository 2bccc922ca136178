import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_CHAT_SETTINGS,
  SettingsError,
  finishText,
  loadChatSettings,
  saveChatSettings,
  settingsFromOptions,
  toOptions,
} from '../../src-renderer/composables/chatSettings';

test('chat settings become chat.generate options; empty fields are the model defaults', () => {
  assert.deepEqual(toOptions(DEFAULT_CHAT_SETTINGS), { temperature: 0 });
  assert.deepEqual(toOptions({ ...DEFAULT_CHAT_SETTINGS, temperature: '', stop: '' }), {});
  const o = toOptions({
    systemPrompt: 'x',
    temperature: '0.7',
    topK: '40',
    topP: '0.9',
    repetitionPenalty: '1.1',
    maxNewTokens: '64',
    seed: '7',
    stop: 'END\n\\n\\n\n',
    quantize: 'int4',
  });
  assert.deepEqual(o, {
    temperature: 0.7,
    topK: 40,
    topP: 0.9,
    repetitionPenalty: 1.1,
    maxNewTokens: 64,
    seed: 7,
    stop: ['END', '\n\n'],
    quantize: 'int4',
  });
  // back again: a saved chat's options fill the panel
  const back = settingsFromOptions(o as Record<string, unknown>, { ...DEFAULT_CHAT_SETTINGS, systemPrompt: 'keep' });
  assert.equal(back.systemPrompt, 'keep');
  assert.deepEqual(toOptions(back), o);
});

test('a wrong value names its field', () => {
  const bad: Array<[Partial<typeof DEFAULT_CHAT_SETTINGS>, string, RegExp]> = [
    [{ topP: '0' }, 'topP', /Top-p must be a number above 0 up to 1/],
    [{ topP: '2' }, 'topP', /Top-p/],
    [{ temperature: '-1' }, 'temperature', /Temperature must be a number from 0 to 10/],
    [{ maxNewTokens: '1.5' }, 'maxNewTokens', /Max tokens must be a whole number/],
    [{ topK: 'abc' }, 'topK', /Top-k/],
    [{ stop: Array.from({ length: 9 }, (_, i) => `s${i}`).join('\n') }, 'stop', /at most 8/],
  ];
  for (const [patch, field, message] of bad)
    assert.throws(
      () => toOptions({ ...DEFAULT_CHAT_SETTINGS, ...patch }),
      (e: SettingsError) => e.field === field && message.test(e.message),
      JSON.stringify(patch),
    );
});

test('settings survive a reload (storage), and garbage in storage falls back to the defaults', () => {
  const store = new Map<string, string>();
  const storage = {
    getItem: (k: string) => store.get(k) ?? null,
    setItem: (k: string, v: string) => void store.set(k, v),
  };
  saveChatSettings({ ...DEFAULT_CHAT_SETTINGS, seed: '3' }, storage);
  assert.equal(loadChatSettings(storage).seed, '3');
  store.set('lenslab.chat.settings', '{broken');
  assert.deepEqual(loadChatSettings(storage), DEFAULT_CHAT_SETTINGS);
  assert.equal(finishText('length'), 'Max tokens reached');
  assert.equal(finishText('eos'), 'End of turn');
});
