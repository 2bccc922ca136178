import { test } from 'node:test';
import assert from 'node:assert/strict';
import { effectScope, ref, nextTick } from 'vue';
import {
  parseCombo,
  matchesCombo,
  isTypingTarget,
  compileHotkeys,
  findHotkey,
  comboLabel,
  useHotkeys,
  type KeyEventLike,
  type Hotkey,
} from '../../src-renderer/composables/useHotkeys';

function ev(key: string, mods: Partial<KeyEventLike> = {}): KeyEventLike & { prevented: boolean } {
  const e = {
    key,
    ctrlKey: false,
    metaKey: false,
    altKey: false,
    shiftKey: false,
    prevented: false,
    ...mods,
  } as KeyEventLike & {
    prevented: boolean;
  };
  e.preventDefault = () => {
    e.prevented = true;
  };
  return e;
}

test('parseCombo normalizes modifiers and key names', () => {
  assert.deepEqual(parseCombo('Mod+Shift+Z'), {
    key: 'z',
    mod: true,
    ctrl: false,
    meta: false,
    alt: false,
    shift: true,
  });
  assert.equal(parseCombo('Alt+Down').key, 'ArrowDown');
  assert.equal(parseCombo('esc').key, 'Escape');
  assert.equal(parseCombo('Space').key, ' ');
  assert.equal(parseCombo('?').key, '?');
  assert.equal(parseCombo('Mod++').key, '+');
  assert.ok(parseCombo('Mod++').mod);
  assert.throws(() => parseCombo('Hyper+K'), /unknown part "Hyper"/);
});

test('Mod is Cmd on mac and Ctrl elsewhere; other modifiers must match exactly', () => {
  const save = parseCombo('Mod+S');
  assert.ok(matchesCombo(save, ev('s', { ctrlKey: true }), 'other'));
  assert.ok(!matchesCombo(save, ev('s', { metaKey: true }), 'other'));
  assert.ok(matchesCombo(save, ev('s', { metaKey: true }), 'mac'));
  assert.ok(!matchesCombo(save, ev('s', { ctrlKey: true }), 'mac'));
  assert.ok(!matchesCombo(save, ev('s', { ctrlKey: true, shiftKey: true }), 'other'), 'extra Shift does not match');
  assert.ok(!matchesCombo(save, ev('s', { ctrlKey: true, altKey: true }), 'other'));
  assert.ok(!matchesCombo(save, ev('s'), 'other'));
  // Shift+letter: the browser reports 'Z'.
  assert.ok(matchesCombo(parseCombo('Mod+Shift+Z'), ev('Z', { ctrlKey: true, shiftKey: true }), 'other'));
  // '?' needs Shift on most layouts but the combo does not say so.
  assert.ok(matchesCombo(parseCombo('?'), ev('?', { shiftKey: true }), 'other'));
  // Option+N on mac reports a dead key; the physical key matches.
  assert.ok(matchesCombo(parseCombo('Alt+N'), ev('˜', { altKey: true, code: 'KeyN' }), 'mac'));
  assert.ok(!matchesCombo(parseCombo('N'), ev('˜', { code: 'KeyN' }), 'mac'));
});

test('isTypingTarget recognizes text fields but not buttons or checkboxes', () => {
  assert.ok(isTypingTarget({ tagName: 'TEXTAREA' }));
  assert.ok(isTypingTarget({ tagName: 'INPUT', type: 'text' }));
  assert.ok(isTypingTarget({ tagName: 'INPUT', type: 'number' }));
  assert.ok(isTypingTarget({ tagName: 'DIV', isContentEditable: true }));
  assert.ok(isTypingTarget({ tagName: 'SELECT' }));
  assert.ok(!isTypingTarget({ tagName: 'INPUT', type: 'checkbox' }));
  assert.ok(!isTypingTarget({ tagName: 'BUTTON' }));
  assert.ok(!isTypingTarget(null));
});

