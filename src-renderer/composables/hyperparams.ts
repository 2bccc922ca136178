// Schema-driven hyperparameter fields: defaults, parsing of what the user typed, inline validation.
// The Train view passes a schema (FieldSpec[]) to HyperparamForm; this file holds the pure logic.

export type HyperValue = number | string | boolean;
export type HyperValues = Record<string, HyperValue>;

interface BaseSpec {
  key: string;
  label: string;
  help?: string;
  /** Shown under "Advanced" (collapsed). */
  advanced?: boolean;
  /** Hide the field unless this holds (e.g. LoRA rank only when a LoRA method is chosen). */
  visibleWhen?: (values: HyperValues) => boolean;
  /** Extra cross-field check; return a message in words, or null. */
  check?: (value: HyperValue, values: HyperValues) => string | null;
}
export interface NumberSpec extends BaseSpec {
  type: 'number';
  default: number;
  min?: number;
  max?: number;
  /** min is exclusive (e.g. learning rate > 0). */
  exclusiveMin?: boolean;
  /** max is exclusive (e.g. dropout < 1). */
  exclusiveMax?: boolean;
  integer?: boolean;
  step?: number;
  unit?: string;
}
export interface SelectSpec extends BaseSpec {
  type: 'select';
  default: string;
  options: { value: string; label: string; hint?: string }[];
}
export interface BooleanSpec extends BaseSpec {
  type: 'boolean';
  default: boolean;
}
export interface TextSpec extends BaseSpec {
  type: 'text';
  default: string;
  required?: boolean;
  maxLength?: number;
  placeholder?: string;
}
export type FieldSpec = NumberSpec | SelectSpec | BooleanSpec | TextSpec;

export function defaultsOf(fields: readonly FieldSpec[]): HyperValues {
  const out: HyperValues = {};
  for (const f of fields) out[f.key] = f.default;
  return out;
}

/** Parse a number as typed: '3e-4', '0.0003', ' 16 ', '1,000'. Empty or junk -> null. */
export function parseNumberInput(text: string): number | null {
  const t = text
    .trim()
    .replace(/(\d),(?=\d{3}\b)/g, '$1')
    .replace(/_/g, '');
  if (t === '') return null;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(t)) return null;
  const v = Number(t);
  return Number.isFinite(v) ? v : null;
}

function fmt(n: number): string {
  return Math.abs(n) !== 0 && (Math.abs(n) < 1e-3 || Math.abs(n) >= 1e6) ? n.toExponential() : String(n);
}

/** A message in words for a field's value, or null when valid. `raw` is the text typed, for number fields. */
export function validateField(
  f: FieldSpec,
  value: HyperValue | null,
  values: HyperValues,
  raw?: string,
): string | null {
  switch (f.type) {
    case 'number': {
      if (value === null || typeof value !== 'number' || Number.isNaN(value)) {
        return raw !== undefined && raw.trim() !== '' ? `“${raw.trim()}” is not a number` : 'Required';
      }
      if (f.integer && !Number.isInteger(value)) return 'Must be a whole number';
      if (f.min !== undefined) {
        if (f.exclusiveMin ? value <= f.min : value < f.min)
          return f.exclusiveMin ? `Must be greater than ${fmt(f.min)}` : `Must be at least ${fmt(f.min)}`;
      }
      if (f.max !== undefined && (f.exclusiveMax ? value >= f.max : value > f.max))
        return f.exclusiveMax ? `Must be less than ${fmt(f.max)}` : `Must be at most ${fmt(f.max)}`;
      break;
    }
    case 'select':
      if (typeof value !== 'string' || !f.options.some((o) => o.value === value)) return 'Choose one of the options';
      break;
    case 'boolean':
      if (typeof value !== 'boolean') return 'Must be on or off';
      break;
    case 'text':
      if (typeof value !== 'string') return 'Required';
      if (f.required && value.trim() === '') return 'Required';
      if (f.maxLength !== undefined && value.length > f.maxLength) return `At most ${f.maxLength} characters`;
      break;
  }
  return f.check ? f.check(value as HyperValue, values) : null;
}

export function isVisible(f: FieldSpec, values: HyperValues): boolean {
  return f.visibleWhen ? f.visibleWhen(values) : true;
}

/** Errors for all visible fields, keyed by field key (empty when all are valid). */
export function validateAll(
  fields: readonly FieldSpec[],
  values: HyperValues,
  raws: Record<string, string> = {},
): Record<string, string> {
  const errors: Record<string, string> = {};
  for (const f of fields) {
    if (!isVisible(f, values)) continue;
    const v = f.key in values ? values[f.key] : null;
    const msg = validateField(
      f,
      f.type === 'number' && f.key in raws ? parseNumberInput(raws[f.key]) : v,
      values,
      raws[f.key],
    );
    if (msg) errors[f.key] = msg;
  }
  return errors;
}
