import { defineStore } from 'pinia';
import { ref } from 'vue';
import type { Dataset } from '../../src-main/contract/datasets';
import { api, ApiError, errorMessage } from '../api';

export const useDatasetsStore = defineStore('datasets', () => {
  const datasets = ref<Dataset[]>([]);
  const loaded = ref(false);
  const loading = ref(false);
  const error = ref<string | null>(null);

  async function load(): Promise<void> {
    loading.value = true;
    try {
      datasets.value = (await api.call('datasets.list')).datasets;
      error.value = null;
      loaded.value = true;
    } catch (e) {
      error.value = errorMessage(e);
    } finally {
      loading.value = false;
    }
  }

  /** Create a dataset; throws ApiError (with .field) so a form can show it next to the input. */
  async function create(name: string, description?: string): Promise<Dataset> {
    const d = await api.call('datasets.create', { name, ...(description ? { description } : {}) });
    await load();
    return d;
  }

  async function rename(id: number, name: string): Promise<Dataset> {
    const d = await api.call('datasets.update', { id, name });
    await load();
    return d;
  }

  async function remove(id: number): Promise<void> {
    await api.call('datasets.delete', { id });
    await load();
  }

  // Another window, the CLI or an import changed something: refresh.
  api.on('datasets.changed', () => {
    if (loaded.value) void load();
  });

  return { datasets, loaded, loading, error, load, create, rename, remove };
});

export { ApiError };
