// The open dataset's contents: its items (filtered), the selection, tags, the latest lint and the undo/redo
// history kept by the backend (so it survives restarts). One dataset is open at a time.
import { defineStore } from 'pinia';
import { computed, ref } from 'vue';
import type { z } from 'zod';
import type {
  AnnotationInput,
  HistoryState as HistorySchema,
  Item,
  LintFinding as LintFindingSchema,
} from '../../src-main/contract/datasets-io';
import type { Result } from '../../src-main/contract/index';
import { api, errorMessage } from '../api';

export type HistoryState = z.infer<typeof HistorySchema>;
export type LintFinding = z.infer<typeof LintFindingSchema>;
export type SplitName = 'train' | 'val' | 'test';
export type { Item, AnnotationInput };

export interface ItemFilters {
  split?: SplitName | 'none';
  tag?: string;
  lintRule?: LintFinding['rule'];
  /** true: only unlabeled, false: only labeled. */
  unlabeled?: boolean;
  search?: string;
}

const PAGE = 5000;

export const useItemsStore = defineStore('items', () => {
  const datasetId = ref<number | null>(null);
  const filters = ref<ItemFilters>({});
  const items = ref<Item[]>([]);
  const total = ref(0);
  const loaded = ref(false);
  const loading = ref(false);
  const error = ref<string | null>(null);
  const selection = ref<number[]>([]);
  const tags = ref<{ name: string; count: number }[]>([]);
  const history = ref<HistoryState | null>(null);
  const findings = ref<LintFinding[]>([]);
  const lintCounts = ref<Record<string, number> | null>(null);
  const linting = ref(false);
  /** Items per split over the whole dataset (filters ignored). */
  const splitCounts = ref<Record<SplitName | 'none', number> | null>(null);
  const datasetTotal = ref(0);
  const busy = ref(false);
  let generation = 0;

  const activeFilterCount = computed(
    () => Object.values(filters.value).filter((v) => v !== undefined && v !== '').length,
  );

  function params() {
    const f = filters.value;
    return {
      ...(f.split ? { split: f.split } : {}),
      ...(f.tag ? { tag: f.tag } : {}),
      ...(f.lintRule ? { lintRule: f.lintRule } : {}),
      ...(f.unlabeled !== undefined ? { unlabeled: f.unlabeled } : {}),
      ...(f.search?.trim() ? { search: f.search.trim() } : {}),
    };
  }

  /** Open a dataset (filters are kept when it is the one already open). */
  async function open(id: number, withFilters?: ItemFilters): Promise<void> {
    if (datasetId.value !== id) {
      datasetId.value = id;
      items.value = [];
      total.value = 0;
      loaded.value = false;
      selection.value = [];
      findings.value = [];
      lintCounts.value = null;
      history.value = null;
      tags.value = [];
      splitCounts.value = null;
      datasetTotal.value = 0;
      filters.value = withFilters ?? {};
    } else if (withFilters) filters.value = withFilters;
    await Promise.all([reload(), loadSide()]);
  }

  async function reload(): Promise<void> {
    const id = datasetId.value;
    if (id === null) return;
    const gen = ++generation;
    loading.value = true;
    try {
      const out: Item[] = [];
      let count = 0;
      for (let offset = 0; ; offset += PAGE) {
        const page = await api.call('items.list', { datasetId: id, offset, limit: PAGE, ...params() });
        if (gen !== generation) return;
        out.push(...page.items);
        count = page.total;
        if (page.items.length < PAGE || out.length >= count) break;
      }
      items.value = out;
      total.value = count;
      const present = new Set(out.map((i) => i.id));
      selection.value = selection.value.filter((k) => present.has(k));
      error.value = null;
      loaded.value = true;
    } catch (e) {
      if (gen === generation) error.value = errorMessage(e);
    } finally {
      if (gen === generation) loading.value = false;
    }
  }

  /** Tags, history and the stored lint findings (cheap; refreshed after every change). */
  async function loadSide(): Promise<void> {
    const id = datasetId.value;
    if (id === null) return;
    try {
      const count = (split?: SplitName | 'none') =>
        api.call('items.list', { datasetId: id, limit: 1, ...(split ? { split } : {}) }).then((r) => r.total);
      const [t, h, l, all, train, val, test, none] = await Promise.all([
        api.call('datasets.tags', { datasetId: id }),
        api.call('datasets.history', { datasetId: id }),
        api.call('datasets.lintResults', { datasetId: id }),
        count(),
        count('train'),
        count('val'),
        count('test'),
        count('none'),
      ]);
      if (datasetId.value !== id) return;
      tags.value = t.tags;
      history.value = h;
      findings.value = l.findings;
      datasetTotal.value = all;
      splitCounts.value = { train, val, test, none };
    } catch (e) {
      error.value = errorMessage(e);
    }
  }

  async function setFilters(next: ItemFilters): Promise<void> {
    filters.value = next;
    await reload();
  }

  /** Run a change and refresh (the backend also sends items.changed). Throws ApiError. */
  async function mutate<T extends { history?: HistoryState }>(fn: (id: number) => Promise<T>): Promise<T> {
    const id = datasetId.value;
    if (id === null) throw new Error('no dataset is open');
    busy.value = true;
    try {
      const r = await fn(id);
      if (r.history) history.value = r.history;
      await Promise.all([reload(), loadSide()]);
      return r;
    } finally {
      busy.value = false;
    }
  }

  const tagSelection = (ids: number[], add: string[]) =>
    mutate((datasetId) => api.call('items.tag', { datasetId, itemIds: ids, tags: add }));
  const untagSelection = (ids: number[], remove: string[]) =>
    mutate((datasetId) => api.call('items.untag', { datasetId, itemIds: ids, tags: remove }));
  const setSplit = (ids: number[], split: SplitName | null) =>
    mutate((datasetId) => api.call('items.setSplit', { datasetId, itemIds: ids, split }));
  const deleteItems = (ids: number[]) => mutate((datasetId) => api.call('items.delete', { datasetId, itemIds: ids }));
  const replaceText = (
    ids: number[],
    find: string,
    replace: string,
    opts: { regex?: boolean; caseSensitive?: boolean; scope?: 'all' | 'answers' } = {},
  ) => mutate((datasetId) => api.call('items.replaceText', { datasetId, itemIds: ids, find, replace, ...opts }));
  const saveAnnotations = (itemId: number, annotations: AnnotationInput[]) =>
    mutate((datasetId) => api.call('items.setAnnotations', { datasetId, itemId, annotations }));
  const autoSplit = (p: { seed: number; train: number; val: number; test: number; stratifyBy?: 'tag' | null }) =>
    mutate((datasetId) => api.call('datasets.split', { datasetId, ...p }));
  const undo = () => mutate((datasetId) => api.call('datasets.undo', { datasetId }));
  const redo = () => mutate((datasetId) => api.call('datasets.redo', { datasetId }));

  async function lint(
    opts: { modelId?: number; deep?: boolean; imageModelId?: number; nearDuplicateImageThreshold?: number } = {},
  ): Promise<Result<'datasets.lint'>> {
    const id = datasetId.value;
    if (id === null) throw new Error('no dataset is open');
    linting.value = true;
    try {
      const r = await api.call('datasets.lint', { datasetId: id, ...opts });
      if (datasetId.value === id) {
        findings.value = r.findings;
        lintCounts.value = r.counts;
      }
      return r;
    } finally {
      linting.value = false;
    }
  }

  /** Ids of the items in the current (filtered) order. */
  const ids = computed(() => items.value.map((i) => i.id));

  /** The first unlabeled item after `afterId` in dataset order (wrapping around), or null when all are labeled. */
  async function nextUnlabeled(afterId: number | null): Promise<number | null> {
    const id = datasetId.value;
    if (id === null) return null;
    const r = await api.call('items.list', { datasetId: id, unlabeled: true, limit: 10_000 });
    if (r.items.length === 0) return null;
    const after = afterId === null ? null : (items.value.find((i) => i.id === afterId)?.position ?? null);
    const later = after === null ? undefined : r.items.find((i) => i.position > after && i.id !== afterId);
    return (later ?? r.items.find((i) => i.id !== afterId) ?? null)?.id ?? null;
  }

  // Changes from anywhere (an import, another window, the CLI): refresh when it is the open dataset.
  let pending: ReturnType<typeof setTimeout> | null = null;
  api.on('items.changed', (p) => {
    if (p.datasetId !== datasetId.value || busy.value) return;
    if (pending) clearTimeout(pending);
    pending = setTimeout(() => {
      pending = null;
      void reload();
      void loadSide();
    }, 150);
  });

  return {
    datasetId,
    filters,
    items,
    ids,
    total,
    loaded,
    loading,
    error,
    selection,
    tags,
    history,
    findings,
    lintCounts,
    linting,
    splitCounts,
    datasetTotal,
    busy,
    activeFilterCount,
    open,
    reload,
    loadSide,
    setFilters,
    tagSelection,
    untagSelection,
    setSplit,
    deleteItems,
    replaceText,
    saveAnnotations,
    autoSplit,
    undo,
    redo,
    lint,
    nextUnlabeled,
  };
});
