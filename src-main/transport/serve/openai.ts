// An OpenAI-compatible endpoint under `lenslab serve`, so other local tools (the OpenAI SDKs, editors, agents)
// can talk to a model or a fine-tune:
//   GET  /v1/models                  registered LLaVA models (by name) and completed runs ("run-<id>": the run's
//                                    base model with its final adapter)
//   POST /v1/chat/completions        messages with string content or content parts ({type: 'text'} and
//                                    {type: 'image_url', image_url: {url: 'data:image/…;base64,…'}}), stream: true
//                                    for server-sent events (chat.completion.chunk, then `data: [DONE]`)
// The same token as every other request (the SDKs send it as `Authorization: Bearer <api key>`). Generation goes
// through the dispatcher's chat.generate (save: false), so requests are validated and queued like the app's.
// Images come only as data URLs: the server never fetches a URL it is given.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Backend } from '../../services/backend';
import type { Params } from '../../contract/index';

type Send = (res: ServerResponse, status: number, body: unknown) => void;

export const OPENAI_PREFIX = '/v1/';

class OpenAiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly type = 'invalid_request_error',
    readonly code: string | null = null,
  ) {
    super(message);
  }
  body() {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

interface Target {
  id: string;
  modelId: number;
  adapterDir: string | null;
  created: number;
}

async function call(backend: Backend, method: string, params: unknown): Promise<any> {
  const env = await backend.dispatcher.dispatch(method, params);
  if (!env.ok) {
    const status =
      {
        invalid_request: 400,
        unauthorized: 401,
        not_found: 404,
        conflict: 409,
        cancelled: 499,
        unavailable: 503,
        internal: 500,
      }[env.error.code] ?? 500;
    throw new OpenAiError(
      status,
      env.error.message,
      env.error.field ? `${env.error.field}` : null,
      status >= 500 ? 'server_error' : 'invalid_request_error',
      env.error.code,
    );
  }
  return env.result;
}

/** What `model` can name: registered LLaVA models by name, and completed runs as run-<id>. */
async function targets(backend: Backend): Promise<Target[]> {
  const out: Target[] = [];
  const { models } = await call(backend, 'models.list', {});
  for (const m of models)
    if (m.available && m.report?.kind === 'llava')
      out.push({
        id: m.name,
        modelId: m.id,
        adapterDir: null,
        created: Math.floor(Date.parse(m.createdAt) / 1000) || 0,
      });
  const { runs } = await call(backend, 'runs.list', { status: 'completed' });
  for (const r of runs) {
    if (r.modelId === null) continue;
    const c = await call(backend, 'runs.checkpoints', { id: r.id }).catch(() => null);
    if (c?.finalDir)
      out.push({
        id: `run-${r.id}`,
        modelId: r.modelId,
        adapterDir: c.finalDir,
        created: Math.floor(Date.parse(r.createdAt) / 1000) || 0,
      });
  }
  return out;
}

const ROLES = new Set(['system', 'developer', 'user', 'assistant']);
const DATA_URL = /^data:(image\/[a-z0-9.+-]+)?(;[a-z0-9=.-]+)*;base64,/i;

export interface ParsedRequest {
  model: string;
  stream: boolean;
  includeUsage: boolean;
  messages: Array<{ role: 'system' | 'user' | 'assistant'; content: string }>;
  image: { base64: string; turn: number } | null;
  options: NonNullable<Params<'chat.generate'>['options']>;
}

function num(v: unknown, param: string, min: number, max: number, int = false): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max || (int && !Number.isInteger(v)))
    throw new OpenAiError(400, `${param} must be ${int ? 'an integer' : 'a number'} from ${min} to ${max}`, param);
  return v;
}

