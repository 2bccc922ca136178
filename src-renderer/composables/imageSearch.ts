// Search a dataset's images by meaning with a CLIP / SigLIP model (datasets.search): by a text ("red triangle on
// white") or by an item's image ("more like this"), with the base model or a contrastive adapter. The first query
// of a model embeds the images it has not seen (progress comes as datasets.searchProgress events); later ones read
// the backend's embedding cache. A newer query supersedes an older one's results.
import { computed, onBeforeUnmount, ref, watch, type Ref } from 'vue';
import { api } from '../api';
import type { Model } from '../stores/models';

export type SearchQuery = { kind: 'text'; text: string } | { kind: 'item'; itemId: number };

export interface SearchResults {
  query: SearchQuery;
  modelName: string;
  adapter: string | null;
  /** best first */
  items: Array<{ itemId: number; score: number }>;
  embedded: number;
  cached: number;
}

const MODEL_KEY = 'lenslab.search.model';
/** The whole dataset is ranked (the API's maximum); the grid shows the ranking within the current filters. */
const LIMIT = 10_000;

export function useImageSearch(datasetId: Ref<number>, models: Ref<readonly Model[]>) {
  const modelId = ref<number | ''>('');
  const adapterPath = ref('');
  const text = ref('');
  const running = ref(false);
  const progress = ref<{ done: number; total: number } | null>(null);
  const error = ref<unknown>(null);
  const results = ref<SearchResults | null>(null);
  let generation = 0;

  // the last model used, or the first one there is
  watch(
    models,
    (list) => {
      if (modelId.value !== '' && list.some((m) => m.id === modelId.value)) return;
      const saved = Number(globalThis.localStorage?.getItem(MODEL_KEY));
      modelId.value = list.find((m) => m.id === saved)?.id ?? list[0]?.id ?? '';
    },
    { immediate: true },
  );
  watch(modelId, (id) => {
    if (id !== '') globalThis.localStorage?.setItem(MODEL_KEY, String(id));
  });
  watch(datasetId, () => clear());

  const off = api.on('datasets.searchProgress', (p) => {
    if (running.value && p.datasetId === datasetId.value && p.modelId === modelId.value)
      progress.value = { done: p.done, total: p.total };
  });
  onBeforeUnmount(() => off?.());

  const model = computed(() => models.value.find((m) => m.id === modelId.value) ?? null);

  async function search(query: SearchQuery): Promise<void> {
    const m = model.value;
    if (!m) return;
    const gen = ++generation;
    running.value = true;
    progress.value = null;
    error.value = null;
    const adapter = adapterPath.value.trim() || null;
    try {
      const r = await api.call('datasets.search', {
        datasetId: datasetId.value,
        modelId: m.id,
        ...(query.kind === 'text' ? { text: query.text } : { itemId: query.itemId }),
        ...(adapter ? { adapter: { path: adapter } } : {}),
        limit: LIMIT,
      });
      if (gen !== generation) return;
      results.value = { query, modelName: m.name, adapter, items: r.items, embedded: r.embedded, cached: r.cached };
    } catch (e) {
      if (gen === generation) error.value = e;
    } finally {
      if (gen === generation) {
        running.value = false;
        progress.value = null;
      }
    }
  }

  function searchText(): Promise<void> {
    const t = text.value.trim();
    return t ? search({ kind: 'text', text: t }) : Promise.resolve();
  }

  function clear(): void {
    generation++;
    running.value = false;
    progress.value = null;
    results.value = null;
    error.value = null;
  }

  return { modelId, adapterPath, text, running, progress, error, results, model, search, searchText, clear };
}

/** "0.83" for a cosine similarity. */
export function formatScore(s: number): string {
  return s.toFixed(2);
}
