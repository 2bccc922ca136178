// Typed ONNX graph builder.
//
// A Graph holds inputs, initializers, nodes and outputs. Every Value carries a dtype and a (possibly symbolic) shape:
// a dim is a number, or a string naming a symbolic size ('B', 'T'); '?' is an unknown dim; `shape === null` is an
// unknown rank. Broadcasting follows numpy rules and treats a symbolic dim as "not 1": a dim that broadcasts must be
// written as the literal 1.
//
// Names are deterministic: `<scope>/<OpType>_<n>` with one counter per graph, so the same build gives the same model
// bytes (which the compiled-graph cache relies on).

import { DType, TypedArray, isTypedArrayOf, toTypedArray, typedArrayFor } from './dtype';
import { getShapeRule } from './shape';
export { registerShapeRule, getShapeRule, broadcastShapes } from './shape';
export type { ShapeRule } from './shape';

export type Dim = number | string;
export type Shape = readonly Dim[];

/**
 * Tensor data kept in memory, a reference to bytes in an external file (relative to the model's folder), or data
 * produced on demand when the model is serialized (LazyRef).
 */
export interface TensorData {
  dtype: DType;
  dims: readonly number[];
  data: TypedArray | ExternalRef | LazyRef;
}
/**
 * Data read only when the model is written: saveModel reads each lazy initializer bound for the external-data file,
 * writes it and drops it before the next, so a graph's weights (e.g. read from a checkpoint and transposed) are never
 * all in memory at once. `read` must return the tensor's dtype's typed array with exactly dims' element count, and
 * may be called more than once (each serialization reads again). Such initializers have no constValue.
 */
export interface LazyRef {
  lazy: { read(): TypedArray };
}

/** The typed array of in-memory tensor data, or null for external and lazy data. */
export function inMemoryData(td: TensorData): TypedArray | null {
  return 'external' in td.data || 'lazy' in td.data ? null : td.data;
}
export interface ExternalRef {
  external: { location: string; offset: number; length: number };
}

export type Attr =
  | { type: 'float'; value: number }
  | { type: 'int'; value: number | bigint }
  | { type: 'string'; value: string }
  | { type: 'floats'; value: readonly number[] }
  | { type: 'ints'; value: readonly (number | bigint)[] }
  | { type: 'strings'; value: readonly string[] }
  | { type: 'tensor'; value: TensorData }
  | { type: 'graph'; value: Graph };

/** What callers may pass as an attribute; plain numbers become INT unless non-integral or a known float attribute. */
export type AttrInput =
  Attr | number | bigint | boolean | string | readonly number[] | readonly string[] | Graph | TensorData;

/** Explicit attribute constructors, for when a plain JS value would be ambiguous. */
export const attr = {
  float: (value: number): Attr => ({ type: 'float', value }),
  int: (value: number | bigint): Attr => ({ type: 'int', value }),
  string: (value: string): Attr => ({ type: 'string', value }),
  floats: (value: readonly number[]): Attr => ({ type: 'floats', value }),
  ints: (value: readonly (number | bigint)[]): Attr => ({ type: 'ints', value }),
  strings: (value: readonly string[]): Attr => ({ type: 'strings', value }),
  tensor: (value: TensorData): Attr => ({ type: 'tensor', value }),
  graph: (value: Graph): Attr => ({ type: 'graph', value }),
};

/** Attribute names that are FLOAT in the standard ops even when given an integral JS number (e.g. Gemm alpha=1). */
const FLOAT_ATTRS = new Set([
  'alpha',
  'beta',
  'gamma',
  'epsilon',
  'bias',
  'lambd',
  'value_float',
  'scale',
  'softcap',
  'ratio',
  'momentum',
]);
const FLOATS_ATTRS = new Set(['value_floats', 'scales', 'coefficients']);
/** Per-op exceptions to FLOAT_ATTRS (names that are INT for that op). */
const INT_ATTR_EXCEPTIONS: Record<string, Set<string>> = {};

