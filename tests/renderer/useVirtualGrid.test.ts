import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ref, nextTick } from 'vue';
import {
  gridLayout,
  visibleRange,
  moveIndex,
  selectByClick,
  scrollTopToReveal,
  useVirtualGrid,
  type KeyLike,
} from '../../src-renderer/composables/useVirtualGrid';

const L = { minCellWidth: 100, gap: 10, aspect: 1, footer: 20, padding: 0 };

test('gridLayout fits as many columns as the min width allows and stretches cells', () => {
  // 4 * 100 + 3 * 10 = 430 fits in 450; 5 columns would need 540.
  const g = gridLayout(450, L);
  assert.equal(g.columns, 4);
  assert.equal(g.cellWidth, Math.floor((450 - 30) / 4));
  assert.equal(g.cellHeight, g.cellWidth + 20);
  assert.equal(g.rowStride, g.cellHeight + 10);
  // Never fewer than one column, even when narrower than one cell.
  assert.equal(gridLayout(50, L).columns, 1);
  assert.equal(gridLayout(0, L).columns, 1);
  // Padding is taken off both sides.
  assert.equal(gridLayout(450, { ...L, padding: 20 }).columns, 3);
});

test('visibleRange renders only the rows in view plus overscan', () => {
  // 10,000 items, 5 columns -> 2,000 rows of stride 100.
  const r = visibleRange({
    count: 10_000,
    columns: 5,
    rowStride: 100,
    scrollTop: 50_000,
    viewportHeight: 600,
    overscan: 2,
  });
  assert.equal(r.rowCount, 2000);
  // rows 500..506 visible (506 is partly visible at 50,600 exclusive), overscan 2 each side.
  assert.equal(r.firstRow, 498);
  assert.equal(r.endRow, 508);
  assert.equal(r.start, 498 * 5);
  assert.equal(r.end, 508 * 5);
  assert.equal(r.offsetTop, 498 * 100);
  assert.ok(r.end - r.start <= 60, 'only a window of items is rendered');
});

test('visibleRange clamps at both ends and handles a short last row and an empty list', () => {
  const top = visibleRange({ count: 23, columns: 5, rowStride: 100, scrollTop: 0, viewportHeight: 250, overscan: 1 });
  assert.deepEqual([top.firstRow, top.endRow, top.start, top.end], [0, 4, 0, 20]);
  const bottom = visibleRange({
    count: 23,
    columns: 5,
    rowStride: 100,
    scrollTop: 10_000,
    viewportHeight: 250,
    overscan: 1,
  });
  assert.equal(bottom.endRow, 5);
  assert.equal(bottom.end, 23, 'last row holds only 3 items');
  assert.ok(bottom.firstRow <= 4);
  const empty = visibleRange({ count: 0, columns: 5, rowStride: 100, scrollTop: 0, viewportHeight: 250, overscan: 1 });
  assert.deepEqual([empty.start, empty.end, empty.totalHeight], [0, 0, 0]);
  // Total height: rows * stride minus the trailing gap plus padding on both sides.
  const padded = visibleRange({
    count: 10,
    columns: 5,
    rowStride: 110,
    scrollTop: 0,
    viewportHeight: 250,
    overscan: 0,
    padding: 8,
    gap: 10,
  });
  assert.equal(padded.totalHeight, 2 * 110 - 10 + 16);
});

test('moveIndex: arrows, Home/End, PageUp/PageDown with a short last row', () => {
  // 23 items, 5 columns: last row is indices 20..22.
  const m = (k: Parameters<typeof moveIndex>[0], i: number) => moveIndex(k, i, 23, 5, 2);
  assert.equal(m('ArrowRight', 3), 4);
  assert.equal(m('ArrowRight', 22), 22);
  assert.equal(m('ArrowLeft', 0), 0);
  assert.equal(m('ArrowLeft', 5), 4, 'left wraps to the previous row like reading order');
  assert.equal(m('ArrowDown', 2), 7);
  assert.equal(m('ArrowDown', 18), 22, 'down into a short last row lands on the last item');
  assert.equal(m('ArrowDown', 21), 21, 'down on the last row stays');
  assert.equal(m('ArrowUp', 7), 2);
  assert.equal(m('ArrowUp', 3), 3);
  assert.equal(m('Home', 17), 0);
  assert.equal(m('End', 3), 22);
  assert.equal(m('PageDown', 1), 11, 'a page is rowsPerPage rows');
  assert.equal(m('PageDown', 16), 21, 'same column on the last row');
  assert.equal(m('PageDown', 14), 22, 'column missing on the last row -> last item');
  assert.equal(m('PageUp', 21), 11);
  assert.equal(m('PageUp', 8), 3, 'clamps to the same column in the first row');
  // No focus yet: any key starts at the first item, End at the last.
  assert.equal(moveIndex('ArrowDown', -1, 23, 5, 2), 0);
  assert.equal(moveIndex('End', -1, 23, 5, 2), 22);
  assert.equal(moveIndex('ArrowDown', -1, 0, 5, 2), -1);
});

