// Chat: generate replies with a model folder (+ adapter) about an image, streaming tokens as chat.token events, and
// keep chats and their messages in the `chats` / `messages` tables (migration 0001).
//
// Generation runs in a worker_thread (models/generate-worker.ts) that keeps up to two loaded generators. Measured
// (npm run bench:generate, 0.5B model): onnxruntime-node runs session.run and model loading synchronously on the
// calling thread (only deferred by setImmediate), so in this thread a prefill stalls the event loop ~3-4 s and a
// load ~2.5 s (a first-use graph compile is synchronous JS too: ~20 s); from the worker the stalls seen here were
// 0.1-0.2 s (CPU contention on 2 cores, not blocking). The worker stops after 10 idle minutes, freeing the memory.
// Where the worker entry is not on disk (a bundle without it) or LENSLAB_CHAT_IN_PROCESS=1, a GeneratorPool in this
// thread is used instead. One generation runs at a time; others queue and can be cancelled while queued.
//
// Where the model folder and adapter live is kept in chats.settings_json ({modelDir, adapterDir, options}); a
// message's image is stored in the content-addressed image store (images/<hh>/<sha256>.<ext>) and referenced by
// messages.image_hash / image_ext. The model sees the conversation's latest image, tagged on its message.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { ApiError } from '../contract/errors';
import { createHash } from 'node:crypto';
import type { Chat, ChatAudio, ChatImage, ChatMessage, ChatRole } from '../contract/chat';
import { handlers, type ServiceContext } from './context';
import type { Database } from '../storage/database';
import {
  chatMessages,
  deleteChat,
  getChatRow,
  insertChat,
  insertMessage,
  listChatRows,
  renameChat,
  truncateChat,
  updateChatSettings,
  type ChatRow,
  type MessageRow,
} from '../storage/chats-queries';
import { getModelPath } from '../storage/models-queries';
import { imagePath, storeImage, writeAtomic } from '../datasets/images';
import { mediaPath } from '../datasets/media-store';
import { readRegularFile } from '../datasets/read';
import { decodeAudioInWorker } from '../media/media-worker';
import { AUDIO_LIMITS } from '../media/limits';
import { TARGET_SAMPLE_RATE } from '../media/audio';
import {
  GeneratorPool,
  GeneratorWorker,
  chatInputsOf,
  type GeneratorHost,
  type PoolRequest,
} from '../models/generate-worker';
import { modelErrorToApi } from './model-errors';
import type { AudioClip } from '../models/audio/ultravox';
import { AUDIO_TAG } from '../models/audio/chat';
import type { ChatTurn } from '../models/generate';

const IMAGE_TAG = '<image>';

export { modelErrorToApi };

// ---------------------------------------------------------------- runtime per backend

/** Where the generation worker lives (Electron: the built generate-worker.js) or no worker; how many models stay loaded. */
export interface ChatHostOptions {
  inProcess?: boolean;
  maxGenerators?: number;
  entry?: string;
  execArgv?: string[];
}

/** A backend's generation host (started on first use) and its running requests by id. */
export class ChatRuntime {
  private current: GeneratorHost | null = null;
  readonly running = new Map<string, AbortController>();

  constructor(
    private readonly cacheDir: string,
    private readonly options: ChatHostOptions = {},
  ) {}

  get host(): GeneratorHost {
    if (!this.current) {
      const o = this.options;
      const inProcess =
        o.inProcess ?? (process.env.LENSLAB_CHAT_IN_PROCESS === '1' || !GeneratorWorker.available(o.entry));
      this.current = inProcess
        ? new GeneratorPool({ cacheDir: this.cacheDir, maxGenerators: o.maxGenerators })
        : new GeneratorWorker({
            cacheDir: this.cacheDir,
            maxGenerators: o.maxGenerators,
            entry: o.entry,
            execArgv: o.execArgv,
          });
    }
    return this.current;
  }

  /** Cancel what runs, release the loaded models (and the worker) and wait; the next chat.generate starts afresh. */
  async close(): Promise<void> {
    for (const c of this.running.values()) c.abort();
    const h = this.current;
    this.current = null;
    await h?.close();
  }

  /** Stop at once (the backend is closing): a worker is terminated, an in-process pool frees its models when idle. */
  terminate(): void {
    for (const c of this.running.values()) c.abort();
    const h = this.current;
    this.current = null;
    if (h instanceof GeneratorWorker) h.terminate();
    else void h?.close().catch(() => {});
  }
}

