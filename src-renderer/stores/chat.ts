// Chat: saved chats and the open conversation, in one pane or two side by side (the base model and the same model
// with a fine-tuned adapter, each its own saved chat, asked the same questions). Answers stream in from chat.token
// events; stop cancels the running generations.
import { defineStore } from 'pinia';
import { reactive, ref } from 'vue';
import type { Chat, ChatMessage, GenerationOptions } from '../../src-main/contract/chat';
import type { Params } from '../../src-main/contract/index';
import type { TranscriptMessage } from '../components/types';
import { api, errorMessage, mediaUrl } from '../api';
import { useLoadedList } from './loadedList';
import type { PendingAudio } from '../composables/audioClip';

export type { PendingAudio };

export type { Chat, ChatMessage };

/** What a pane talks to: a registered model, optionally with an adapter folder. */
export interface PaneTarget {
  modelId: number;
  adapterDir: string | null;
  label: string;
}

export interface Pane {
  key: string;
  target: PaneTarget;
  chatId: number | null;
  messages: TranscriptMessage[];
  requestId: string | null;
  /** "Loading the model…" while the backend prepares it. */
  status: string | null;
}

/** An image picked for the next question: a data URL to show and the base64 to send (or a stored image's hash). */
export interface PendingImage {
  url: string;
  base64: string;
  name: string;
  hash?: string;
}

/** What every question is sent with: the sampling options and, for a new chat, a system prompt. */
export interface AskSettings {
  options?: GenerationOptions;
  system?: string;
}

let seq = 0;
const newRequestId = () => `ui-${Date.now().toString(36)}-${(seq++).toString(36)}`;

export function toTranscript(m: ChatMessage): TranscriptMessage {
  const s = m.stats as { tokens?: number; tokensPerSecond?: number | null; finishReason?: string; device?: string };
  return {
    id: m.id,
    role: m.role,
    content: m.content.replace(/^<image>\s*/, '').replace(/^<audio>\s*/, ''),
    imageUrl: m.imageHash && m.imageExt ? mediaUrl('images', m.imageHash, m.imageExt) : null,
    audioUrl: m.audioHash && m.audioExt ? mediaUrl('media', m.audioHash, m.audioExt) : null,
    audioHash: m.audioHash,
    stopped: s.finishReason === 'cancelled',
    finishReason: s.finishReason ?? null,
    position: m.position,
    imageHash: m.imageHash,
    stats:
      m.role === 'assistant' && s.tokens !== undefined
        ? {
            tokens: s.tokens,
            ...(typeof s.tokensPerSecond === 'number' ? { tokensPerSecond: s.tokensPerSecond } : {}),
            ...(typeof s.device === 'string' ? { device: s.device } : {}),
          }
        : null,
  };
}

