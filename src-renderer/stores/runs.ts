// Training runs: the list, live progress (runs.progress / runs.eval / runs.status events), metric series for
// charts, checkpoints, and the adapters runs produced (for chat, export and merge).
import { defineStore } from 'pinia';
import { reactive, ref, shallowRef, triggerRef } from 'vue';
import type { Run, MetricPoint } from '../../src-main/contract/runs';
import type { Checkpoint } from '../../src-main/contract/runs';
import type { Params, Result } from '../../src-main/contract/index';
import type { ChartPoint } from '../composables/chartData';
import { api, onReconnect } from '../api';
import { useLoadedList } from './loadedList';

export type { Run, Checkpoint, MetricPoint };

export interface LiveProgress {
  step: number;
  totalSteps: number | null;
  etaSec: number | null;
  metrics: Record<string, number | null>;
  /** Wall-clock ms when it arrived. */
  at: number;
}

/** An adapter a run produced: its final adapter or one checkpoint's. */
export interface AdapterChoice {
  runId: number;
  runName: string;
  step: number | null;
  /** Absolute folder on the backend's machine. */
  dir: string;
  label: string;
  /** The run's base model (null when it was removed). */
  modelId: number | null;
}

export const ACTIVE_STATUSES = new Set(['queued', 'running']);

export const useRunsStore = defineStore('runs', () => {
  const { list: runs, loaded, loading, error, load } = useLoadedList(async () => (await api.call('runs.list')).runs);
  const live = reactive(new Map<number, LiveProgress>());
  /** runId → metric name → points (steps ascending). shallow: charts get a version bump instead of deep proxies. */
  const series = shallowRef(new Map<number, Map<string, ChartPoint[]>>());
  const seriesVersion = ref(0);
  const logs = reactive(new Map<number, { level: string; message: string }[]>());
  const adapters = ref<AdapterChoice[]>([]);

  function upsert(run: Run) {
    const i = runs.value.findIndex((r) => r.id === run.id);
    if (i >= 0) runs.value[i] = run;
    else runs.value.unshift(run);
  }

  async function refresh(id: number): Promise<Run> {
    const r = await api.call('runs.get', { id });
    upsert(r);
    return r;
  }

  function pushPoint(runId: number, name: string, step: number, value: number | null) {
    const byRun = series.value.get(runId);
    if (!byRun) return; // not loaded: loadMetrics will bring it
    let pts = byRun.get(name);
    if (!pts) byRun.set(name, (pts = []));
    const last = pts[pts.length - 1];
    if (last && last.step === step) last.value = value;
    else if (!last || last.step < step) pts.push({ step, value });
    else {
      const at = pts.findIndex((p) => p.step >= step);
      if (pts[at].step === step) pts[at].value = value;
      else pts.splice(at, 0, { step, value });
    }
  }

  /** Load (or reload) a run's metric series. */
  async function loadMetrics(runId: number): Promise<Map<string, ChartPoint[]>> {
    const r = await api.call('runs.metrics', { id: runId });
    const byName = new Map<string, ChartPoint[]>();
    for (const [name, col] of Object.entries(r.series))
      byName.set(
        name,
        col.steps.map((step, i) => ({ step, value: col.values[i] })),
      );
    series.value.set(runId, byName);
    seriesVersion.value++;
    triggerRef(series);
    return byName;
  }
  function metricsOf(runId: number): Map<string, ChartPoint[]> | undefined {
    return series.value.get(runId);
  }

  const checkpoints = (id: number) => api.call('runs.checkpoints', { id });
  const estimate = (p: Params<'runs.estimate'>) => api.call('runs.estimate', p);

  async function start(p: Params<'runs.start'>): Promise<Result<'runs.start'>> {
    const r = await api.call('runs.start', p);
    upsert(r.run);
    series.value.set(r.run.id, new Map());
    triggerRef(series);
    return r;
  }
  async function control(
    action: 'runs.pause' | 'runs.resume' | 'runs.cancel',
    id: number,
    extra: { device?: 'auto' | 'cpu' | 'webgpu' | 'cuda' } = {},
  ): Promise<Run> {
    const r = await api.call(action, { id, ...extra });
    upsert(r);
    return r;
  }
  const pause = (id: number) => control('runs.pause', id);
  /** Continue a run; `device` moves it (e.g. to the CPU after its GPU was lost). */
  const resume = (id: number, device?: 'auto' | 'cpu' | 'webgpu' | 'cuda') =>
    control('runs.resume', id, device ? { device } : {});
  const cancel = (id: number) => control('runs.cancel', id);

  /** Adapters of finished or stopped runs (final first, then checkpoints newest first). */
  async function loadAdapters(): Promise<AdapterChoice[]> {
    const list = (await api.call('runs.list')).runs.filter((r) => !ACTIVE_STATUSES.has(r.status)).slice(0, 30);
    const out: AdapterChoice[] = [];
    const all = await Promise.all(list.map((r) => checkpoints(r.id).catch(() => null)));
    list.forEach((r, i) => {
      const c = all[i];
      if (!c) return;
      if (c.finalDir)
        out.push({
          runId: r.id,
          runName: r.name,
          step: null,
          dir: c.finalDir,
          label: `${r.name} (final)`,
          modelId: r.modelId,
        });
      for (const cp of [...c.checkpoints].reverse()) {
        out.push({
          runId: r.id,
          runName: r.name,
          step: cp.step,
          dir: `${cp.path}/adapter`,
          label: `${r.name} (step ${cp.step})`,
          modelId: r.modelId,
        });
      }
    });
    adapters.value = out;
    return out;
  }

  // progress missed while the connection was down: reload the series already shown (the list reloads itself)
  onReconnect(() => {
    for (const runId of series.value.keys()) void loadMetrics(runId).catch(() => {});
  });

  api.on('runs.status', (p) => {
    const r = runs.value.find((x) => x.id === p.runId);
    if (r) {
      r.status = p.status;
      if (p.error !== undefined) r.error = p.error;
    }
    if (loaded.value || r) void refresh(p.runId).catch(() => {});
  });
  api.on('runs.progress', (p) => {
    const r = runs.value.find((x) => x.id === p.runId);
    if (r) {
      r.step = p.step;
      r.totalSteps = p.totalSteps;
      if (r.status === 'queued') r.status = 'running';
    }
    live.set(p.runId, {
      step: p.step,
      totalSteps: p.totalSteps,
      etaSec: p.metrics.eta_sec ?? null,
      metrics: p.metrics,
      at: Date.now(),
    });
    for (const pt of p.points)
      for (const [name, v] of Object.entries(pt.metrics)) if (name !== 'eta_sec') pushPoint(p.runId, name, pt.step, v);
    seriesVersion.value++;
  });
  api.on('runs.eval', (p) => {
    for (const [name, v] of Object.entries(p.metrics))
      pushPoint(p.runId, name.startsWith('eval_') ? name : `eval_${name}`, p.step, v);
    seriesVersion.value++;
  });
  api.on('runs.log', (p) => {
    const list = logs.get(p.runId) ?? [];
    list.push({ level: p.level, message: p.message });
    if (list.length > 200) list.splice(0, list.length - 200);
    logs.set(p.runId, list);
  });

  return {
    runs,
    loaded,
    loading,
    error,
    live,
    series,
    seriesVersion,
    logs,
    adapters,
    load,
    refresh,
    loadMetrics,
    metricsOf,
    checkpoints,
    estimate,
    start,
    pause,
    resume,
    cancel,
    loadAdapters,
  };
});
