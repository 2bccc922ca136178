// Chat with a model about an image: one streamed generation per chat.generate call (tokens arrive as chat.token
// events carrying the caller's requestId; chat.cancel stops it between tokens), and the saved chats.
// Pure TS + zod.
import { z } from 'zod';
import { defineEvents, defineMethods } from './define';
import { Device, Id, JsonObject, Timestamp } from './common';

export const CHAT_ROLES = ['system', 'user', 'assistant'] as const;
export const ChatRole = z.enum(CHAT_ROLES);
export type ChatRole = z.infer<typeof ChatRole>;

export const FINISH_REASONS = ['eos', 'stop', 'length', 'cancelled'] as const;
export const FinishReason = z.enum(FINISH_REASONS);

/** A client-chosen id that ties chat.token events and chat.cancel to one chat.generate call. */
export const RequestId = z.string().min(1).max(100);

/** Sampling settings; all optional (greedy, the model's default length). */
export const GenerationOptions = z.strictObject({
  maxNewTokens: z.int().min(1).max(4096).optional(),
  /** 0 = greedy */
  temperature: z.number().min(0).max(10).optional(),
  topK: z.int().min(0).optional(),
  topP: z.number().gt(0).max(1).optional(),
  repetitionPenalty: z.number().gt(0).max(10).optional(),
  seed: z.int().optional(),
  stop: z.array(z.string().min(1).max(200)).max(8).optional(),
  /** Weight-only quantization of the model's graphs: int8 (u8 x s8) or int4 (block 32); default none (float32). */
  quantize: z.enum(['none', 'int8', 'int4']).optional(),
});
export type GenerationOptions = z.infer<typeof GenerationOptions>;

/** The image of a turn: one from the image store (its sha256), a file on this machine, or uploaded bytes. */
export const ChatImage = z.union([
  z.strictObject({ hash: z.string().regex(/^[0-9a-f]{64}$/, 'must be a sha256 hex digest') }),
  z.strictObject({ path: z.string().min(1).max(4096) }),
  z.strictObject({ base64: z.string().min(1).max(70_000_000, 'image is too large (at most ~50 MB)') }),
]);
export type ChatImage = z.infer<typeof ChatImage>;

/** An audio clip of a turn (for an audio LLM): one from the media store (its sha256), a file here, or uploaded bytes. */
export const ChatAudio = z.union([
  z.strictObject({ hash: z.string().regex(/^[0-9a-f]{64}$/, 'must be a sha256 hex digest') }),
  z.strictObject({ path: z.string().min(1).max(4096) }),
  z.strictObject({ base64: z.string().min(1).max(70_000_000, 'audio is too large (at most ~50 MB)') }),
]);
export type ChatAudio = z.infer<typeof ChatAudio>;

export const ChatMessage = z.object({
  id: Id,
  chatId: Id,
  role: ChatRole,
  content: z.string(),
  imageHash: z.string().nullable(),
  imageExt: z.string().nullable(),
  /** An attached audio clip in the media store (media/<hh>/<sha256>.<ext>). */
  audioHash: z.string().nullable(),
  audioExt: z.string().nullable(),
  position: z.int().nonnegative(),
  /** Assistant turns: {promptTokens, tokens, finishReason, firstTokenMs, tokensPerSecond}. */
  stats: JsonObject,
  createdAt: Timestamp,
});
export type ChatMessage = z.infer<typeof ChatMessage>;