export const useChatStore = defineStore('chat', () => {
  const {
    list: chats,
    loaded,
    error,
    load: loadChats,
    reloadOn,
  } = useLoadedList(async () => (await api.call('chats.list')).chats);
  const panes = ref<Pane[]>([]);
  const byRequest = reactive(new Map<string, TranscriptMessage>());

  /** Start over with these targets (one pane, or base + fine-tuned side by side). */
  function setTargets(targets: PaneTarget[]): void {
    panes.value = targets.map((t, i) => ({
      key: `p${i}`,
      target: t,
      chatId: null,
      messages: [],
      requestId: null,
      status: null,
    }));
  }

  /** Open a saved chat in a single pane. */
  async function openChat(id: number): Promise<Chat> {
    const r = await api.call('chats.get', { id });
    const c = r.chat;
    panes.value = [
      {
        key: `chat-${id}`,
        target: { modelId: c.modelId ?? 0, adapterDir: c.adapterDir, label: c.title },
        chatId: id,
        messages: r.messages.map(toTranscript),
        requestId: null,
        status: null,
      },
    ];
    return c;
  }

  const busy = () => panes.value.some((p) => p.requestId !== null);

  /** Where answers are generated: '' = the app's default (LENSLAB_PROVIDER, else CUDA when installed, else CPU). */
  const device = ref<'' | 'auto' | 'cpu' | 'webgpu' | 'cuda'>('');

  async function askPane(
    pane: Pane,
    text: string,
    image: PendingImage | null,
    settings: AskSettings = {},
    audio: PendingAudio | null = null,
  ): Promise<void> {
    const requestId = newRequestId();
    pane.messages.push({
      id: `u-${requestId}`,
      role: 'user',
      content: text,
      imageUrl: image?.url ?? null,
      audioUrl: audio?.url ?? null,
    });
    pane.messages.push({ id: `a-${requestId}`, role: 'assistant', content: '', streaming: true });
    const answer = pane.messages[pane.messages.length - 1];
    byRequest.set(requestId, answer);
    pane.requestId = requestId;
    pane.status = null;
    const params: Params<'chat.generate'> = {
      requestId,
      messages: [
        ...(pane.chatId === null && settings.system?.trim()
          ? [{ role: 'system' as const, content: settings.system.trim() }]
          : []),
        { role: 'user', content: text },
      ],
      ...(pane.chatId !== null ? { chatId: pane.chatId } : {}),
      modelId: pane.target.modelId,
      adapterDir: pane.target.adapterDir,
      ...(image ? { image: image.hash ? { hash: image.hash } : { base64: image.base64 } } : {}),
      ...(audio ? { audio: audio.hash ? { hash: audio.hash } : { base64: audio.base64 } } : {}),
      ...(settings.options ? { options: settings.options } : {}),
      ...(device.value ? { device: device.value } : {}),
    };
    try {
      const r = await api.call('chat.generate', params);
      pane.chatId = r.chatId;
      answer.content = r.text;
      answer.stopped = r.finishReason === 'cancelled';
      answer.finishReason = r.finishReason;
      answer.stats = {
        tokens: r.ids.length,
        ...(r.tokensPerSecond !== null ? { tokensPerSecond: r.tokensPerSecond } : {}),
        ...(r.device ? { device: `${r.device.provider} (${r.device.reason})` } : {}),
      };
      // the stored turns carry positions and image hashes (what regenerate and edit need)
      if (r.chatId !== null) {
        const saved = await api.call('chats.get', { id: r.chatId }).catch(() => null);
        if (saved && pane.chatId === r.chatId) pane.messages = saved.messages.map(toTranscript);
      }
    } catch (e) {
      answer.error = errorMessage(e);
    } finally {
      answer.streaming = false;
      byRequest.delete(requestId);
      pane.requestId = null;
      pane.status = null;
    }
  }

  /** Ask every pane the same question (they run one after another on the backend). */
  async function ask(
    text: string,
    image: PendingImage | null,
    settings: AskSettings = {},
    audio: PendingAudio | null = null,
  ): Promise<void> {
    await Promise.all(panes.value.map((p) => askPane(p, text, image, settings, audio)));
    void loadChats();
  }

  /**
   * Ask again from the user turn at `index` of a pane: its saved messages from there on are deleted, then the
   * question (edited, or as it was for a regenerate) is sent with the same image.
   */
  async function resend(pane: Pane, index: number, text: string, settings: AskSettings = {}): Promise<void> {
    const m = pane.messages[index];
    if (!m || m.role !== 'user' || pane.requestId) return;
    if (pane.chatId !== null && m.position !== undefined)
      await api.call('chats.truncate', { id: pane.chatId, fromPosition: m.position });
    const image: PendingImage | null =
      m.imageHash && m.imageUrl ? { url: m.imageUrl, base64: '', name: 'image', hash: m.imageHash } : null;
    const audio: PendingAudio | null =
      m.audioHash && m.audioUrl ? { url: m.audioUrl, base64: '', name: 'audio', hash: m.audioHash } : null;
    pane.messages = pane.messages.slice(0, index);
    // a system prompt stays in the chat (it was saved before this turn)
    await askPane(pane, text, image, { options: settings.options }, audio);
    void loadChats();
  }

  /** Regenerate the last answer of a pane. */
  async function regenerate(pane: Pane, settings: AskSettings = {}): Promise<void> {
    let i = pane.messages.length - 1;
    while (i >= 0 && pane.messages[i].role !== 'user') i--;
    if (i >= 0) await resend(pane, i, pane.messages[i].content, settings);
  }

  async function stop(): Promise<void> {
    await Promise.all(
      panes.value
        .filter((p) => p.requestId)
        .map((p) => api.call('chat.cancel', { requestId: p.requestId! }).catch(() => null)),
    );
  }

  async function rename(id: number, title: string): Promise<void> {
    await api.call('chats.update', { id, title });
    await loadChats();
  }
  async function remove(id: number): Promise<void> {
    await api.call('chats.delete', { id });
    panes.value = panes.value.map((p) => (p.chatId === id ? { ...p, chatId: null, messages: [] } : p));
    await loadChats();
  }

  api.on('chat.token', (t) => {
    const m = byRequest.get(t.requestId);
    if (m) m.content += t.text;
  });
  api.on('chat.status', (s) => {
    const p = panes.value.find((x) => x.requestId === s.requestId);
    if (p) p.status = s.message;
  });
  reloadOn('chats.changed');

  return {
    chats,
    loaded,
    error,
    panes,
    busy,
    device,
    loadChats,
    setTargets,
    openChat,
    ask,
    resend,
    regenerate,
    stop,
    rename,
    remove,
  };
});