/** Validate an OpenAI chat.completions request body and map it to chat.generate's terms. */
export function parseChatRequest(body: unknown): ParsedRequest {
  if (!body || typeof body !== 'object' || Array.isArray(body))
    throw new OpenAiError(400, 'the body must be a JSON object');
  const b = body as Record<string, unknown>;
  if (typeof b.model !== 'string' || !b.model)
    throw new OpenAiError(400, 'model is required (GET /v1/models lists them)', 'model');
  if (!Array.isArray(b.messages) || b.messages.length === 0)
    throw new OpenAiError(400, 'messages must be a non-empty array', 'messages');
  if (b.n !== undefined && b.n !== null && b.n !== 1) throw new OpenAiError(400, 'only n = 1 is supported', 'n');
  if (b.tools !== undefined && b.tools !== null && !(Array.isArray(b.tools) && b.tools.length === 0))
    throw new OpenAiError(400, 'tools are not supported by this server', 'tools');
  if (b.logprobs === true) throw new OpenAiError(400, 'logprobs are not supported by this server', 'logprobs');
  const rf = b.response_format as { type?: unknown } | undefined | null;
  if (rf && rf.type !== 'text')
    throw new OpenAiError(400, 'only response_format {type: "text"} is supported', 'response_format');
  const messages: ParsedRequest['messages'] = [];
  let image: ParsedRequest['image'] = null;
  let images = 0;
  b.messages.forEach((m: unknown, i: number) => {
    const param = `messages[${i}]`;
    if (!m || typeof m !== 'object') throw new OpenAiError(400, `${param} must be an object`, param);
    const { role, content } = m as { role?: unknown; content?: unknown };
    if (typeof role !== 'string' || !ROLES.has(role))
      throw new OpenAiError(
        400,
        `${param}.role must be system, developer, user or assistant (tool messages are not supported)`,
        `${param}.role`,
      );
    let text = '';
    if (typeof content === 'string') text = content;
    else if (Array.isArray(content)) {
      const parts: string[] = [];
      content.forEach((part: unknown, j: number) => {
        const pp = `${param}.content[${j}]`;
        const p = part as { type?: unknown; text?: unknown; image_url?: unknown };
        if (p?.type === 'text') {
          if (typeof p.text !== 'string') throw new OpenAiError(400, `${pp}.text must be a string`, `${pp}.text`);
          parts.push(p.text);
        } else if (p?.type === 'image_url') {
          if (role !== 'user') throw new OpenAiError(400, `${pp}: images go in user messages`, pp);
          const iu = p.image_url as { url?: unknown } | string | undefined;
          const url = typeof iu === 'string' ? iu : iu?.url;
          if (typeof url !== 'string')
            throw new OpenAiError(400, `${pp}.image_url.url must be a string`, `${pp}.image_url.url`);
          const m2 = DATA_URL.exec(url);
          if (!m2)
            throw new OpenAiError(
              400,
              `${pp}.image_url.url must be a data URL (data:image/png;base64,…): this server does not fetch images from the network`,
              `${pp}.image_url.url`,
            );
          images++;
          image = { base64: url.slice(m2[0].length), turn: messages.length };
        } else throw new OpenAiError(400, `${pp}.type must be "text" or "image_url"`, `${pp}.type`);
      });
      text = parts.join('\n');
    } else if (content === null && role === 'assistant') text = '';
    else
      throw new OpenAiError(400, `${param}.content must be a string or an array of content parts`, `${param}.content`);
    messages.push({ role: role === 'developer' ? 'system' : (role as 'system' | 'user' | 'assistant'), content: text });
  });
  if (images > 1)
    throw new OpenAiError(
      400,
      `the request has ${images} images: these models look at one image per conversation`,
      'messages',
    );
  if (messages.at(-1)!.role !== 'user')
    throw new OpenAiError(400, 'the last message must be from the user', 'messages');
  const stop = b.stop === undefined || b.stop === null ? undefined : typeof b.stop === 'string' ? [b.stop] : b.stop;
  if (stop !== undefined && (!Array.isArray(stop) || stop.length > 4 || stop.some((s) => typeof s !== 'string' || !s)))
    throw new OpenAiError(400, 'stop must be a string or up to 4 non-empty strings', 'stop');
  const so = b.stream_options as { include_usage?: unknown } | undefined | null;
  const options: ParsedRequest['options'] = {};
  const temperature = num(b.temperature, 'temperature', 0, 2);
  if (temperature !== undefined) options.temperature = temperature;
  const topP = num(b.top_p, 'top_p', 0, 1);
  if (topP !== undefined && topP > 0) options.topP = topP;
  const topK = num(b.top_k, 'top_k', 0, 100_000, true);
  if (topK !== undefined) options.topK = topK;
  const rep = num(b.repetition_penalty, 'repetition_penalty', 0.01, 10);
  if (rep !== undefined) options.repetitionPenalty = rep;
  const maxTokens = num(
    b.max_completion_tokens ?? b.max_tokens,
    b.max_completion_tokens !== undefined ? 'max_completion_tokens' : 'max_tokens',
    1,
    4096,
    true,
  );
  if (maxTokens !== undefined) options.maxNewTokens = maxTokens;
  const seed = num(b.seed, 'seed', -(2 ** 31), 2 ** 31 - 1, true);
  if (seed !== undefined) options.seed = seed;
  if (stop) options.stop = stop as string[];
  return {
    model: b.model,
    stream: b.stream === true,
    includeUsage: so?.include_usage === true,
    messages,
    image,
    options,
  };
}

