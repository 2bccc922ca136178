// The list state the stores share (datasets, models, runs, chats): the list, whether it was loaded once,
// whether a load is in flight, and the last load error. A failed load keeps the last good list.
import { ref, type Ref } from 'vue';
import type { EventName } from '../../src-main/contract/index';
import { api, errorMessage, onReconnect } from '../api';

export interface LoadedList<T> {
  list: Ref<T[]>;
  loaded: Ref<boolean>;
  loading: Ref<boolean>;
  error: Ref<string | null>;
  /** Fetch the list; a failure goes to `error` (never thrown). */
  load: () => Promise<void>;
  /**
   * Reload when one of these events arrives (another window, the CLI or a job changed something), once loaded.
   * (Every loaded list also reloads after a lost connection comes back.)
   */
  reloadOn: (...events: EventName[]) => void;
}

export function useLoadedList<T>(fetch: () => Promise<T[]>): LoadedList<T> {
  const list = ref([]) as Ref<T[]>;
  const loaded = ref(false);
  const loading = ref(false);
  const error = ref<string | null>(null);

  async function load(): Promise<void> {
    loading.value = true;
    try {
      list.value = await fetch();
      error.value = null;
      loaded.value = true;
    } catch (e) {
      error.value = errorMessage(e);
    } finally {
      loading.value = false;
    }
  }

  function reloadOn(...events: EventName[]): void {
    for (const event of events)
      api.on(event, () => {
        if (loaded.value) void load();
      });
  }

  // events missed while the connection was down: a loaded list reloads when the backend is back
  onReconnect(() => {
    if (loaded.value) void load();
  });

  return { list, loaded, loading, error, load, reloadOn };
}
