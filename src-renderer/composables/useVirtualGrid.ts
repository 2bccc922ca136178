// Windowed rendering and selection for a grid of thousands of fixed-size cells (thumbnails).
// Pure math first (gridLayout, visibleRange, moveIndex, selectByClick, …) so it can be unit-tested
// in Node; `useVirtualGrid` wires that math to Vue refs. No DOM types: the component feeds in the
// scroll position and viewport size and calls `handleKey` with anything shaped like a KeyboardEvent.
import { computed, ref, shallowRef, watch, type Ref } from 'vue';

export type GridKey = string | number;

export interface GridLayoutOptions {
  /** Smallest cell width in px; cells stretch so the columns fill the row. */
  minCellWidth: number;
  /** Gap between cells, px. */
  gap: number;
  /** Height of the image area as a fraction of the cell width (1 = square). */
  aspect: number;
  /** Extra fixed height under the image (a caption line), px. */
  footer: number;
  /** Inner padding of the scroller, px (left = right = top = bottom). */
  padding: number;
}

export interface GridLayout {
  columns: number;
  cellWidth: number;
  cellHeight: number;
  /** cellHeight + gap: distance between the tops of two rows. */
  rowStride: number;
}

export function gridLayout(containerWidth: number, o: GridLayoutOptions): GridLayout {
  const inner = Math.max(0, containerWidth - 2 * o.padding);
  const columns = Math.max(1, Math.floor((inner + o.gap) / (o.minCellWidth + o.gap)));
  const cellWidth = Math.max(1, Math.floor((inner - o.gap * (columns - 1)) / columns));
  const cellHeight = Math.round(cellWidth * o.aspect) + o.footer;
  return { columns, cellWidth, cellHeight, rowStride: cellHeight + o.gap };
}

export interface VisibleRange {
  /** First rendered row (inclusive) and last rendered row (exclusive). */
  firstRow: number;
  endRow: number;
  /** Item indices [start, end) to render. */
  start: number;
  end: number;
  /** px from the top of the content to the top of firstRow (excluding padding). */
  offsetTop: number;
  /** Full scrollable content height including padding. */
  totalHeight: number;
  rowCount: number;
}

export function visibleRange(p: {
  count: number;
  columns: number;
  rowStride: number;
  scrollTop: number;
  viewportHeight: number;
  overscan: number;
  padding?: number;
  gap?: number;
}): VisibleRange {
  const pad = p.padding ?? 0;
  const columns = Math.max(1, p.columns);
  const rowCount = p.count <= 0 ? 0 : Math.ceil(p.count / columns);
  const stride = Math.max(1, p.rowStride);
  const totalHeight = rowCount === 0 ? 0 : rowCount * stride - (p.gap ?? 0) + 2 * pad;
  if (rowCount === 0) {
    return { firstRow: 0, endRow: 0, start: 0, end: 0, offsetTop: 0, totalHeight: 0, rowCount: 0 };
  }
  const top = Math.max(0, p.scrollTop - pad);
  const height = Math.max(0, p.viewportHeight);
  let first = Math.floor(top / stride);
  let last = Math.ceil((top + height) / stride); // exclusive
  first = Math.max(0, Math.min(rowCount - 1, first - p.overscan));
  last = Math.max(first + 1, Math.min(rowCount, last + p.overscan));
  return {
    firstRow: first,
    endRow: last,
    start: first * columns,
    end: Math.min(p.count, last * columns),
    offsetTop: first * stride,
    totalHeight,
    rowCount,
  };
}

/** The scrollTop that brings item `index` fully into view, or null when it already is. */
export function scrollTopToReveal(p: {
  index: number;
  columns: number;
  rowStride: number;
  cellHeight: number;
  scrollTop: number;
  viewportHeight: number;
  padding?: number;
}): number | null {
  const pad = p.padding ?? 0;
  const row = Math.floor(p.index / Math.max(1, p.columns));
  const top = pad + row * p.rowStride;
  const bottom = top + p.cellHeight;
  if (top < p.scrollTop) return Math.max(0, top - pad);
  if (bottom > p.scrollTop + p.viewportHeight) return Math.max(0, bottom - p.viewportHeight + pad);
  return null;
}

export type NavKey = 'ArrowLeft' | 'ArrowRight' | 'ArrowUp' | 'ArrowDown' | 'Home' | 'End' | 'PageUp' | 'PageDown';
const NAV_KEYS = new Set<string>([
  'ArrowLeft',
  'ArrowRight',
  'ArrowUp',
  'ArrowDown',
  'Home',
  'End',
  'PageUp',
  'PageDown',
]);
export function isNavKey(key: string): key is NavKey {
  return NAV_KEYS.has(key);
}

