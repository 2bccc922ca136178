// Formatting helpers shared by components (durations, sizes, numbers). Pure functions.

/** 0 -> '0s', 75 -> '1m 15s', 3725 -> '1h 02m', 90061 -> '1d 1h'. Negative or non-finite -> '—'. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '—';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${String(m % 60).padStart(2, '0')}m`;
  const d = Math.floor(h / 24);
  return `${d}d ${h % 24}h`;
}

/** Remaining time from progress: elapsed seconds and done/total units; null while unknown. */
export function estimateEta(elapsedSeconds: number, done: number, total: number): number | null {
  if (!(total > 0) || !(done > 0) || !(elapsedSeconds > 0) || done > total) return null;
  return (elapsedSeconds / done) * (total - done);
}

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB'];
/** Binary sizes with decimal-looking units, as desktop OSes show them: 1536 -> '1.5 KB'. */
export function formatBytes(bytes: number, digits = 1): string {
  if (!Number.isFinite(bytes)) return '—';
  const neg = bytes < 0;
  let v = Math.abs(bytes);
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  const text = u === 0 ? String(Math.round(v)) : v.toFixed(v >= 100 ? 0 : digits);
  return `${neg ? '-' : ''}${text} ${UNITS[u]}`;
}

/** Compact metric values: 0.000123 -> '1.23e-4', 12345.6 -> '12,346', 0.5312 -> '0.5312'. */
export function formatMetric(v: number | null | undefined): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  if (!Number.isFinite(v)) return v > 0 ? '∞' : '-∞';
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (a < 1e-3 || a >= 1e6) return v.toExponential(2).replace('e+', 'e');
  if (a >= 1000) return Math.round(v).toLocaleString('en-US');
  return String(Number(v.toPrecision(4)));
}

/** 0.4567 -> '45.7%'. */
export function formatPercent(fraction: number, digits = 1): string {
  if (!Number.isFinite(fraction)) return '—';
  return `${(fraction * 100).toFixed(digits)}%`;
}