test('findHotkey: plain keys are ignored while typing, modifier combos still fire, inInputs overrides', () => {
  const hit: string[] = [];
  const list: Hotkey[] = [
    { keys: 'j', handler: () => hit.push('next') },
    { keys: ['Mod+Shift+Z', 'Mod+Y'], handler: () => hit.push('redo') },
    { keys: 'Escape', handler: () => hit.push('close'), inInputs: 'always' },
    { keys: 'Mod+Z', handler: () => hit.push('undo'), inInputs: 'never' },
    { keys: 'x', handler: () => hit.push('x'), when: () => false },
    { keys: 'r', handler: () => hit.push('r'), repeat: false },
  ];
  const c = compileHotkeys(list);
  const textarea = { tagName: 'TEXTAREA' };
  assert.equal(findHotkey(c, ev('j'), 'other'), list[0]);
  assert.equal(findHotkey(c, ev('j', { target: textarea }), 'other'), null);
  assert.equal(findHotkey(c, ev('y', { ctrlKey: true, target: textarea }), 'other'), list[1]);
  assert.equal(findHotkey(c, ev('Escape', { target: textarea }), 'other'), list[2]);
  assert.equal(findHotkey(c, ev('z', { ctrlKey: true, target: textarea }), 'other'), null);
  assert.equal(findHotkey(c, ev('z', { ctrlKey: true }), 'other'), list[3]);
  assert.equal(findHotkey(c, ev('x'), 'other'), null);
  assert.equal(findHotkey(c, ev('r', { repeat: true }), 'other'), null);
  assert.equal(findHotkey(c, ev('r'), 'other'), list[5]);
  assert.equal(findHotkey(c, ev('j', { isComposing: true }), 'other'), null, 'IME composition is left alone');
});

test('comboLabel renders platform key caps', () => {
  assert.deepEqual(comboLabel('Mod+Shift+Z', 'mac'), ['⇧', '⌘', 'Z']);
  assert.deepEqual(comboLabel('Mod+Shift+Z', 'other'), ['Ctrl', 'Shift', 'Z']);
  assert.deepEqual(comboLabel('Alt+ArrowDown', 'other'), ['Alt', '↓']);
  assert.deepEqual(comboLabel('?', 'other'), ['?']);
});

class FakeTarget {
  listeners = new Map<string, Set<(e: KeyEventLike) => void>>();
  addEventListener(type: string, fn: (e: KeyEventLike) => void) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type)!.add(fn);
  }
  removeEventListener(type: string, fn: (e: KeyEventLike) => void) {
    this.listeners.get(type)?.delete(fn);
  }
  dispatch(e: KeyEventLike) {
    for (const fn of this.listeners.get('keydown') ?? []) fn(e);
  }
  count() {
    return this.listeners.get('keydown')?.size ?? 0;
  }
}

test('useHotkeys binds to a target, follows a target ref, honours enabled and cleans up with its scope', async () => {
  const a = new FakeTarget();
  const b = new FakeTarget();
  const target = ref<FakeTarget | null>(a);
  const enabled = ref(true);
  const calls: string[] = [];
  const scope = effectScope();
  let api!: ReturnType<typeof useHotkeys>;
  scope.run(() => {
    api = useHotkeys([{ keys: 'Mod+S', handler: () => calls.push('save'), description: 'Save', group: 'Editing' }], {
      target,
      enabled,
      platform: 'other',
    });
  });
  assert.equal(a.count(), 1);
  const e = ev('s', { ctrlKey: true });
  a.dispatch(e);
  assert.deepEqual(calls, ['save']);
  assert.ok(e.prevented, 'preventDefault by default (no browser save dialog)');
  enabled.value = false;
  a.dispatch(ev('s', { ctrlKey: true }));
  assert.deepEqual(calls, ['save']);
  enabled.value = true;
  target.value = b;
  await nextTick();
  assert.equal(a.count(), 0);
  assert.equal(b.count(), 1);
  b.dispatch(ev('s', { ctrlKey: true }));
  assert.deepEqual(calls, ['save', 'save']);
  assert.deepEqual(api.describe(), [{ keys: ['Mod+S'], description: 'Save', group: 'Editing' }]);
  scope.stop();
  assert.equal(b.count(), 0, 'listener removed on scope dispose');
});

test('useHotkeys re-reads a reactive list of bindings', () => {
  const t = new FakeTarget();
  const list = ref<Hotkey[]>([]);
  const calls: string[] = [];
  const scope = effectScope();
  scope.run(() => useHotkeys(list, { target: t, platform: 'mac' }));
  t.dispatch(ev('k'));
  list.value = [{ keys: 'k', handler: () => calls.push('k') }];
  t.dispatch(ev('k'));
  assert.deepEqual(calls, ['k']);
  scope.stop();
});