/** Where focus goes from `index` after a navigation key. -1 stays -1 only when count is 0. */
export function moveIndex(key: NavKey, index: number, count: number, columns: number, rowsPerPage: number): number {
  if (count <= 0) return -1;
  const cols = Math.max(1, columns);
  const i = index < 0 ? -1 : Math.min(index, count - 1);
  if (i < 0) return key === 'End' ? count - 1 : 0;
  const page = Math.max(1, rowsPerPage) * cols;
  switch (key) {
    case 'ArrowLeft':
      return Math.max(0, i - 1);
    case 'ArrowRight':
      return Math.min(count - 1, i + 1);
    case 'ArrowUp':
      return i - cols >= 0 ? i - cols : i;
    case 'ArrowDown': {
      if (i + cols < count) return i + cols;
      // Moving down from a row above the (short) last row lands on the last item.
      const lastRow = Math.floor((count - 1) / cols);
      return Math.floor(i / cols) < lastRow ? count - 1 : i;
    }
    case 'Home':
      return 0;
    case 'End':
      return count - 1;
    case 'PageUp':
      return i - page >= 0 ? i - page : i % cols;
    case 'PageDown': {
      if (i + page < count) return i + page;
      // Same column on the last row if it exists there, else the last item.
      const lastRowStart = Math.floor((count - 1) / cols) * cols;
      const sameCol = lastRowStart + (i % cols);
      return sameCol < count ? Math.max(i, sameCol) : count - 1;
    }
  }
}

export interface SelectionState<K extends GridKey = GridKey> {
  selected: Set<K>;
  /** Index the next shift-click / shift-arrow range starts from. */
  anchor: number;
}

export interface ClickMods {
  /** Extend from the anchor (shift). */
  range?: boolean;
  /** Toggle one item / add a range to the selection (ctrl on Windows/Linux, cmd on macOS). */
  toggle?: boolean;
}

function rangeKeys<K extends GridKey>(a: number, b: number, keyAt: (i: number) => K): K[] {
  const lo = Math.min(a, b);
  const hi = Math.max(a, b);
  const out: K[] = [];
  for (let i = lo; i <= hi; i++) out.push(keyAt(i));
  return out;
}

/**
 * Selection after clicking item `index`:
 *  - plain click: only that item, anchor moves there;
 *  - toggle (ctrl/cmd): flip that item, anchor moves there;
 *  - range (shift): exactly anchor..index (anchor stays); with toggle too, the range is added.
 */
export function selectByClick<K extends GridKey>(
  state: SelectionState<K>,
  index: number,
  mods: ClickMods,
  keyAt: (i: number) => K,
): SelectionState<K> {
  const key = keyAt(index);
  if (mods.range) {
    const anchor = state.anchor >= 0 ? state.anchor : index;
    const base = mods.toggle ? new Set(state.selected) : new Set<K>();
    for (const k of rangeKeys(anchor, index, keyAt)) base.add(k);
    return { selected: base, anchor };
  }
  if (mods.toggle) {
    const next = new Set(state.selected);
    if (next.has(key)) next.delete(key);
    else next.add(key);
    return { selected: next, anchor: index };
  }
  return { selected: new Set([key]), anchor: index };
}

export interface KeyLike {
  key: string;
  shiftKey: boolean;
  ctrlKey: boolean;
  metaKey: boolean;
  altKey: boolean;
  preventDefault(): void;
}

export interface UseVirtualGridOptions<K extends GridKey> {
  count: Ref<number>;
  keyAt: (index: number) => K;
  layout?: Partial<GridLayoutOptions>;
  overscan?: number;
  /** 'mac' makes cmd the toggle modifier; otherwise ctrl. Detected from navigator when omitted. */
  platform?: 'mac' | 'other';
}

export const DEFAULT_GRID_LAYOUT: GridLayoutOptions = { minCellWidth: 140, gap: 8, aspect: 1, footer: 22, padding: 8 };

export function detectPlatform(): 'mac' | 'other' {
  const nav = (globalThis as { navigator?: { platform?: string; userAgent?: string } }).navigator;
  const s = `${nav?.platform ?? ''} ${nav?.userAgent ?? ''}`;
  return /Mac|iPhone|iPad/i.test(s) ? 'mac' : 'other';
}