function normalizeAttr(opType: string, name: string, v: AttrInput): Attr {
  if (v instanceof Graph) return { type: 'graph', value: v };
  if (typeof v === 'object' && v !== null && 'type' in v && typeof (v as Attr).type === 'string' && 'value' in v)
    return v as Attr;
  if (typeof v === 'object' && v !== null && 'dtype' in v && 'dims' in v)
    return { type: 'tensor', value: v as TensorData };
  if (typeof v === 'boolean') return { type: 'int', value: v ? 1 : 0 };
  if (typeof v === 'bigint') return { type: 'int', value: v };
  if (typeof v === 'string') return { type: 'string', value: v };
  if (typeof v === 'number') {
    const forcedFloat = FLOAT_ATTRS.has(name) && !INT_ATTR_EXCEPTIONS[opType]?.has(name);
    if (forcedFloat || !Number.isInteger(v)) return { type: 'float', value: v };
    return { type: 'int', value: v };
  }
  if (Array.isArray(v)) {
    if (v.length > 0 && typeof v[0] === 'string') return { type: 'strings', value: v as string[] };
    const nums = v as number[];
    if (FLOATS_ATTRS.has(name) || nums.some((x) => !Number.isInteger(x))) return { type: 'floats', value: nums };
    return { type: 'ints', value: nums };
  }
  throw new Error(`attribute '${name}' of ${opType}: unsupported value ${String(v)}`);
}

export class Value {
  /** Known contents when this value is a constant initializer (used by shape inference, e.g. Reshape's shape). */
  constValue: TensorData | null = null;
  constructor(
    readonly graph: Graph,
    readonly name: string,
    public dtype: DType,
    public shape: Shape | null,
    readonly producer: Node | null,
    readonly kind: 'input' | 'initializer' | 'node',
  ) {}
  get rank(): number {
    if (this.shape === null) throw new Error(`value '${this.name}' has unknown rank`);
    return this.shape.length;
  }
  toString(): string {
    return `${this.name}:${this.dtype}[${this.shape === null ? '?' : this.shape.join(',')}]`;
  }
}

export interface Node {
  readonly id: number;
  readonly opType: string;
  readonly domain: string;
  readonly name: string;
  readonly inputs: readonly (Value | null)[];
  readonly outputs: readonly Value[];
  readonly attrs: Readonly<Record<string, Attr>>;
}

export type { OutType } from './shape';
import type { OutType } from './shape';

export interface OpOptions {
  /** Number of outputs, or their exact names. Default 1. */
  outputs?: number | readonly string[];
  domain?: string;
  /** Node name (default deterministic). */
  name?: string;
  /** Output types when no shape rule is registered or to override it. */
  outTypes?: readonly (OutType | null)[];
}

export interface GraphOptions {
  /** Default-domain opset version. Default 23. */
  opset?: number;
  /** Extra domains, e.g. { 'com.microsoft': 1 }. */
  domains?: Record<string, number>;
}

export class Graph {
  readonly inputs: Value[] = [];
  readonly initializers: Value[] = [];
  readonly initData = new Map<Value, TensorData>();
  readonly nodes: Node[] = [];
  readonly outputs: Value[] = [];
  readonly opset: number;
  readonly domains: Record<string, number>;
  /** Shared across a graph and its subgraphs so names stay unique in the whole model. */
  private names: { used: Set<string>; counters: Map<string, number> };
  private scopes: string[] = [];
  private constCache = new Map<string, Value>();
  private nodeCounter = { n: 0 };

  constructor(
    readonly name = 'main',
    opts: GraphOptions = {},
    readonly parent: Graph | null = null,
  ) {
    this.opset = opts.opset ?? parent?.opset ?? 23;
    this.domains = { ...(parent?.domains ?? {}), ...(opts.domains ?? {}) };
    this.names = parent ? parent.names : { used: new Set(), counters: new Map() };
    if (parent) this.nodeCounter = parent.nodeCounter;
  }

  // ---- names ---------------------------------------------------------------------------------------------------