const FINISH = { eos: 'stop', stop: 'stop', length: 'length', cancelled: 'stop' } as const;

export async function handleOpenAi(
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  backend: Backend,
  readBody: (req: IncomingMessage) => Promise<string>,
  send: Send,
): Promise<void> {
  const fail = (e: unknown) => {
    const err =
      e instanceof OpenAiError
        ? e
        : new OpenAiError(500, (e as Error).message ?? 'internal error', null, 'server_error');
    if (!res.headersSent) send(res, err.status, err.body());
    else if (!res.writableEnded) {
      res.write(`data: ${JSON.stringify(err.body())}\n\n`);
      res.end();
    }
  };
  try {
    if (url.pathname === '/v1/models' && req.method === 'GET') {
      const list = await targets(backend);
      send(res, 200, {
        object: 'list',
        data: list.map((t) => ({ id: t.id, object: 'model', created: t.created, owned_by: 'lenslab' })),
      });
      return;
    }
    if (url.pathname !== '/v1/chat/completions')
      throw new OpenAiError(
        404,
        `no route ${req.method} ${url.pathname} (this server has GET /v1/models and POST /v1/chat/completions)`,
        null,
        'invalid_request_error',
        'not_found',
      );
    if (req.method !== 'POST') throw new OpenAiError(405, 'use POST', null);
    let body: unknown;
    try {
      body = JSON.parse(await readBody(req));
    } catch (e) {
      if (e instanceof SyntaxError) throw new OpenAiError(400, `the body is not valid JSON: ${e.message}`);
      throw new OpenAiError(413, (e as Error).message);
    }
    const r = parseChatRequest(body);
    const target = (await targets(backend)).find((t) => t.id === r.model);
    if (!target)
      throw new OpenAiError(
        404,
        `no model "${r.model}": GET /v1/models lists the names`,
        'model',
        'invalid_request_error',
        'model_not_found',
      );
    const requestId = `oai-${randomUUID()}`;
    const id = `chatcmpl-${randomUUID().replace(/-/g, '')}`;
    const created = Math.floor(Date.now() / 1000);
    const params: Params<'chat.generate'> = {
      requestId,
      modelId: target.modelId,
      adapterDir: target.adapterDir,
      messages: r.messages,
      ...(r.image ? { image: { base64: r.image.base64 }, imageTurn: r.image.turn } : {}),
      options: r.options,
      save: false,
    };
    if (!r.stream) {
      const g = await call(backend, 'chat.generate', params);
      send(res, 200, {
        id,
        object: 'chat.completion',
        created,
        model: r.model,
        system_fingerprint: null,
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: g.text, refusal: null },
            logprobs: null,
            finish_reason: FINISH[g.finishReason as keyof typeof FINISH],
          },
        ],
        usage: {
          prompt_tokens: g.promptTokens,
          completion_tokens: g.ids.length,
          total_tokens: g.promptTokens + g.ids.length,
        },
      });
      return;
    }
    // streaming: tokens from chat.token events; a client that goes away cancels the generation
    const chunk = (delta: Record<string, unknown>, finish: string | null, extra: Record<string, unknown> = {}) =>
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: r.model, system_fingerprint: null, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...extra })}\n\n`;
    let started = false;
    const start = () => {
      if (started) return;
      started = true;
      res.writeHead(200, {
        'Content-Type': 'text/event-stream; charset=utf-8',
        'Cache-Control': 'no-store',
        Connection: 'keep-alive',
        'X-Content-Type-Options': 'nosniff',
      });
      res.write(chunk({ role: 'assistant', content: '' }, null));
    };
    const off = backend.events.subscribe((event, payload) => {
      const t = payload as { requestId?: string; text?: string };
      if (event !== 'chat.token' || t.requestId !== requestId) return;
      start();
      if (t.text) res.write(chunk({ content: t.text }, null));
    });
    let done = false;
    res.on('close', () => {
      if (!done) void backend.dispatcher.dispatch('chat.cancel', { requestId });
    });
    try {
      const g = await call(backend, 'chat.generate', params);
      start();
      res.write(chunk({}, FINISH[g.finishReason as keyof typeof FINISH]));
      if (r.includeUsage)
        res.write(
          `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: r.model, system_fingerprint: null, choices: [], usage: { prompt_tokens: g.promptTokens, completion_tokens: g.ids.length, total_tokens: g.promptTokens + g.ids.length } })}\n\n`,
        );
      res.write('data: [DONE]\n\n');
      res.end();
    } finally {
      done = true;
      off();
    }
  } catch (e) {
    fail(e);
  }
}
