// Op registry: one entry per ONNX op type with its gradient rule (and optionally its shape rule).
// Each op family file (elementwise.ts, matmul.ts, ...) exports typed forward emitters and registers the rules of the
// ops it emits, side by side. autodiff.ts looks rules up here; a missing rule is an error naming the op.

import type { Attr, Graph, Node, Value } from '../graph/builder';
import { registerShapeRule, type ShapeRule } from '../graph/shape';

export interface GradContext {
  /** The graph gradient nodes are emitted into. */
  readonly g: Graph;
  readonly node: Node;
  readonly inputs: readonly (Value | null)[];
  readonly outputs: readonly Value[];
  /** dLoss/dOutput for each output; null where no gradient flows into that output (treat as zero). */
  readonly gradOutputs: readonly (Value | null)[];
  /** needs[i]: emit a gradient for input i. Rules must not emit work for inputs that are not needed. */
  readonly needs: readonly boolean[];
  readonly attrs: Readonly<Record<string, Attr>>;
  /** Whether a gradient was asked for this value itself (a rule that folds a path through it must not then). */
  readonly isWrt?: (v: Value) => boolean;
}

/** Returns dLoss/dInput for each input (null/undefined where not needed or zero). */
export type GradRule = (ctx: GradContext) => readonly (Value | null | undefined)[];

export interface OpSpec {
  /** Gradient rule. */
  grad?: GradRule;
  /** The op is locally constant (zero gradient everywhere, e.g. Floor, Sign): gradients stop here without error. */
  zeroGrad?: boolean;
  /** Shape inference (optional; overrides a built-in rule). */
  shape?: ShapeRule;
}

const ops = new Map<string, OpSpec>();
const key = (opType: string, domain: string) => (domain ? `${domain}:${opType}` : opType);

export function registerOp(opType: string, spec: OpSpec, domain = ''): void {
  const k = key(opType, domain);
  if (ops.has(k)) throw new Error(`op '${k}' is registered twice`);
  ops.set(k, spec);
  if (spec.shape) registerShapeRule(opType, spec.shape, domain);
}

export function getOp(opType: string, domain = ''): OpSpec | undefined {
  return ops.get(key(opType, domain));
}

export function registeredOps(): string[] {
  return [...ops.keys()].sort();
}

// ---- attribute readers for rules ---------------------------------------------------------------------------------

export function aInt(attrs: Readonly<Record<string, Attr>>, name: string, dflt: number): number {
  const a = attrs[name];
  if (!a) return dflt;
  if (a.type !== 'int') throw new Error(`attribute '${name}' is ${a.type}, expected int`);
  return Number(a.value);
}
export function aFloat(attrs: Readonly<Record<string, Attr>>, name: string, dflt: number): number {
  const a = attrs[name];
  if (!a) return dflt;
  if (a.type !== 'float' && a.type !== 'int') throw new Error(`attribute '${name}' is ${a.type}, expected float`);
  return Number(a.value);
}
export function aInts(attrs: Readonly<Record<string, Attr>>, name: string): number[] | null {
  const a = attrs[name];
  if (!a) return null;
  if (a.type !== 'ints') throw new Error(`attribute '${name}' is ${a.type}, expected ints`);
  return a.value.map(Number);
}
export function aString(attrs: Readonly<Record<string, Attr>>, name: string, dflt: string): string {
  const a = attrs[name];
  if (!a) return dflt;
  if (a.type !== 'string') throw new Error(`attribute '${name}' is ${a.type}, expected string`);
  return a.value;
}