  /** Run `fn` with names prefixed by `scope/` (nests). Use it to build a repeated block under a readable prefix. */
  scope<T>(scope: string, fn: () => T): T {
    this.scopes.push(scope);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  private prefix(): string {
    return this.scopes.length ? this.scopes.join('/') + '/' : '';
  }

  /** A fresh deterministic name `<scope>/<base>_<n>`. */
  freshName(base: string): string {
    const stem = this.prefix() + base;
    let n = this.names.counters.get(stem) ?? 0;
    let name: string;
    do name = `${stem}_${n++}`;
    while (this.names.used.has(name));
    this.names.counters.set(stem, n);
    this.names.used.add(name);
    return name;
  }

  /** Claim an exact name (scoped); throws if taken. */
  claimName(name: string, scoped = true): string {
    const full = scoped ? this.prefix() + name : name;
    if (this.names.used.has(full)) throw new Error(`graph '${this.name}': name '${full}' is already used`);
    this.names.used.add(full);
    return full;
  }

  hasName(name: string): boolean {
    return this.names.used.has(name);
  }

  // ---- graph inputs, initializers, constants -------------------------------------------------------------------

  /** A graph input fed at run time. The name is used as-is (not scoped). */
  input(name: string, dtype: DType, shape: Shape | null): Value {
    const v = new Value(this, this.claimName(name, false), dtype, shape, null, 'input');
    this.inputs.push(v);
    return v;
  }

  /** A named initializer (e.g. a weight). Data is a typed array of `dtype` (or numbers), or an external-file reference. */
  initializer(
    name: string,
    dtype: DType,
    dims: readonly number[],
    data: TypedArray | ExternalRef | LazyRef | ArrayLike<number | bigint | boolean>,
    opts: { scoped?: boolean } = {},
  ): Value {
    const full = this.claimName(name, opts.scoped ?? false);
    const td = makeTensorData(dtype, dims, data, full);
    const v = new Value(this, full, dtype, dims.slice(), null, 'initializer');
    if (inMemoryData(td)) v.constValue = td;
    this.initializers.push(v);
    this.initData.set(v, td);
    return v;
  }

  /**
   * An anonymous constant (an initializer named `const_<n>`), deduplicated by content for small tensors.
   * `values` may be a number (scalar, dims []), an array, or a typed array.
   */
  constant(
    values: number | bigint | boolean | ArrayLike<number | bigint | boolean> | TypedArray,
    dtype: DType = 'float32',
    dims?: readonly number[],
  ): Value {
    const arr: ArrayLike<number | bigint | boolean> =
      typeof values === 'number' || typeof values === 'bigint' || typeof values === 'boolean' ? [values] : values;
    const shape = dims ?? (typeof values === 'object' ? [arr.length] : []);
    const td = makeTensorData(dtype, shape, arr, 'constant');
    const data = td.data as TypedArray;
    let key: string | null = null;
    if (data.length <= 64) {
      key = `${dtype}|${shape.join(',')}|${Array.from(data as ArrayLike<number | bigint>, String).join(',')}`;
      const hit = this.constCache.get(key);
      if (hit) return hit;
    }
    const root = this.root();
    const v = new Value(root, root.freshNameUnscoped('const'), dtype, shape.slice(), null, 'initializer');
    v.constValue = td;
    root.initializers.push(v);
    root.initData.set(v, td);
    if (key) this.constCache.set(key, v);
    return v;
  }

  /** A scalar constant with the dtype of `like` (or float32). */
  scalar(x: number, like?: Value | DType): Value {
    const dtype = like === undefined ? 'float32' : typeof like === 'string' ? like : like.dtype;
    return this.constant(x, dtype, []);
  }

  /** A 1-D int64 constant (axes, shapes, indices). */
  ints(values: readonly (number | bigint)[]): Value {
    return this.constant(values, 'int64', [values.length]);
  }

  /**
   * Declare an operator domain (e.g. com.microsoft) on the root graph, so a builder deep inside a model can emit one
   * of its ops without the caller knowing in advance; an existing declaration keeps its version.
   */
  useDomain(domain: string, version: number): void {
    const d = this.root().domains as Record<string, number>;
    d[domain] ??= version;
  }

  private root(): Graph {
    let g: Graph = this;
    while (g.parent) g = g.parent;
    return g;
  }
  private freshNameUnscoped(base: string): string {
    const saved = this.scopes;
    this.scopes = [];
    try {
      return this.freshName(base);
    } finally {
      this.scopes = saved;
    }
  }

  // ---- nodes -----------------------------------------------------------------------------------------------------

  /**
   * Emit a node. `inputs` may contain null for omitted optional inputs (trailing nulls are dropped).
   * Output dtypes/shapes come from `opts.outTypes`, else the registered shape rule, else the first input's dtype with
   * unknown shape.
   */
  op(
    opType: string,
    inputs: readonly (Value | null | undefined)[],
    attrs: Record<string, AttrInput | undefined> = {},
    opts: OpOptions = {},
  ): Value[] {
    const ins = inputs.map((x) => x ?? null);
    while (ins.length && ins[ins.length - 1] === null) ins.pop();
    for (const [i, x] of ins.entries()) {
      if (x && !this.canSee(x.graph)) throw new Error(`${opType}: input ${i} '${x.name}' belongs to another graph`);
    }
    const nattrs: Record<string, Attr> = {};
    for (const [k, v] of Object.entries(attrs)) if (v !== undefined) nattrs[k] = normalizeAttr(opType, k, v);
    const domain = opts.domain ?? '';
    const nOut = typeof opts.outputs === 'number' ? opts.outputs : opts.outputs ? opts.outputs.length : 1;
    let types: (OutType | null)[] = [];
    if (opts.outTypes) types = opts.outTypes.slice();
    else {
      const rule = getShapeRule(opType, domain);
      if (rule) {
        try {
          types = rule(ins, nattrs, nOut);
        } catch (e) {
          const desc = ins.map((x) => (x ? x.toString() : 'null')).join(', ');
          throw new Error(`${opType}(${desc}): ${(e as Error).message}`);
        }
      }
    }
    const firstDtype = ins.find((x) => x)?.dtype ?? 'float32';
    const nodeName = opts.name ? this.claimName(opts.name) : this.freshName(opType);
    const outputs: Value[] = [];
    const node: Node = {
      id: this.nodeCounter.n++,
      opType,
      domain,
      name: nodeName,
      inputs: ins,
      outputs,
      attrs: nattrs,
    };
    for (let i = 0; i < nOut; i++) {
      const t = types[i] ?? { dtype: firstDtype, shape: null };
      const vname = Array.isArray(opts.outputs)
        ? this.claimName(opts.outputs[i], false)
        : nOut === 1
          ? `${nodeName}`
          : `${nodeName}:${i}`;
      if (!Array.isArray(opts.outputs)) this.names.used.add(vname);
      outputs.push(new Value(this, vname, t.dtype, t.shape, node, 'node'));
    }
    this.nodes.push(node);
    return outputs;
  }

  /** Emit a single-output node. */
  op1(
    opType: string,
    inputs: readonly (Value | null | undefined)[],
    attrs: Record<string, AttrInput | undefined> = {},
    opts: Omit<OpOptions, 'outputs'> & { output?: string } = {},
  ): Value {
    return this.op(opType, inputs, attrs, { ...opts, outputs: opts.output ? [opts.output] : 1 })[0];
  }

  private canSee(g: Graph): boolean {
    for (let cur: Graph | null = this; cur; cur = cur.parent) if (cur === g) return true;
    return false;
  }

  /** A child graph (for If/Loop/Scan bodies) that may use this graph's values; names stay unique model-wide. */
  subgraph(name: string): Graph {
    return new Graph(name, {}, this);
  }

  // ---- outputs ---------------------------------------------------------------------------------------------------

  /**
   * Mark `v` as a graph output, optionally under `name`. An Identity is inserted when the name differs, or when `v` is
   * a graph input or initializer (ONNX outputs must be produced by nodes to be renamed safely).
   */
  output(v: Value, name?: string): Value {
    let out = v;
    if ((name !== undefined && name !== v.name) || v.kind !== 'node' || this.outputs.includes(v)) {
      out = this.op1(
        'Identity',
        [v],
        {},
        { output: name ?? this.freshName(`${v.name}_out`), outTypes: [{ dtype: v.dtype, shape: v.shape }] },
      );
    }
    this.outputs.push(out);
    return out;
  }

  /** Look up a value by name among inputs, initializers and node outputs. */
  find(name: string): Value | undefined {
    return (
      this.inputs.find((v) => v.name === name) ??
      this.initializers.find((v) => v.name === name) ??
      this.nodes.flatMap((n) => n.outputs).find((v) => v.name === name)
    );
  }

  /** Consumers of each value (node + input slot), in node order. */
  consumers(): Map<Value, { node: Node; index: number }[]> {
    const m = new Map<Value, { node: Node; index: number }[]>();
    for (const n of this.nodes)
      n.inputs.forEach((x, index) => {
        if (!x) return;
        let l = m.get(x);
        if (!l) m.set(x, (l = []));
        l.push({ node: n, index });
      });
    return m;
  }
}

export function makeTensorData(
  dtype: DType,
  dims: readonly number[],
  data: TypedArray | ExternalRef | LazyRef | ArrayLike<number | bigint | boolean>,
  what: string,
): TensorData {
  for (const d of dims)
    if (!Number.isInteger(d) || d < 0) throw new Error(`tensor '${what}': bad dim ${d} in [${dims.join(',')}]`);
  const n = dims.reduce((a, b) => a * b, 1);
  if (typeof data === 'object' && data !== null && 'external' in data)
    return { dtype, dims: dims.slice(), data: data as ExternalRef };
  if (typeof data === 'object' && data !== null && 'lazy' in data) {
    if (typeof (data as LazyRef).lazy?.read !== 'function')
      throw new Error(`tensor '${what}': lazy data needs a read() function`);
    return { dtype, dims: dims.slice(), data: data as LazyRef };
  }
  const arr = isTypedArrayOf(dtype, data)
    ? (data as TypedArray)
    : toTypedArray(dtype, data as ArrayLike<number | bigint | boolean>);
  if (dtype === 'int4' ? arr.length !== Math.ceil(n / 2) : arr.length !== n)
    throw new Error(`tensor '${what}': ${arr.length} elements for dims [${dims.join(',')}] (${n} expected)`);
  return { dtype, dims: dims.slice(), data: arr };
}

export { typedArrayFor };
export type { DType, TypedArray };