// ---------------------------------------------------------------- rows

function jsonObject(text: string): Record<string, unknown> {
  try {
    const v = JSON.parse(text) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function toChat(r: ChatRow): Chat {
  const settings = jsonObject(r.settings_json);
  return {
    id: r.id,
    title: r.title,
    modelId: r.model_id,
    runId: r.run_id,
    checkpointId: r.checkpoint_id,
    modelDir: typeof settings.modelDir === 'string' ? settings.modelDir : null,
    adapterDir: typeof settings.adapterDir === 'string' ? settings.adapterDir : null,
    settings,
    messageCount: r.message_count,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function toMessage(r: MessageRow): ChatMessage {
  return {
    id: r.id,
    chatId: r.chat_id,
    role: r.role,
    content: r.content,
    imageHash: r.image_hash,
    imageExt: r.image_ext,
    audioHash: r.audio_hash ?? null,
    audioExt: r.audio_ext ?? null,
    position: r.position,
    stats: jsonObject(r.stats_json),
    createdAt: r.created_at,
  };
}

function requireChat(db: Database, id: number, field = 'id'): ChatRow {
  const r = getChatRow(db, id);
  if (!r) throw new ApiError('not_found', `chat ${id} does not exist`, field);
  return r;
}

// ---------------------------------------------------------------- resolving the model and the image

function resolveDir(ctx: ServiceContext, dir: string, field: string, what: string): string {
  const p = isAbsolute(dir) ? dir : resolve(dir);
  if (!existsSync(p)) throw new ApiError('not_found', `${what} folder not found: ${dir}`, field);
  if (!statSync(p).isDirectory()) throw new ApiError('invalid_request', `${what} path is not a folder: ${dir}`, field);
  return p;
}

function modelPathById(ctx: ServiceContext, id: number): string {
  const row = getModelPath(ctx.db, id);
  if (!row) throw new ApiError('not_found', `model ${id} does not exist`, 'modelId');
  return isAbsolute(row.path) ? row.path : join(ctx.dataDir, row.path);
}

function storedImageExt(dataDir: string, hash: string): string | null {
  const dir = join(dataDir, 'images', hash.slice(0, 2));
  if (!existsSync(dir)) return null;
  const f = readdirSync(dir).find((n) => n.startsWith(`${hash}.`) && !n.endsWith('.tmp'));
  return f ? f.slice(hash.length + 1) : null;
}

interface ResolvedImage {
  /** what the generator reads */
  input: string | Uint8Array;
  hash: string | null;
  ext: string | null;
}

async function resolveImage(ctx: ServiceContext, img: ChatImage, save: boolean): Promise<ResolvedImage> {
  if ('hash' in img) {
    const ext = storedImageExt(ctx.dataDir, img.hash);
    if (!ext) throw new ApiError('not_found', `no stored image with hash ${img.hash}`, 'image.hash');
    return { input: imagePath(ctx.dataDir, img.hash, ext), hash: img.hash, ext };
  }
  let bytes: Uint8Array | null = null;
  let path: string | null = null;
  if ('path' in img) {
    path = isAbsolute(img.path) ? img.path : resolve(img.path);
    if (!existsSync(path) || !statSync(path).isFile())
      throw new ApiError('not_found', `image file not found: ${img.path}`, 'image.path');
  } else {
    bytes = Buffer.from(img.base64, 'base64');
    if (bytes.length === 0) throw new ApiError('invalid_request', 'image: the base64 data is empty', 'image.base64');
  }
  if (!save) return { input: path ?? bytes!, hash: null, ext: null };
  try {
    const { image } = await storeImage(
      ctx.dataDir,
      path ? { path, original: path } : { bytes: bytes!, original: 'uploaded image' },
    );
    return { input: imagePath(ctx.dataDir, image.hash, image.ext), hash: image.hash, ext: image.ext };
  } catch (e) {
    throw new ApiError(
      'invalid_request',
      `image: ${(e as Error).message}`,
      'path' in img ? 'image.path' : 'image.base64',
    );
  }
}

/**
 * The model's view of a conversation: the latest image's message carries the one "<image>" tag, the latest audio
 * clip's message the one "<audio>" tag (stray tags typed by the user are dropped).
 */
export function conversationTurns(
  msgs: Array<{ role: string; content: string; hasImage: boolean; hasAudio?: boolean }>,
): { turns: ChatTurn[]; imageIndex: number; audioIndex: number } {
  let imageIndex = -1;
  let audioIndex = -1;
  msgs.forEach((m, i) => {
    if (m.hasImage) imageIndex = i;
    if (m.hasAudio) audioIndex = i;
  });
  const turns = msgs.map((m, i) => {
    let text = m.content.split(IMAGE_TAG).join('');
    if (audioIndex !== -1) text = text.split(AUDIO_TAG).join('');
    if (i === imageIndex) text = `${IMAGE_TAG}\n${text}`;
    if (i === audioIndex) text = `${AUDIO_TAG}\n${text}`;
    return { role: m.role, content: text };
  });
  return { turns, imageIndex, audioIndex };
}

interface ResolvedAudio {
  clip: AudioClip;
  hash: string | null;
  ext: string | null;
}

/** Read a chat's clip (bytes size-limited), decode it off this thread, and store it in the media store when saving. */
async function resolveAudio(
  ctx: ServiceContext,
  a: ChatAudio,
  save: boolean,
  signal: AbortSignal,
): Promise<ResolvedAudio> {
  let bytes: Uint8Array;
  let label: string;
  let field: string;
  if ('hash' in a) {
    field = 'audio.hash';
    const dir = join(ctx.dataDir, 'media', a.hash.slice(0, 2));
    const f = existsSync(dir)
      ? readdirSync(dir).find((n) => n.startsWith(`${a.hash}.`) && !n.endsWith('.tmp'))
      : undefined;
    if (!f) throw new ApiError('not_found', `no stored audio with hash ${a.hash}`, field);
    label = join(dir, f);
    bytes = readRegularFile(label, label, AUDIO_LIMITS.maxBytes, 'audio file');
  } else if ('path' in a) {
    field = 'audio.path';
    const path = isAbsolute(a.path) ? a.path : resolve(a.path);
    if (!existsSync(path) || !statSync(path).isFile())
      throw new ApiError('not_found', `audio file not found: ${a.path}`, field);
    label = a.path;
    try {
      bytes = readRegularFile(path, label, AUDIO_LIMITS.maxBytes, 'audio file');
    } catch (e) {
      throw new ApiError('invalid_request', (e as Error).message, field);
    }
  } else {
    field = 'audio.base64';
    label = 'uploaded audio';
    bytes = Buffer.from(a.base64, 'base64');
    if (bytes.length === 0) throw new ApiError('invalid_request', 'audio: the base64 data is empty', field);
  }
  let decoded;
  try {
    decoded = await decodeAudioInWorker(bytes, { label, sampleRate: TARGET_SAMPLE_RATE, signal });
  } catch (e) {
    throw new ApiError('invalid_request', (e as Error).message, field);
  }
  const clip: AudioClip = { samples: decoded.samples, sampleRate: decoded.sampleRate, name: label };
  if (!save) return { clip, hash: null, ext: null };
  const hash = createHash('sha256').update(bytes).digest('hex');
  const ext = decoded.format === 'flac' ? 'flac' : 'wav';
  const file = mediaPath(ctx.dataDir, hash, ext);
  if (!existsSync(file)) writeAtomic(file, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  return { clip, hash, ext };
}

function titleFrom(text: string): string {
  const t = text.replace(/\s+/g, ' ').trim();
  return t.length > 60 ? `${t.slice(0, 57)}…` : t || 'New chat';
}

// ---------------------------------------------------------------- handlers

export const chatHandlers = handlers({
  'chat.generate': async (p, ctx, request) => {
    const rt = ctx.chat;
    if (rt.running.has(p.requestId))
      throw new ApiError('conflict', `request ${p.requestId} is already running`, 'requestId');
    const ac = new AbortController();
    rt.running.set(p.requestId, ac);
    try {
      const save = p.save ?? true;
      const db = ctx.db;
      const chat = p.chatId !== undefined ? requireChat(db, p.chatId, 'chatId') : null;
      const settings = chat ? jsonObject(chat.settings_json) : {};
      // the model: explicit folder, registered model, or the chat's own
      let modelDir: string;
      let modelId: number | null = chat?.model_id ?? null;
      if (p.modelDir !== undefined) modelDir = resolveDir(ctx, p.modelDir, 'modelDir', 'model');
      else if (p.modelId !== undefined) {
        modelDir = resolveDir(ctx, modelPathById(ctx, p.modelId), 'modelId', 'model');
        modelId = p.modelId;
      } else if (typeof settings.modelDir === 'string')
        modelDir = resolveDir(ctx, settings.modelDir, 'chatId', "the chat's model");
      else if (modelId !== null) modelDir = resolveDir(ctx, modelPathById(ctx, modelId), 'chatId', "the chat's model");
      else throw new ApiError('invalid_request', 'give modelDir or modelId (the model to chat with)', 'modelDir');
      let adapterDir: string | null;
      if (p.adapterDir !== undefined)
        adapterDir = p.adapterDir === null ? null : resolveDir(ctx, p.adapterDir, 'adapterDir', 'adapter');
      else
        adapterDir =
          typeof settings.adapterDir === 'string' && !p.modelDir && !p.modelId
            ? resolveDir(ctx, settings.adapterDir, 'chatId', "the chat's adapter")
            : null;

      const firstUser = p.imageTurn ?? p.messages.findIndex((m) => m.role === 'user');
      if (p.imageTurn !== undefined && p.messages[p.imageTurn]?.role !== 'user')
        throw new ApiError('invalid_request', `imageTurn ${p.imageTurn} is not a user message`, 'imageTurn');
      if (p.image && firstUser === -1)
        throw new ApiError('invalid_request', 'an image needs a user message to attach to', 'image');
      if (p.audio && firstUser === -1)
        throw new ApiError('invalid_request', 'an audio clip needs a user message to attach to', 'audio');
      // what the model takes besides text is the model's to say
      const accepts = chatInputsOf(modelDir);
      if (p.audio && !accepts.audio)
        throw new ApiError(
          'invalid_request',
          `${modelDir}: this model cannot take audio (an audio LLM can: lenslab audio compose, or import an Ultravox-layout folder)`,
          'audio',
        );
      if (p.image && !accepts.image)
        throw new ApiError('invalid_request', `${modelDir}: this model takes audio clips, not images`, 'image');
      const image = p.image ? await resolveImage(ctx, p.image, save) : null;
      const audio = p.audio ? await resolveAudio(ctx, p.audio, save, ac.signal) : null;

      // the whole conversation: stored turns, then the new ones
      const history = chat ? chatMessages(db, chat.id) : [];
      let historyImage: string | null = null;
      for (const m of history)
        if (m.image_hash && m.image_ext) historyImage = imagePath(ctx.dataDir, m.image_hash, m.image_ext);
      let historyAudio: string | null = null;
      for (const m of history)
        if (m.audio_hash && m.audio_ext) historyAudio = mediaPath(ctx.dataDir, m.audio_hash, m.audio_ext);
      const all = [
        ...history.map((m) => ({
          role: m.role,
          content: m.content,
          hasImage: accepts.image && !!m.image_hash,
          hasAudio: accepts.audio && !!m.audio_hash,
        })),
        ...p.messages.map((m, i) => ({
          role: m.role,
          content: m.content,
          hasImage: !!image && i === firstUser,
          hasAudio: !!audio && i === firstUser,
        })),
      ];
      const { turns, imageIndex, audioIndex } = conversationTurns(all);
      let audioClip: AudioClip | null = null;
      if (audioIndex !== -1 && audioIndex >= history.length) audioClip = audio!.clip;
      else if (audioIndex !== -1) {
        if (!historyAudio || !existsSync(historyAudio))
          throw new ApiError('not_found', "the chat's audio clip is no longer in the media store", 'chatId');
        try {
          const d = await decodeAudioInWorker(historyAudio, { sampleRate: TARGET_SAMPLE_RATE, signal: ac.signal });
          audioClip = { samples: d.samples, sampleRate: d.sampleRate, name: historyAudio };
        } catch (e) {
          throw new ApiError('invalid_request', (e as Error).message, 'chatId');
        }
      }
      const imageInput = imageIndex === -1 ? null : imageIndex >= history.length ? image!.input : historyImage;
      if (imageIndex !== -1 && imageInput === null)
        throw new ApiError('not_found', "the chat's image is no longer in the image store", 'chatId');
      if (imageInput !== null && typeof imageInput === 'string' && !existsSync(imageInput))
        throw new ApiError('not_found', `the chat's image file is missing: ${imageInput}`, 'chatId');

      // store the new turns before generating (a crash keeps the question)
      let chatId: number | null = chat?.id ?? null;
      const options = p.options ?? {};
      if (save) {
        const newSettings = { ...settings, modelDir, adapterDir, options };
        db.transaction(() => {
          if (chatId === null) {
            const title = p.title ?? titleFrom(p.messages.find((m) => m.role === 'user')?.content ?? '');
            chatId = insertChat(db, { title, modelId, settings: newSettings });
          } else updateChatSettings(db, chatId, modelId, newSettings);
          p.messages.forEach((m, i) =>
            insertMessage(db, {
              chatId: chatId!,
              role: m.role,
              content: m.content,
              ...(image && i === firstUser ? { imageHash: image.hash, imageExt: image.ext } : {}),
              ...(audio && i === firstUser ? { audioHash: audio.hash, audioExt: audio.ext } : {}),
            }),
          );
        })();
        ctx.emit('chats.changed', { kind: chat ? 'updated' : 'created', id: chatId! });
      }

      const req: PoolRequest = {
        modelDir,
        adapterDir,
        image: imageInput,
        audio: audioClip,
        messages: turns,
        ...(p.device ? { device: p.device } : {}),
      };
      let index = 0;
      const cid = chatId;
      let result;
      try {
        result = await rt.host.generate(req, options, {
          // chat.cancel, or the client that asked going away
          signal: request ? AbortSignal.any([ac.signal, request.signal]) : ac.signal,
          onToken: (t) =>
            ctx.emit('chat.token', { requestId: p.requestId, chatId: cid, index: index++, id: t.id, text: t.text }),
          onStatus: (message) => ctx.emit('chat.status', { requestId: p.requestId, message }),
        });
      } catch (e) {
        throw modelErrorToApi(e, 'messages');
      }
      const tps = Number.isFinite(result.timings.tokensPerSecond) ? result.timings.tokensPerSecond : null;
      let message: ChatMessage | null = null;
      if (save && chatId !== null) {
        const stats = {
          promptTokens: result.promptTokens,
          tokens: result.ids.length,
          finishReason: result.finishReason,
          firstTokenMs: Math.round(result.timings.firstTokenMs),
          tokensPerSecond: tps,
          modelDir,
          adapterDir,
          ...(result.device ? { device: result.device.provider } : {}),
        };
        message = toMessage(insertMessage(db, { chatId, role: 'assistant', content: result.text, stats }));
        ctx.emit('chats.changed', { kind: 'updated', id: chatId });
      }
      return {
        requestId: p.requestId,
        chatId,
        text: result.text,
        ids: result.ids,
        finishReason: result.finishReason,
        promptTokens: result.promptTokens,
        firstTokenMs: result.timings.firstTokenMs,
        tokensPerSecond: tps,
        message,
        device: result.device ?? null,
      };
    } finally {
      rt.running.delete(p.requestId);
    }
  },
  'chat.cancel': (p, ctx) => {
    const c = ctx.chat.running.get(p.requestId);
    if (!c || c.signal.aborted) return { cancelled: false };
    c.abort();
    return { cancelled: true };
  },
  'chats.list': (_p, ctx) => ({ chats: listChatRows(ctx.db).map(toChat) }),
  'chats.get': (p, ctx) => ({
    chat: toChat(requireChat(ctx.db, p.id)),
    messages: chatMessages(ctx.db, p.id).map(toMessage),
  }),
  'chats.update': (p, ctx) => {
    requireChat(ctx.db, p.id);
    if (p.title !== undefined) renameChat(ctx.db, p.id, p.title.trim() || 'New chat');
    ctx.emit('chats.changed', { kind: 'updated', id: p.id });
    return toChat(requireChat(ctx.db, p.id));
  },
  'chats.truncate': (p, ctx) => {
    requireChat(ctx.db, p.id);
    const removed = truncateChat(ctx.db, p.id, p.fromPosition);
    ctx.emit('chats.changed', { kind: 'updated', id: p.id });
    return { chat: toChat(requireChat(ctx.db, p.id)), removed };
  },
  'chats.delete': (p, ctx) => {
    requireChat(ctx.db, p.id);
    deleteChat(ctx.db, p.id);
    ctx.emit('chats.changed', { kind: 'deleted', id: p.id });
    return { deleted: true as const, id: p.id };
  },
});
