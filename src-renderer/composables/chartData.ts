// Data shaping for uPlot: several named series with their own x (steps) merged onto one x axis.
export interface ChartPoint {
  step: number;
  value: number | null;
}
export interface ChartSeries {
  name: string;
  /** CSS colour; default: the theme palette (--chart-1 … --chart-8). */
  color?: string;
  points: readonly ChartPoint[];
  /** Draw dashed (e.g. a base model, or eval vs train). */
  dashed?: boolean;
}

export type Aligned = [number[], ...(number | null)[][]];

/**
 * Merge series onto the sorted union of their steps; a series has null where it has no point.
 * Points may arrive unsorted or with repeated steps (the last value wins). With `logScale`,
 * values <= 0 become null since they cannot be drawn.
 */
export function alignSeries(series: readonly Pick<ChartSeries, 'points'>[], logScale = false): Aligned {
  const clean = (v: number | null): number | null =>
    v === null || !Number.isFinite(v) || (logScale && v <= 0) ? null : v;
  // Fast path: every series already sorted by step with identical steps (the usual live training case).
  if (series.length > 0 && sameSortedSteps(series)) {
    const xs = series[0].points.map((p) => p.step);
    return [xs, ...series.map((s) => s.points.map((p) => clean(p.value)))];
  }
  const maps = series.map((s) => {
    const m = new Map<number, number | null>();
    for (const p of s.points) m.set(p.step, p.value);
    return m;
  });
  const steps = new Set<number>();
  for (const m of maps) for (const k of m.keys()) steps.add(k);
  const xs = [...steps].sort((a, b) => a - b);
  return [xs, ...maps.map((m) => xs.map((x) => (m.has(x) ? clean(m.get(x) as number | null) : null)))];
}

function sameSortedSteps(series: readonly Pick<ChartSeries, 'points'>[]): boolean {
  const first = series[0].points;
  for (let i = 1; i < first.length; i++) if (!(first[i].step > first[i - 1].step)) return false;
  for (let s = 1; s < series.length; s++) {
    const pts = series[s].points;
    if (pts.length !== first.length) return false;
    for (let i = 0; i < pts.length; i++) if (pts[i].step !== first[i].step) return false;
  }
  return true;
}

/** A sentence for screen readers: what the chart shows and the latest values. */
export function chartSummary(
  title: string,
  series: readonly ChartSeries[],
  format: (v: number) => string = String,
): string {
  if (series.every((s) => s.points.length === 0)) return `${title}: no data yet`;
  const parts = series.map((s) => {
    let last: ChartPoint | undefined;
    for (let i = s.points.length - 1; i >= 0; i--) {
      if (s.points[i].value !== null) {
        last = s.points[i];
        break;
      }
    }
    return last
      ? `${s.name} ${format(last.value as number)} at step ${last.step} (${s.points.length} points)`
      : `${s.name} no data`;
  });
  return `${title}: ${parts.join('; ')}`;
}

/** A signature that changes when series are added/removed/renamed/recoloured (needs a chart rebuild). */
export function structureKey(series: readonly ChartSeries[]): string {
  return series.map((s) => `${s.name}|${s.color ?? ''}|${s.dashed ? 1 : 0}`).join('\n');
}

/** Default palette, readable on light and dark backgrounds; overridable with --chart-N CSS variables. */
export const DEFAULT_PALETTE = ['#3b82f6', '#f59e0b', '#10b981', '#ef4444', '#8b5cf6', '#14b8a6', '#ec4899', '#84cc16'];

/**
 * TensorBoard-style smoothing: exponential moving average with debiasing, so the first points are
 * not pulled towards zero. weight 0 returns the points unchanged; nulls stay null and are skipped.
 */
export function emaSmooth(points: readonly ChartPoint[], weight: number): ChartPoint[] {
  if (!(weight > 0)) return points.slice();
  const w = Math.min(weight, 0.999);
  let last = 0;
  let n = 0;
  return points.map((p) => {
    if (p.value === null || !Number.isFinite(p.value)) return { step: p.step, value: null };
    last = last * w + (1 - w) * p.value;
    n++;
    return { step: p.step, value: last / (1 - Math.pow(w, n)) };
  });
}

/**
 * An axis range for data whose min equals max (a single point, or a flat line), which uPlot would otherwise
 * stretch oddly (e.g. 0..100 around a lone 0, or 0..4000 around a lone step 2000): the value ± 10% (at least
 * ± `minPad`), never crossing zero for non-negative data. "Equal" is relative (within 1e-6 of the value): the
 * learning rate of a cosine schedule's first steps differs in the 12th digit, and uPlot's own range around
 * such a sliver drew neither ticks nor the line. Null when min and max differ (keep the default).
 */
export function flatRange(min: number | null, max: number | null, minPad = 1): [number, number] | null {
  if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) return null;
  if (Math.abs(max - min) > 1e-6 * Math.max(Math.abs(min), Math.abs(max))) return null;
  const mid = min === max ? min : (min + max) / 2;
  const pad = Math.max(Math.abs(mid) * 0.1, minPad);
  const lo = mid - pad;
  return [mid >= 0 && lo < 0 ? 0 : lo, mid + pad];
}

