import { defineStore } from 'pinia';
import { computed, ref } from 'vue';
import type { Model, ModelReport } from '../../src-main/contract/models';
import type { Params } from '../../src-main/contract/index';
import { api } from '../api';
import { useLoadedList } from './loadedList';

export type { Model, ModelReport };

/** Whether a model report is a whole CLIP / SigLIP (both towers), not a vision tower alone. */
export function isContrastiveReport(r: ModelReport | null | undefined): boolean {
  return !!r && (r.modelType === 'clip' || r.modelType === 'siglip');
}

export const useModelsStore = defineStore('models', () => {
  const {
    list: models,
    loaded,
    loading,
    error,
    load,
    reloadOn,
  } = useLoadedList(async () => (await api.call('models.list')).models);
  /** A long operation (demo install, compose, merge) in progress, in words. */
  const working = ref<string | null>(null);

  /** Models that can be trained and chatted with (full LLaVA folders that are still there). */
  const usable = computed(() => models.value.filter((m) => m.available && (m.report?.kind ?? 'llava') === 'llava'));
  /** Models to chat with: the vision-language ones and those that take audio (what a model takes: report.inputs). */
  const chattable = computed(() =>
    models.value.filter(
      (m) => m.available && ((m.report?.kind ?? 'llava') === 'llava' || !!m.report?.inputs?.includes('audio')),
    ),
  );

  /** CLIP / SigLIP dual encoders (image + text towers): image search, contrastive training. */
  const contrastive = computed(() => models.value.filter((m) => m.available && isContrastiveReport(m.report)));

  async function run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    working.value = what;
    try {
      return await fn();
    } finally {
      working.value = null;
      await load();
    }
  }

  const inspect = (path: string) => api.call('models.inspect', { path });
  const importFolder = (path: string, name?: string) =>
    run('Checking and adding the model…', () => api.call('models.import', { path, ...(name ? { name } : {}) }));
  const installDemo = () => run('Preparing the demo model…', () => api.call('models.installDemo', {}));
  const compose = (p: Params<'models.compose'>) => run('Composing the model…', () => api.call('models.compose', p));
  const rename = (id: number, name: string) => run('Renaming…', () => api.call('models.update', { id, name }));
  const remove = (id: number, deleteFiles = false) =>
    run('Removing…', () => api.call('models.delete', { id, deleteFiles }));
  const exportAdapter = (p: Params<'models.exportAdapter'>) =>
    run('Exporting the adapter…', () => api.call('models.exportAdapter', p));
  const merge = (p: Params<'models.merge'>) =>
    run('Merging the adapter into the weights…', () => api.call('models.merge', p));

  /** The GGUF export in progress: tensors written of the total (the worker reports about ten times a second). */
  const ggufProgress = ref<{ dir: string; done: number; total: number } | null>(null);
  api.on('models.exportProgress', (p) => {
    if (working.value) ggufProgress.value = p;
  });
  async function exportGguf(p: Params<'models.exportGguf'>) {
    ggufProgress.value = null;
    try {
      return await run('Writing the GGUF files…', () => api.call('models.exportGguf', p));
    } finally {
      ggufProgress.value = null;
    }
  }

  reloadOn('models.changed');

  return {
    models,
    usable,
    chattable,
    contrastive,
    loaded,
    loading,
    error,
    working,
    load,
    inspect,
    importFolder,
    installDemo,
    compose,
    rename,
    remove,
    exportAdapter,
    merge,
    exportGguf,
    ggufProgress,
  };
});
