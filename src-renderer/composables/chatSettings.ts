// Sampling settings of the chat page as LM Studio has them, kept between sessions (localStorage): system prompt,
// temperature, top-k, top-p, repetition penalty, max tokens, seed and stop strings. An empty field means the
// model's default (greedy, generation_config's length). toOptions turns them into chat.generate's options and
// says which field is wrong.
import type { GenerationOptions } from '../../src-main/contract/chat';

export interface ChatSettings {
  systemPrompt: string;
  temperature: string;
  topK: string;
  topP: string;
  repetitionPenalty: string;
  maxNewTokens: string;
  seed: string;
  /** One stop string per line. */
  stop: string;
  /** Weights: '' (float32), 'int8' or 'int4' (weight-only quantized, faster and smaller; see the README). */
  quantize: string;
}

export const DEFAULT_CHAT_SETTINGS: ChatSettings = {
  systemPrompt: '',
  temperature: '0',
  topK: '',
  topP: '',
  repetitionPenalty: '',
  maxNewTokens: '',
  seed: '',
  stop: '',
  quantize: '',
};

const KEY = 'lenslab.chat.settings';

/** The part of Web Storage used here (declared so the node-side type check, which has no DOM, reads this file). */
interface KeyValueStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}
const browserStorage = (): KeyValueStore | null =>
  (globalThis as { localStorage?: KeyValueStore }).localStorage ?? null;

export function loadChatSettings(storage: Pick<KeyValueStore, 'getItem'> | null = browserStorage()): ChatSettings {
  try {
    const raw = storage?.getItem(KEY);
    const v = raw ? (JSON.parse(raw) as Partial<ChatSettings>) : {};
    const out = { ...DEFAULT_CHAT_SETTINGS };
    for (const k of Object.keys(out) as (keyof ChatSettings)[]) if (typeof v[k] === 'string') out[k] = v[k]!;
    return out;
  } catch {
    return { ...DEFAULT_CHAT_SETTINGS };
  }
}

export function saveChatSettings(
  s: ChatSettings,
  storage: Pick<KeyValueStore, 'setItem'> | null = browserStorage(),
): void {
  try {
    storage?.setItem(KEY, JSON.stringify(s));
  } catch {
    /* private mode: settings last for the session */
  }
}

export class SettingsError extends Error {
  constructor(
    readonly field: keyof ChatSettings,
    message: string,
  ) {
    super(message);
  }
}

function number(
  s: ChatSettings,
  field: keyof ChatSettings,
  label: string,
  min: number,
  max: number,
  opts: { int?: boolean; exclusiveMin?: boolean } = {},
): number | undefined {
  const t = s[field].trim();
  if (!t) return undefined;
  const v = Number(t);
  const low = opts.exclusiveMin ? v <= min : v < min;
  if (!Number.isFinite(v) || low || v > max || (opts.int && !Number.isInteger(v)))
    throw new SettingsError(
      field,
      `${label} must be ${opts.int ? 'a whole number' : 'a number'} ${opts.exclusiveMin ? 'above' : 'from'} ${min}${Number.isFinite(max) ? ` ${opts.exclusiveMin ? 'up to' : 'to'} ${max}` : ' or more'}`,
    );
  return v;
}

/** chat.generate's options from the settings (only the fields that are set). */
export function toOptions(s: ChatSettings): GenerationOptions {
  const o: GenerationOptions = {};
  const temperature = number(s, 'temperature', 'Temperature', 0, 10);
  if (temperature !== undefined) o.temperature = temperature;
  const topK = number(s, 'topK', 'Top-k', 0, 1_000_000, { int: true });
  if (topK !== undefined) o.topK = topK;
  const topP = number(s, 'topP', 'Top-p', 0, 1, { exclusiveMin: true });
  if (topP !== undefined) o.topP = topP;
  const rep = number(s, 'repetitionPenalty', 'Repetition penalty', 0, 10, { exclusiveMin: true });
  if (rep !== undefined) o.repetitionPenalty = rep;
  const max = number(s, 'maxNewTokens', 'Max tokens', 1, 4096, { int: true });
  if (max !== undefined) o.maxNewTokens = max;
  const seed = number(s, 'seed', 'Seed', -(2 ** 31), 2 ** 31 - 1, { int: true });
  if (seed !== undefined) o.seed = seed;
  const stop = s.stop
    .split('\n')
    .map((x) => x.replace(/\\n/g, '\n'))
    .filter((x) => x.length > 0);
  if (stop.length > 8) throw new SettingsError('stop', 'at most 8 stop strings');
  if (stop.some((x) => x.length > 200)) throw new SettingsError('stop', 'a stop string has at most 200 characters');
  if (stop.length) o.stop = stop;
  if (s.quantize === 'int8' || s.quantize === 'int4') o.quantize = s.quantize;
  else if (s.quantize !== '' && s.quantize !== 'none')
    throw new SettingsError('quantize', 'Weights must be float32, int8 or int4');
  return o;
}

/** The settings a saved chat was last answered with (its stored options), over the current ones. */
export function settingsFromOptions(o: Record<string, unknown>, base: ChatSettings): ChatSettings {
  const str = (v: unknown) => (typeof v === 'number' ? String(v) : '');
  return {
    ...base,
    temperature: o.temperature === undefined ? base.temperature : str(o.temperature),
    topK: str(o.topK),
    topP: str(o.topP),
    repetitionPenalty: str(o.repetitionPenalty),
    maxNewTokens: str(o.maxNewTokens),
    seed: str(o.seed),
    stop: Array.isArray(o.stop)
      ? o.stop
          .filter((x) => typeof x === 'string')
          .map((x) => (x as string).replace(/\n/g, '\\n'))
          .join('\n')
      : '',
    quantize: o.quantize === 'int8' || o.quantize === 'int4' ? o.quantize : '',
  };
}

/** Words for a finish reason, as shown under an answer. */
export function finishText(reason: string | null | undefined): string {
  switch (reason) {
    case 'eos':
      return 'End of turn';
    case 'stop':
      return 'Stop string';
    case 'length':
      return 'Max tokens reached';
    case 'cancelled':
      return 'Stopped';
    default:
      return '';
  }
}