/**
 * A log y range that hugs the data (its min / 1.15 to its max x 1.15, not whole decades) and that uPlot can split:
 * the bottom is floored to one significant digit (k x 10^e). uPlot's log splits step up from the bottom by 10^e,
 * rounding each step to that power's decimals; from a bottom such as 0.0998 the first step lands on 0.11, past the
 * decade, whose increment it has no decimals for, so every later split rounds to 0 and the list grows until the page
 * throws "Invalid array length" (a training loss whose minimum was 0.1148 did this).
 */
export function logRange(min: number | null, max: number | null): [number, number] {
  if (min === null || max === null || !(min > 0) || !(max > 0)) return [0.1, 10];
  const lo = min / 1.15;
  const e = Math.floor(Math.log10(lo));
  const k = Math.min(9, Math.max(1, Math.floor((lo / Math.pow(10, e)) * (1 + 1e-12))));
  return [Number(`${k}e${e}`), max * 1.15];
}

/**
 * Which ticks of a log axis get a label: the powers of ten (0.01, 0.1, 1), or 1/2/5 × a power of ten, or every
 * whole mantissa, whichever first gives two labels. uPlot also labelled the axis's bottom, where the range hugs the
 * data, with an odd number such as 0.001164. Unlabelled ticks are null (they keep their grid line).
 */
export function logTickFilter(splits: readonly (number | null)[]): (number | null)[] {
  const mantissa = (v: number) => v / Math.pow(10, Math.floor(Math.log10(v) + 1e-9));
  const near = (a: number, b: number) => Math.abs(a - b) < 1e-6 * b;
  for (const keep of [[1], [1, 2, 5], [1, 2, 3, 4, 5, 6, 7, 8, 9]]) {
    const out = splits.map((v) => (v !== null && v > 0 && keep.some((k) => near(mantissa(v), k)) ? v : null));
    if (out.filter((v) => v !== null).length >= 2) return out;
  }
  return [...splits];
}

/**
 * Width in CSS pixels of a y axis whose tick labels measure `labelWidths` (tick marks, the gap and a margin
 * around the widest label; 40 at least): a fixed width cut long labels such as 0.001995 on the left.
 */
export function yAxisSize(labelWidths: readonly number[], tickSize = 4, gap = 5): number {
  const widest = labelWidths.reduce((m, w) => Math.max(m, w), 0);
  return Math.max(40, Math.ceil(widest) + tickSize + gap + 8);
}

/**
 * Axis tick labels that tell the ticks apart: `format` first; when it gives two ticks the same label
 * (e.g. 2.0e-3 for 0.002 and 0.00199), more significant digits until they differ.
 */
export function tickLabels(splits: readonly (number | null)[], format: (v: number) => string): string[] {
  const labels = splits.map((v) => (v === null ? '' : format(v)));
  const distinct = (ls: string[]) => new Set(ls.filter((l) => l !== '')).size === ls.filter((l) => l !== '').length;
  if (distinct(labels)) return labels;
  for (let digits = 3; digits <= 8; digits++) {
    const more = splits.map((v) => {
      if (v === null) return '';
      if (v === 0) return '0';
      const a = Math.abs(v);
      return a < 1e-3 || a >= 1e6
        ? v.toExponential(digits - 1).replace('e+', 'e')
        : String(Number(v.toPrecision(digits)));
    });
    if (distinct(more)) return more;
  }
  return labels;
}

const METRIC_LABELS: Record<string, string> = {
  loss: 'Train loss',
  eval_loss: 'Eval loss',
  exact_match: 'Exact match',
  vqa_accuracy: 'VQA accuracy',
  majority_baseline: 'Always the most common answer',
  baseline_bleu4: 'BLEU-4, always the most common caption',
  baseline_cider: 'CIDEr, always the most common caption',
  accuracy: 'Accuracy',
  bleu4: 'BLEU-4',
  cider: 'CIDEr',
  lr: 'Learning rate',
  grad_norm: 'Gradient norm',
  samples_per_sec: 'Samples/s',
  tokens_per_sec: 'Tokens/s',
};

/** A metric's name for people: eval_exact_match → "Exact match", eval_cider → "CIDEr". */
export function metricLabel(name: string): string {
  if (METRIC_LABELS[name]) return METRIC_LABELS[name];
  const bare = name.replace(/^eval_/, '');
  if (METRIC_LABELS[bare]) return METRIC_LABELS[bare];
  const t = bare.replace(/_/g, ' ');
  return t.charAt(0).toUpperCase() + t.slice(1);
}

/** Metrics that are not fractions in [0, 1] get a chart (an axis) of their own: CIDEr runs to 10. */
export function ownAxisMetric(name: string): boolean {
  return /^(eval_)?(baseline_)?cider$/.test(name);
}

/** Trivial baselines (always the most common answer / caption): drawn dashed beside the model's own metric. */
export function baselineMetric(name: string): boolean {
  return /^(eval_)?(majority_baseline|baseline_[a-z0-9]+)$/.test(name);
}
