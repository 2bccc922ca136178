import { defineStore } from 'pinia';
import { computed, ref } from 'vue';
import type { CatalogEntry, Pull } from '../../src-main/contract/hub';
import type { Result } from '../../src-main/contract/index';
import { api, onReconnect } from '../api';

export type { CatalogEntry, Pull };

/** Hub downloads: the catalog and the pulls of this backend session, kept current by hub.progress events. */
export const useHubStore = defineStore('hub', () => {
  const catalog = ref<Result<'hub.catalog'> | null>(null);
  const pulls = ref<Pull[]>([]);
  const error = ref<unknown>(null);

  function upsert(p: Pull) {
    const i = pulls.value.findIndex((x) => x.id === p.id);
    if (i >= 0) pulls.value[i] = p;
    else pulls.value.unshift(p);
  }

  async function load() {
    try {
      const [c, p] = await Promise.all([api.call('hub.catalog'), api.call('hub.pulls')]);
      catalog.value = c;
      pulls.value = p.pulls;
      error.value = null;
    } catch (e) {
      error.value = e;
    }
  }

  async function pull(repo: string, name?: string): Promise<Pull> {
    const r = await api.call('hub.pull', { repo, ...(name ? { name } : {}) });
    upsert(r.pull);
    return r.pull;
  }
  const cancel = (id: string) => api.call('hub.cancel', { id });

  /** The newest pull of a repo. */
  const latest = computed(() => {
    const m = new Map<string, Pull>();
    for (const p of pulls.value) if (!m.has(p.repo)) m.set(p.repo, p);
    return m;
  });

  api.on('hub.progress', (p) => {
    upsert(p);
    // a finished pull changes what is cached
    if (p.status === 'done')
      void api.call('hub.catalog').then(
        (c) => (catalog.value = c),
        () => {},
      );
  });
  onReconnect(() => void load());

  return { catalog, pulls, error, latest, load, pull, cancel };
});
