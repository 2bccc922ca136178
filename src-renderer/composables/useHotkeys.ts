// A small keymap: bind combos like 'Mod+S', 'Alt+ArrowDown', '?', 'Shift+Enter' to handlers on an
// element or the window. 'Mod' is Cmd on macOS and Ctrl elsewhere. While the user types in an input,
// textarea, select or contenteditable, plain keys are ignored (so 'j' types a j) but combos with
// Ctrl/Cmd/Alt still fire; a binding can opt out with `inInputs`. Listeners are removed when the
// calling component unmounts (or the surrounding effect scope is stopped).
//
// No DOM types are used so this compiles and unit-tests in Node; anything with addEventListener works.
import { getCurrentScope, isRef, onScopeDispose, unref, watch, type Ref } from 'vue';
import { detectPlatform } from './useVirtualGrid';

export type Platform = 'mac' | 'other';

export interface KeyEventLike {
  key: string;
  code?: string;
  ctrlKey: boolean;
  metaKey: boolean;
  altKey: boolean;
  shiftKey: boolean;
  repeat?: boolean;
  isComposing?: boolean;
  defaultPrevented?: boolean;
  target?: unknown;
  preventDefault(): void;
  stopPropagation?(): void;
}

export interface ParsedCombo {
  key: string; // normalized: lower-case letters, named keys as in KeyboardEvent.key ('ArrowDown', 'Enter', ' ')
  mod: boolean;
  ctrl: boolean;
  meta: boolean;
  alt: boolean;
  shift: boolean;
}

export interface Hotkey {
  /** One combo or several alternatives, e.g. ['Mod+Shift+Z', 'Mod+Y']. */
  keys: string | string[];
  handler: (e: KeyEventLike) => void;
  /** Shown by ShortcutHelp. Bindings without a description are hidden there. */
  description?: string;
  group?: string;
  /**
   * While focus is in a text field: 'modifier' (default) fires only if the combo has Ctrl/Cmd/Alt,
   * 'never' never fires, 'always' always fires.
   */
  inInputs?: 'modifier' | 'never' | 'always';
  /** Default true: call preventDefault() when the binding fires. */
  preventDefault?: boolean;
  /** Fire on auto-repeat while the key is held (default true). */
  repeat?: boolean;
  /** Skip the binding when this returns false. */
  when?: () => boolean;
}

const ALIASES: Record<string, string> = {
  esc: 'Escape',
  escape: 'Escape',
  enter: 'Enter',
  return: 'Enter',
  space: ' ',
  spacebar: ' ',
  tab: 'Tab',
  backspace: 'Backspace',
  delete: 'Delete',
  del: 'Delete',
  up: 'ArrowUp',
  down: 'ArrowDown',
  left: 'ArrowLeft',
  right: 'ArrowRight',
  arrowup: 'ArrowUp',
  arrowdown: 'ArrowDown',
  arrowleft: 'ArrowLeft',
  arrowright: 'ArrowRight',
  home: 'Home',
  end: 'End',
  pageup: 'PageUp',
  pagedown: 'PageDown',
  plus: '+',
};

function normalizeKey(k: string): string {
  if (k.length === 1) return k.toLowerCase();
  const alias = ALIASES[k.toLowerCase()];
  if (alias) return alias;
  if (/^f\d{1,2}$/i.test(k)) return k.toUpperCase();
  return k;
}

export function parseCombo(combo: string): ParsedCombo {
  // Split on '+' but keep a trailing '+' as the key ('Mod++' or 'Shift+Plus').
  const parts =
    combo === '+' ? ['+'] : combo.endsWith('++') ? [...combo.slice(0, -2).split('+'), '+'] : combo.split('+');
  const out: ParsedCombo = { key: '', mod: false, ctrl: false, meta: false, alt: false, shift: false };
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i].trim();
    const lp = p.toLowerCase();
    const last = i === parts.length - 1;
    if (!last && (lp === 'mod' || lp === 'cmdorctrl')) out.mod = true;
    else if (!last && (lp === 'ctrl' || lp === 'control')) out.ctrl = true;
    else if (!last && (lp === 'meta' || lp === 'cmd' || lp === 'command')) out.meta = true;
    else if (!last && (lp === 'alt' || lp === 'option' || lp === 'opt')) out.alt = true;
    else if (!last && lp === 'shift') out.shift = true;
    else if (last && p !== '') out.key = normalizeKey(p);
    else throw new Error(`hotkey "${combo}": unknown part "${p}"`);
  }
  if (!out.key) throw new Error(`hotkey "${combo}": no key`);
  return out;
}