export const Chat = z.object({
  id: Id,
  title: z.string(),
  modelId: Id.nullable(),
  runId: Id.nullable(),
  checkpointId: Id.nullable(),
  /** Model folder and adapter folder used, and the generation options last used. */
  modelDir: z.string().nullable(),
  adapterDir: z.string().nullable(),
  settings: JsonObject,
  messageCount: z.int().nonnegative(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});
export type Chat = z.infer<typeof Chat>;

const NewTurn = z.strictObject({ role: ChatRole, content: z.string().max(100_000) });

export const chatMethods = defineMethods({
  'chat.generate': {
    input: z.strictObject({
      requestId: RequestId,
      /** Continue this chat (its stored messages come first); omit to start a new one. */
      chatId: Id.optional(),
      /** The model: a folder, or a registered model's id; a continued chat defaults to its own. */
      modelDir: z.string().min(1).max(4096).optional(),
      modelId: Id.optional(),
      adapterDir: z.string().min(1).max(4096).nullable().optional(),
      /** An image for the first new user turn (the conversation's latest image is the one the model sees). */
      image: ChatImage.optional(),
      /**
       * An audio clip for a model that takes audio (models.list: report.inputs has 'audio'); WAV or FLAC, decoded
       * and resampled to the model's rate. Like the image, it belongs to the imageTurn turn.
       */
      audio: ChatAudio.optional(),
      /** Which of the new turns (index into messages, a user turn) the image or audio belongs to; default the first user turn. */
      imageTurn: z.int().nonnegative().max(99).optional(),
      /** New turns, normally one user message ("<image>" is added for the image when absent). */
      messages: z.array(NewTurn).min(1).max(100),
      options: GenerationOptions.optional(),
      /** Where to generate: auto (a GPU only where a short measured answer beat the CPU), cpu, webgpu, cuda. */
      device: Device.optional(),
      /** Store the chat and its messages (default true). */
      save: z.boolean().optional(),
      title: z.string().max(200).optional(),
    }),
    output: z.object({
      requestId: RequestId,
      chatId: Id.nullable(),
      text: z.string(),
      ids: z.array(z.int()),
      finishReason: FinishReason,
      promptTokens: z.int().nonnegative(),
      firstTokenMs: z.number().nonnegative(),
      tokensPerSecond: z.number().nullable(),
      /** The saved assistant message (null with save: false). */
      message: ChatMessage.nullable(),
      /** Where it was generated and why. */
      device: z.object({ provider: z.string(), reason: z.string() }).nullable(),
    }),
    summary: 'Generate the assistant reply (streamed as chat.token events), saving the turns to the chat.',
  },
  'chat.cancel': {
    input: z.strictObject({ requestId: RequestId }),
    output: z.object({ cancelled: z.boolean() }),
    summary: 'Stop a running (or queued) chat.generate; it returns the text so far.',
  },
  'chats.list': {
    input: z.strictObject({}),
    output: z.object({ chats: z.array(Chat) }),
    summary: 'Saved chats, most recent first.',
  },
  'chats.get': {
    input: z.strictObject({ id: Id }),
    output: z.object({ chat: Chat, messages: z.array(ChatMessage) }),
    summary: 'One chat with its messages in order.',
  },
  'chats.update': {
    input: z.strictObject({ id: Id, title: z.string().max(200).optional() }),
    output: Chat,
    summary: 'Rename a chat.',
  },
  'chats.truncate': {
    input: z.strictObject({ id: Id, fromPosition: z.int().nonnegative() }),
    output: z.object({ chat: Chat, removed: z.int().nonnegative() }),
    summary: 'Delete the messages at and after a position (to regenerate an answer or edit a question and ask again).',
  },
  'chats.delete': {
    input: z.strictObject({ id: Id }),
    output: z.object({ deleted: z.literal(true), id: Id }),
    summary: 'Delete a chat and its messages.',
  },
});

export const chatEvents = defineEvents({
  /** One generated token of a chat.generate call: `text` is what it adds to the answer (may be ''). */
  'chat.token': z.object({
    requestId: RequestId,
    chatId: Id.nullable(),
    index: z.int().nonnegative(),
    id: z.int(),
    text: z.string(),
  }),
  /** Loading / compiling the model for a request (first use of a model can take a while). */
  'chat.status': z.object({ requestId: RequestId, message: z.string() }),
  'chats.changed': z.object({ kind: z.enum(['created', 'updated', 'deleted']), id: Id }),
});
