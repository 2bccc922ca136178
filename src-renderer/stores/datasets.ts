import { defineStore } from 'pinia';
import { ref } from 'vue';
import type { Dataset } from '../../src-main/contract/datasets';
import type { ImportReport } from '../../src-main/contract/datasets-io';
import { api, ApiError, discardUpload, uploadFiles } from '../api';
import { uploadLabel } from '../composables/uploadLabel';
import type { DropResult } from '../composables/useDropImport';
import { useLoadedList } from './loadedList';

export type { ImportReport };

/** Where an import is: uploading the dropped files (serve mode), then storing images. */
export interface ImportProgress {
  phase: 'uploading' | 'importing';
  done: number;
  total: number;
  /** Index of the source being imported when several paths were dropped. */
  source: number;
  sources: number;
}

const IMAGE_EXT = /\.(png|jpe?g|webp|gif|bmp|tiff?)$/i;

export const useDatasetsStore = defineStore('datasets', () => {
  const {
    list: datasets,
    loaded,
    loading,
    error,
    load,
    reloadOn,
  } = useLoadedList(async () => (await api.call('datasets.list')).datasets);
  const importing = ref<ImportProgress | null>(null);

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

  async function update(id: number, patch: { name?: string; description?: string }): Promise<Dataset> {
    const d = await api.call('datasets.update', { id, ...patch });
    await load();
    return d;
  }

  async function remove(id: number): Promise<void> {
    await api.call('datasets.delete', { id });
    await load();
  }

  /**
   * Import what was dropped or picked: browser files are uploaded to a staging folder first, Electron paths are
   * read in place. With `datasetId` everything is appended to that dataset, else each source becomes (or
   * appends to) the dataset named after it. Loose images dropped onto a dataset are added as items.
   * Throws ApiError; returns one report per imported source.
   */
  async function importDrop(drop: DropResult, target: { datasetId?: number } = {}): Promise<ImportReport[]> {
    if (importing.value) throw new ApiError('conflict', 'an import is already running: wait for it to finish');
    const reports: ImportReport[] = [];
    try {
      if (drop.kind === 'files') {
        importing.value = { phase: 'uploading', done: 0, total: drop.files.length, source: 0, sources: 1 };
        const up = await uploadFiles(drop.files, (p) => {
          importing.value = { phase: 'uploading', done: p.files, total: p.totalFiles, source: 0, sources: 1 };
        });
        try {
          importing.value = { phase: 'importing', done: 0, total: 0, source: 0, sources: 1 };
          // several loose files land in the upload's batch folder: name the dataset and the report after the files,
          // never after the batch id
          const label = uploadLabel(drop.files.map((f) => f.relativePath));
          const several = new Set(drop.files.map((f) => f.relativePath.replace(/^\/+/, '').split('/')[0])).size > 1;
          const r = await api.call('datasets.import', {
            path: up.importPath,
            ...(target.datasetId ? { datasetId: target.datasetId } : several ? { dataset: label.name } : {}),
          });
          reports.push({ ...r, source: label.text });
        } finally {
          void discardUpload(up.batch);
        }
      } else {
        const images = target.datasetId ? drop.paths.filter((p) => IMAGE_EXT.test(p)) : [];
        const sources = drop.paths.filter((p) => !images.includes(p));
        for (let i = 0; i < sources.length; i++) {
          importing.value = { phase: 'importing', done: 0, total: 0, source: i, sources: sources.length };
          reports.push(
            await api.call('datasets.import', {
              path: sources[i],
              ...(target.datasetId ? { datasetId: target.datasetId } : {}),
            }),
          );
        }
        if (images.length > 0 && target.datasetId) {
          importing.value = { phase: 'importing', done: 0, total: images.length, source: 0, sources: 1 };
          await api.call('items.add', {
            datasetId: target.datasetId,
            items: images.map((imagePath) => ({ imagePath })),
          });
        }
      }
    } finally {
      importing.value = null;
      await load();
    }
    return reports;
  }

  // Another window, the CLI or an import changed something: refresh.
  reloadOn('datasets.changed', 'items.changed');
  api.on('datasets.importProgress', (p) => {
    if (importing.value?.phase === 'importing') importing.value = { ...importing.value, done: p.done, total: p.total };
  });

  return { datasets, loaded, loading, error, importing, load, create, rename, update, remove, importDrop };
});

export { ApiError };