/** A printable non-letter (e.g. '?', '[', '/'): the layout decides whether Shift is needed, so Shift is not compared. */
function isShiftAgnostic(key: string): boolean {
  return key.length === 1 && !/[a-z0-9 ]/.test(key);
}

function keyFromCode(code: string | undefined): string | null {
  if (!code) return null;
  const m = /^Key([A-Z])$/.exec(code) ?? /^Digit(\d)$/.exec(code);
  return m ? m[1].toLowerCase() : null;
}

export function matchesCombo(c: ParsedCombo, e: KeyEventLike, platform: Platform): boolean {
  const wantCtrl = c.ctrl || (c.mod && platform !== 'mac');
  const wantMeta = c.meta || (c.mod && platform === 'mac');
  if (e.ctrlKey !== wantCtrl || e.metaKey !== wantMeta || e.altKey !== c.alt) return false;
  if (!isShiftAgnostic(c.key) && e.shiftKey !== c.shift) return false;
  const k = normalizeKey(e.key);
  if (k === c.key) return true;
  // Alt/Option and some layouts change e.key (Option+N -> '˜'); fall back to the physical key for letters/digits.
  return (
    c.key.length === 1 &&
    /[a-z0-9]/.test(c.key) &&
    keyFromCode(e.code) === c.key &&
    (e.altKey || e.ctrlKey || e.metaKey)
  );
}

export function isTypingTarget(target: unknown): boolean {
  if (!target || typeof target !== 'object') return false;
  const t = target as { tagName?: string; isContentEditable?: boolean; type?: string; readOnly?: boolean };
  if (t.isContentEditable) return true;
  const tag = (t.tagName ?? '').toUpperCase();
  if (tag === 'TEXTAREA' || tag === 'SELECT') return true;
  if (tag === 'INPUT') {
    const type = (t.type ?? 'text').toLowerCase();
    return !['checkbox', 'radio', 'button', 'submit', 'reset', 'range', 'color', 'file', 'image'].includes(type);
  }
  return false;
}

interface Compiled {
  hotkey: Hotkey;
  combos: ParsedCombo[];
}

export function compileHotkeys(list: Hotkey[]): Compiled[] {
  return list.map((h) => ({ hotkey: h, combos: (Array.isArray(h.keys) ? h.keys : [h.keys]).map(parseCombo) }));
}

/** The binding a key event triggers (first match wins), honouring the typing rule, `repeat` and `when`. */
export function findHotkey(compiled: Compiled[], e: KeyEventLike, platform: Platform): Hotkey | null {
  if (e.isComposing) return null;
  const typing = isTypingTarget(e.target);
  for (const { hotkey, combos } of compiled) {
    const combo = combos.find((c) => matchesCombo(c, e, platform));
    if (!combo) continue;
    if (typing) {
      const mode = hotkey.inInputs ?? 'modifier';
      if (mode === 'never') continue;
      if (mode === 'modifier' && !(combo.mod || combo.ctrl || combo.meta || combo.alt)) continue;
    }
    if (e.repeat && hotkey.repeat === false) continue;
    if (hotkey.when && !hotkey.when()) continue;
    return hotkey;
  }
  return null;
}

const MAC_SYMBOLS: Record<string, string> = { ctrl: '⌃', alt: '⌥', shift: '⇧', meta: '⌘' };
const KEY_LABELS: Record<string, string> = {
  ArrowUp: '↑',
  ArrowDown: '↓',
  ArrowLeft: '←',
  ArrowRight: '→',
  Enter: 'Enter',
  Escape: 'Esc',
  ' ': 'Space',
  PageUp: 'PgUp',
  PageDown: 'PgDn',
};