test('scrollTopToReveal scrolls up or down only as far as needed', () => {
  const base = { columns: 4, rowStride: 110, cellHeight: 100, viewportHeight: 300 };
  assert.equal(scrollTopToReveal({ ...base, index: 5, scrollTop: 0 }), null); // row 1: 110..210 visible
  assert.equal(scrollTopToReveal({ ...base, index: 12, scrollTop: 0 }), 330 + 100 - 300); // row 3 bottom at 430
  assert.equal(scrollTopToReveal({ ...base, index: 0, scrollTop: 500 }), 0);
});

test('selectByClick: plain, toggle, shift range, toggle+shift adds a range', () => {
  const keyAt = (i: number) => `k${i}`;
  let s = selectByClick({ selected: new Set<string>(), anchor: -1 }, 3, {}, keyAt);
  assert.deepEqual([...s.selected], ['k3']);
  assert.equal(s.anchor, 3);
  s = selectByClick(s, 6, { range: true }, keyAt);
  assert.deepEqual([...s.selected].sort(), ['k3', 'k4', 'k5', 'k6']);
  assert.equal(s.anchor, 3, 'shift keeps the anchor');
  s = selectByClick(s, 1, { range: true }, keyAt);
  assert.deepEqual([...s.selected].sort(), ['k1', 'k2', 'k3'], 'a new shift range replaces the old one');
  s = selectByClick(s, 2, { toggle: true }, keyAt);
  assert.deepEqual([...s.selected].sort(), ['k1', 'k3']);
  assert.equal(s.anchor, 2);
  s = selectByClick(s, 9, { toggle: true }, keyAt);
  s = selectByClick(s, 11, { toggle: true, range: true }, keyAt);
  assert.deepEqual([...s.selected].sort(), ['k1', 'k10', 'k11', 'k3', 'k9']);
  // Shift-click with no anchor selects just that item.
  const fresh = selectByClick({ selected: new Set<string>(), anchor: -1 }, 4, { range: true }, keyAt);
  assert.deepEqual([...fresh.selected], ['k4']);
});

function key(k: string, mods: Partial<KeyLike> = {}): KeyLike & { prevented: boolean } {
  const e = {
    key: k,
    shiftKey: false,
    ctrlKey: false,
    metaKey: false,
    altKey: false,
    prevented: false,
    ...mods,
  } as KeyLike & {
    prevented: boolean;
  };
  e.preventDefault = () => {
    e.prevented = true;
  };
  return e;
}

test('useVirtualGrid: reactive range follows scroll and size; keyboard selection', async () => {
  const count = ref(100);
  const g = useVirtualGrid({
    count,
    keyAt: (i) => i,
    layout: { minCellWidth: 100, gap: 0, aspect: 1, footer: 0, padding: 0 },
    overscan: 0,
    platform: 'other',
  });
  g.viewportWidth.value = 400; // 4 columns of 100
  g.viewportHeight.value = 250;
  assert.equal(g.layout.value.columns, 4);
  assert.deepEqual([g.range.value.start, g.range.value.end], [0, 12]);
  g.scrollTop.value = 1000;
  assert.deepEqual([g.range.value.start, g.range.value.end], [40, 52]);
  assert.equal(g.rowsPerPage.value, 2);

  // Arrow keys move focus and a single selection; shift extends from the anchor.
  assert.equal(g.handleKey(key('ArrowRight')), 'move');
  assert.equal(g.focusIndex.value, 0);
  g.handleKey(key('ArrowRight'));
  g.handleKey(key('ArrowDown', { shiftKey: true }));
  assert.equal(g.focusIndex.value, 5);
  assert.deepEqual(
    [...g.selected.value].sort((a, b) => a - b),
    [1, 2, 3, 4, 5],
  );
  // Ctrl+arrow moves focus only; space toggles the focused item.
  g.handleKey(key('ArrowDown', { ctrlKey: true }));
  assert.equal(g.focusIndex.value, 9);
  assert.equal(g.handleKey(key(' ')), 'select');
  assert.ok(g.selected.value.has(9) && g.selected.value.has(1));
  assert.equal(g.handleKey(key('Enter')), 'open');
  const all = key('a', { ctrlKey: true });
  g.handleKey(all);
  assert.equal(g.selected.value.size, 100);
  assert.ok(all.prevented);
  g.handleKey(key('Escape'));
  assert.equal(g.selected.value.size, 0);
  assert.equal(g.handleKey(key('x')), null, 'other keys are left alone');

  // Click with the platform toggle modifier; shrinking the list clamps focus.
  g.click(10, {});
  g.click(12, { ctrlKey: true });
  assert.deepEqual(
    [...g.selected.value].sort((a, b) => a - b),
    [10, 12],
  );
  g.click(14, { shiftKey: true });
  assert.deepEqual(
    [...g.selected.value].sort((a, b) => a - b),
    [12, 13, 14],
  );
  count.value = 5;
  await nextTick();
  assert.equal(g.focusIndex.value, 4);
});

test('useVirtualGrid on mac uses cmd as the toggle modifier', () => {
  const g = useVirtualGrid({ count: ref(10), keyAt: (i) => i, platform: 'mac' });
  g.click(1, {});
  g.click(3, { ctrlKey: true });
  assert.deepEqual([...g.selected.value], [3], 'ctrl-click on mac is a plain click');
  g.click(5, { metaKey: true });
  assert.deepEqual([...g.selected.value].sort(), [3, 5]);
});