export function useVirtualGrid<K extends GridKey>(opts: UseVirtualGridOptions<K>) {
  const layoutOptions = { ...DEFAULT_GRID_LAYOUT, ...(opts.layout ?? {}) };
  const overscan = opts.overscan ?? 2;
  const platform = opts.platform ?? detectPlatform();

  const scrollTop = ref(0);
  const viewportWidth = ref(0);
  const viewportHeight = ref(0);

  const layout = computed(() => gridLayout(viewportWidth.value, layoutOptions));
  const range = computed(() =>
    visibleRange({
      count: opts.count.value,
      columns: layout.value.columns,
      rowStride: layout.value.rowStride,
      scrollTop: scrollTop.value,
      viewportHeight: viewportHeight.value,
      overscan,
      padding: layoutOptions.padding,
      gap: layoutOptions.gap,
    }),
  );
  const rowsPerPage = computed(() => Math.max(1, Math.floor(viewportHeight.value / layout.value.rowStride)));

  const selected = shallowRef<Set<K>>(new Set());
  const anchor = ref(-1);
  const focusIndex = ref(-1);

  // Keep indices in range when the item count shrinks (filters).
  watch(opts.count, (n) => {
    if (focusIndex.value >= n) focusIndex.value = n - 1;
    if (anchor.value >= n) anchor.value = n - 1;
  });

  function setSelection(keys: Iterable<K>) {
    selected.value = new Set(keys);
  }

  function click(index: number, mods: { shiftKey?: boolean; ctrlKey?: boolean; metaKey?: boolean }) {
    const toggle = platform === 'mac' ? !!mods.metaKey : !!mods.ctrlKey;
    const next = selectByClick(
      { selected: selected.value, anchor: anchor.value },
      index,
      { range: !!mods.shiftKey, toggle },
      opts.keyAt,
    );
    selected.value = next.selected;
    anchor.value = next.anchor;
    focusIndex.value = index;
  }

  function selectAll() {
    const n = opts.count.value;
    const all = new Set<K>();
    for (let i = 0; i < n; i++) all.add(opts.keyAt(i));
    selected.value = all;
  }

  function clearSelection() {
    selected.value = new Set();
  }

  /** Reveal target for the component: the scrollTop to set so `index` is visible, or null. */
  function revealTop(index: number): number | null {
    return scrollTopToReveal({
      index,
      columns: layout.value.columns,
      rowStride: layout.value.rowStride,
      cellHeight: layout.value.cellHeight,
      scrollTop: scrollTop.value,
      viewportHeight: viewportHeight.value,
      padding: layoutOptions.padding,
    });
  }

  /**
   * Handle a key on the grid. Returns what happened so the component can scroll/focus/emit:
   * 'move' (focus moved), 'select' (selection changed without moving), 'open', or null (not ours).
   */
  function handleKey(e: KeyLike): 'move' | 'select' | 'open' | null {
    const n = opts.count.value;
    const mod = platform === 'mac' ? e.metaKey : e.ctrlKey;
    if (isNavKey(e.key)) {
      if (n === 0) return null;
      e.preventDefault();
      const from = focusIndex.value;
      const to = moveIndex(e.key, from, n, layout.value.columns, rowsPerPage.value);
      focusIndex.value = to;
      if (e.shiftKey) {
        const a = anchor.value >= 0 ? anchor.value : Math.max(0, from);
        anchor.value = a;
        selected.value = new Set(rangeKeys(a, to, opts.keyAt));
      } else if (!mod) {
        // Plain arrows move a single selection along (file-manager behaviour); Mod+arrows move focus only.
        selected.value = new Set([opts.keyAt(to)]);
        anchor.value = to;
      }
      return 'move';
    }
    if (n === 0) return null;
    if (e.key === ' ' || e.key === 'Spacebar') {
      e.preventDefault();
      const i = focusIndex.value < 0 ? 0 : focusIndex.value;
      focusIndex.value = i;
      const next = selectByClick(
        { selected: selected.value, anchor: anchor.value },
        i,
        { toggle: true, range: e.shiftKey },
        opts.keyAt,
      );
      selected.value = next.selected;
      anchor.value = next.anchor;
      return 'select';
    }
    if (e.key === 'Enter') {
      if (focusIndex.value < 0) return null;
      e.preventDefault();
      return 'open';
    }
    if (mod && !e.altKey && (e.key === 'a' || e.key === 'A')) {
      e.preventDefault();
      selectAll();
      return 'select';
    }
    if (e.key === 'Escape' && selected.value.size > 0) {
      e.preventDefault();
      clearSelection();
      return 'select';
    }
    return null;
  }

  return {
    scrollTop,
    viewportWidth,
    viewportHeight,
    layout,
    range,
    rowsPerPage,
    selected,
    anchor,
    focusIndex,
    click,
    handleKey,
    selectAll,
    clearSelection,
    setSelection,
    revealTop,
    platform,
  };
}