/** Key caps for display: 'Mod+Shift+Z' -> ['⌘', '⇧', 'Z'] on macOS, ['Ctrl', 'Shift', 'Z'] elsewhere. */
export function comboLabel(combo: string, platform: Platform): string[] {
  const c = parseCombo(combo);
  const caps: string[] = [];
  const ctrl = c.ctrl || (c.mod && platform !== 'mac');
  const meta = c.meta || (c.mod && platform === 'mac');
  if (platform === 'mac') {
    if (ctrl) caps.push(MAC_SYMBOLS.ctrl);
    if (c.alt) caps.push(MAC_SYMBOLS.alt);
    if (c.shift) caps.push(MAC_SYMBOLS.shift);
    if (meta) caps.push(MAC_SYMBOLS.meta);
  } else {
    if (ctrl) caps.push('Ctrl');
    if (meta) caps.push('Win');
    if (c.alt) caps.push('Alt');
    if (c.shift) caps.push('Shift');
  }
  caps.push(KEY_LABELS[c.key] ?? (c.key.length === 1 ? c.key.toUpperCase() : c.key));
  return caps;
}

export interface ShortcutInfo {
  keys: string[];
  description: string;
  group: string;
}

/** The documented bindings, for ShortcutHelp. */
export function describeHotkeys(list: Hotkey[], defaultGroup = 'General'): ShortcutInfo[] {
  return list
    .filter((h) => h.description)
    .map((h) => ({
      keys: Array.isArray(h.keys) ? h.keys : [h.keys],
      description: h.description as string,
      group: h.group ?? defaultGroup,
    }));
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- DOM listeners take Event subtypes
type AnyListener = (e: any) => void;
export interface ListenerTarget {
  addEventListener(type: string, listener: AnyListener, options?: boolean): void;
  removeEventListener(type: string, listener: AnyListener, options?: boolean): void;
}

export interface UseHotkeysOptions {
  /** Element (or ref to one) to scope the keymap to; default: the window. */
  target?: ListenerTarget | null | Readonly<Ref<ListenerTarget | null | undefined>>;
  platform?: Platform;
  /** When false the keymap is inactive. */
  enabled?: Ref<boolean> | (() => boolean);
  /** Listen in the capture phase (fires before handlers inside the target). Default false. */
  capture?: boolean;
}

/**
 * Bind `hotkeys` (a list or a ref/getter of one) for the lifetime of the current component / effect scope.
 * Returns `stop()` to unbind early and `describe()` for a help overlay.
 */
export function useHotkeys(hotkeys: Hotkey[] | Ref<Hotkey[]> | (() => Hotkey[]), options: UseHotkeysOptions = {}) {
  const platform = options.platform ?? detectPlatform();
  const getList = (): Hotkey[] => (typeof hotkeys === 'function' ? hotkeys() : unref(hotkeys));
  let compiled = compileHotkeys(getList());
  let lastList = getList();
  const isEnabled = () => {
    const en = options.enabled;
    if (en === undefined) return true;
    return typeof en === 'function' ? en() : en.value;
  };

  const onKeyDown = (e: KeyEventLike) => {
    if (!isEnabled() || e.defaultPrevented) return;
    const list = getList();
    if (list !== lastList) {
      lastList = list;
      compiled = compileHotkeys(list);
    }
    const hit = findHotkey(compiled, e, platform);
    if (!hit) return;
    if (hit.preventDefault !== false) e.preventDefault();
    hit.handler(e);
  };

  let attached: ListenerTarget | null = null;
  const listener: AnyListener = onKeyDown;
  const attach = (t: ListenerTarget | null | undefined) => {
    if (attached) attached.removeEventListener('keydown', listener, options.capture ?? false);
    attached = t ?? null;
    if (attached) attached.addEventListener('keydown', listener, options.capture ?? false);
  };
  const windowTarget = () => (globalThis as unknown as { window?: ListenerTarget }).window ?? null;

  let stopWatch: (() => void) | null = null;
  if (options.target !== undefined && isRef(options.target)) {
    stopWatch = watch(options.target, (t) => attach(t), { immediate: true, flush: 'post' });
  } else {
    attach(options.target === undefined ? windowTarget() : (options.target as ListenerTarget | null));
  }

  const stop = () => {
    stopWatch?.();
    stopWatch = null;
    attach(null);
  };
  if (getCurrentScope()) onScopeDispose(stop);

  return { stop, describe: () => describeHotkeys(getList()), platform, handle: onKeyDown };
}
