import { defineStore } from 'pinia';
import { ref } from 'vue';
import type { Run } from '../../src-main/contract/runs';
import { api, errorMessage } from '../api';

export const useRunsStore = defineStore('runs', () => {
  const runs = ref<Run[]>([]);
  const loaded = ref(false);
  const loading = ref(false);
  const error = ref<string | null>(null);

  async function load(): Promise<void> {
    loading.value = true;
    try {
      runs.value = (await api.call('runs.list')).runs;
      error.value = null;
      loaded.value = true;
    } catch (e) {
      error.value = errorMessage(e);
    } finally {
      loading.value = false;
    }
  }

  api.on('runs.status', () => {
    if (loaded.value) void load();
  });
  api.on('runs.progress', (p) => {
    const r = runs.value.find((x) => x.id === p.runId);
    if (r) {
      r.step = p.step;
      r.totalSteps = p.totalSteps;
    }
  });

  return { runs, loaded, loading, error, load };
});
