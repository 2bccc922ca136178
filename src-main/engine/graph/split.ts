// Split a graph into a CPU prologue ("host") and the rest ("device") for an accelerator provider.
//
// The WebGPU provider of ONNX Runtime 1.30 has no kernels for most integer ops (int64 CumSum / Equal / Range / Where,
// uint32 BitShift / BitwiseXor, float64 math) and places every shape computation (Shape -> Gather -> Concat -> ...)
// on the CPU provider on its own. What the model graphs compute with those ops is bookkeeping that depends only on
// the integer inputs and on shapes: positions and RoPE tables from the attention mask, padding and causal masks, the
// image-token merge indices, LoRA dropout masks from the seed, the loss's ignore weights, AdamW's bias corrections
// from the step. This pass moves exactly that part into a host graph run on the CPU provider before each run; its
// results become inputs of the device graph, which then holds no node the accelerator cannot run. A test loads the
// device graph with `session.disable_cpu_ep_fallback = 1`, so any node that would still land on the CPU fails it.
//
//   host values    graph inputs that are integer/bool or scalars; small in-memory initializers (HOST_CONST_LIMIT);
//                  outputs of host nodes. A node is a host node when all its inputs are host values.
//   Shape / Size   of a device value: rewritten from the value's known shape (numbers, and symbolic dims taken from
//                  the graph input where the symbol first appears), so it becomes host arithmetic. The shape of a
//                  device graph input X comes in as the host input `shape_of::X` (int64 [rank]), which the runner
//                  fills from the fed tensor's dims without reading its data.
// Host nodes that feed neither a device node nor a graph output are dropped.

import { Graph, inMemoryData, type Node, type Value } from './builder';

export const SHAPE_INPUT_PREFIX = 'shape_of::';
/**
 * In-memory initializers host nodes may read: integer ones up to HOST_CONST_LIMIT elements, float ones up to
 * HOST_FLOAT_CONST_LIMIT (scalars, RoPE frequencies); larger float constants are weights and stay on the device, so
 * nothing computed from them alone is recomputed on the host and uploaded every run.
 */
export const HOST_CONST_LIMIT = 1 << 16;
export const HOST_FLOAT_CONST_LIMIT = 256;
/** Constants a lowering wants on the device whatever their size (see lower-webgpu.ts lowerEqual). */
export const DEVICE_ONLY = new WeakSet<Value>();

const UNARY = new Set([
  'Identity',
  'Cast',
  'Neg',
  'Exp',
  'Log',
  'Sqrt',
  'Reciprocal',
  'Abs',
  'Relu',
  'Sigmoid',
  'Tanh',
  'Not',
]);
const INT_TYPES = new Set(['int64', 'int32', 'int16', 'int8', 'uint64', 'uint32', 'uint16', 'uint8', 'bool']);

export interface SplitGraphs {
  /** The CPU prologue, or null when nothing runs there. Its outputs are device inputs or graph outputs. */
  host: Graph | null;
  device: Graph;
}

/** Host (CPU) or device placement of graph inputs: integer/bool inputs and scalars are host. */
export function isHostInput(v: Value): boolean {
  return INT_TYPES.has(v.dtype) || (v.shape !== null && v.shape.length === 0);
}

/** Split `g` (consumed: its node list is emptied; build it again to reuse it). */
export function splitHostDevice(g: Graph): SplitGraphs {
  if (g.parent) throw new Error('splitHostDevice: pass the root graph');
  const host = new Set<Value>();
  for (const v of g.inputs) if (isHostInput(v)) host.add(v);
  for (const v of g.initializers) {
    const d = inMemoryData(g.initData.get(v)!);
    if (d && !DEVICE_ONLY.has(v) && d.length <= (INT_TYPES.has(v.dtype) ? HOST_CONST_LIMIT : HOST_FLOAT_CONST_LIMIT))
      host.add(v);
  }
  // first graph input (and axis) holding each symbolic dim; then host values that introduce one (below)
  const symbolSource = new Map<string, { input: Value; axis: number }>();
  for (const v of g.inputs)
    v.shape?.forEach((d, axis) => {
      if (typeof d === 'string' && d !== '?' && !symbolSource.has(d)) symbolSource.set(d, { input: v, axis });
    });
  const shapeInputs = new Map<Value, Value>();
  const shapeOf = (x: Value): Value => {
    if (host.has(x)) return emit(() => g.op1('Shape', [x]));
    let s = shapeInputs.get(x);
    if (!s) {
      if (x.kind !== 'input' || x.shape === null) throw new Error(`split: no shape source for '${x.name}'`);
      s = g.input(`${SHAPE_INPUT_PREFIX}${x.name}`, 'int64', [x.shape.length]);
      shapeInputs.set(x, s);
      host.add(s);
    }
    return s;
  };

  const hostNodes: Node[] = [];
  const deviceNodes: Node[] = [];
  /** Run `f`, which emits nodes into g; those nodes (all on host values) join the host list. */
  const emit = <T>(f: () => T): T => {
    const start = g.nodes.length;
    const inits = g.initializers.length;
    const r = f();
    for (const v of g.initializers.slice(inits)) host.add(v);
    for (const n of g.nodes.splice(start)) {
      for (const x of n.inputs)
        if (x && !host.has(x)) throw new Error(`split: '${n.name}' built on device value '${x.name}'`);
      hostNodes.push(n);
      for (const o of n.outputs) host.add(o);
    }
    return r;
  };

  /** int64 [end - start] with the dims of `x` from its known shape. */
  const shapeExpr = (n: Node, x: Value, start: number, end: number): Value => {
    if (x.kind === 'input') {
      const full = shapeOf(x);
      return start === 0 && end === x.shape!.length
        ? full
        : emit(() => g.op1('Slice', [full, g.ints([start]), g.ints([end]), g.ints([0])]));
    }
    const shape = x.shape;
    if (shape === null || shape.includes('?')) {
      const viaProducer = shapeFromProducer(x);
      if (viaProducer)
        return start === 0 && end === shape?.length
          ? viaProducer
          : emit(() => g.op1('Slice', [viaProducer, g.ints([start]), g.ints([end]), g.ints([0])]));
    }
    if (shape === null)
      throw new Error(
        `split for the accelerator: ${n.opType} '${n.name}' reads the shape of '${x.name}', whose rank is unknown`,
      );
    const parts: Value[] = [];
    for (let i = start; i < end; i++) {
      const d = shape[i];
      if (typeof d === 'number') parts.push(emit(() => g.ints([d])));
      else {
        const src = d === '?' ? undefined : symbolSource.get(d);
        if (!src)
          throw new Error(
            `split for the accelerator: ${n.opType} '${n.name}' reads dim ${i} of '${x.name}' [${shape.join(',')}], which no graph input determines`,
          );
        parts.push(
          emit(() => g.op1('Slice', [shapeOf(src.input), g.ints([src.axis]), g.ints([src.axis + 1]), g.ints([0])])),
        );
      }
    }
    if (parts.every((p) => p.constValue))
      return emit(() => g.ints(parts.map((p) => Number((p.constValue!.data as BigInt64Array)[0]))));
    return parts.length === 1 ? parts[0] : emit(() => g.op1('Concat', parts, { axis: 0 }));
  };

  /**
   * The shape of a value whose builder shape has unknown dims, from its producer: a Reshape to a shape that is itself
   * a Shape output or a constant without 0 / -1 is that shape; unary elementwise ops keep their input's shape.
   */
  const shapeFromProducer = (x: Value): Value | null => {
    const p = x.producer;
    if (!p || p.domain !== '') return null;
    if (p.opType === 'Reshape' && p.inputs[1] && host.has(p.inputs[1])) {
      const t = p.inputs[1];
      const c = t.constValue ? Array.from(t.constValue.data as BigInt64Array, Number) : null;
      if (t.producer?.opType === 'Shape' || (c && c.every((d) => d > 0))) return t;
      if (c && c.filter((d) => d === -1).length <= 1 && p.inputs[0]) {
        // 0 copies the input's dim, -1 is the input's size over the product of the others
        const inShape = fullShape(p.inputs[0]);
        if (!inShape) return null;
        const parts = c.map((d, i) =>
          d === 0
            ? emit(() => g.op1('Slice', [inShape, g.ints([i]), g.ints([i + 1]), g.ints([0])]))
            : d > 0
              ? emit(() => g.ints([d]))
              : null,
        );
        const k = c.indexOf(-1);
        if (k >= 0) {
          const known = parts.filter((x): x is Value => !!x);
          const others = known.length
            ? emit(() => g.op1('ReduceProd', [g.op1('Concat', known, { axis: 0 })], { keepdims: 1 }))
            : emit(() => g.ints([1]));
          parts[k] = emit(() => g.op1('Div', [g.op1('ReduceProd', [inShape], { keepdims: 1 }), others]));
        }
        return emit(() => g.op1('Concat', parts as Value[], { axis: 0 }));
      }
    }
    if (p.opType === 'Slice' && p.inputs[0] && p.inputs.slice(1).every((v) => !v || v.constValue)) {
      // constant starts / ends / axes, unit steps: each sliced dim becomes clamp(end) - clamp(start) of the input's
      const src = p.inputs[0];
      const rank = src.shape?.length;
      const num = (v: Value | null | undefined) => (v ? Array.from(v.constValue!.data as BigInt64Array, Number) : null);
      const [starts, ends, axes, steps] = [num(p.inputs[1]), num(p.inputs[2]), num(p.inputs[3]), num(p.inputs[4])];
      if (rank === undefined || !starts || !ends || (steps && steps.some((x) => x !== 1))) return null;
      const inShape = fullShape(src);
      if (!inShape) return null;
      const ax = (axes ?? starts.map((_, i) => i)).map((a) => (a < 0 ? a + rank : a));
      const dims: Value[] = [];
      for (let i = 0; i < rank; i++) {
        const d = emit(() => g.op1('Slice', [inShape, g.ints([i]), g.ints([i + 1]), g.ints([0])]));
        const k = ax.indexOf(i);
        if (k < 0) {
          dims.push(d);
          continue;
        }
        const at = (x: number) =>
          x < 0
            ? emit(() => g.op1('Max', [g.op1('Add', [d, g.ints([x])]), g.ints([0])]))
            : emit(() => g.op1('Min', [d, g.ints([Math.min(x, Number.MAX_SAFE_INTEGER)])]));
        dims.push(emit(() => g.op1('Max', [g.op1('Sub', [at(ends[k]), at(starts[k])]), g.ints([0])])));
      }
      return emit(() => g.op1('Concat', dims, { axis: 0 }));
    }
    if (UNARY.has(p.opType) && p.inputs[0]) {
      return fullShape(p.inputs[0]);
    }
    if (p.opType === 'Gather' && p.inputs[0] && p.inputs[1]) {
      // data's dims around the axis, the indices' dims in its place (rows chosen on the host: the loss's label positions)
      const rank = p.inputs[0].shape?.length;
      const ds = fullShape(p.inputs[0]);
      const is = fullShape(p.inputs[1]);
      if (rank === undefined || !ds || !is) return null;
      const ax = p.attrs.axis?.type === 'int' ? Number(p.attrs.axis.value) : 0;
      const a = ax < 0 ? ax + rank : ax;
      const part = (from: number, to: number) =>
        emit(() => g.op1('Slice', [ds, g.ints([from]), g.ints([to]), g.ints([0])]));
      return emit(() => g.op1('Concat', [part(0, a), is, part(a + 1, rank)], { axis: 0 }));
    }
    return null;
  };

  /** int64 [rank]: the full shape of `x` as a host value, or null when it cannot be derived. */
  const fullShape = (x: Value): Value | null => {
    if (host.has(x)) return emit(() => g.op1('Shape', [x]));
    if (x.kind === 'input') return shapeOf(x);
    if (x.shape && !x.shape.includes('?') && x.shape.every((d) => typeof d === 'number' || symbolSource.has(d)))
      return shapeExpr(x.producer!, x, 0, x.shape.length);
    return shapeFromProducer(x);
  };

  const old = g.nodes.splice(0);
  for (const n of old) {
    const hasGraph = Object.values(n.attrs).some((a) => a.type === 'graph');
    const x = n.inputs[0];
    if (!hasGraph && n.domain === '' && (n.opType === 'Shape' || n.opType === 'Size') && x && !host.has(x)) {
      const rank = x.shape?.length;
      if (rank === undefined)
        throw new Error(`split for the accelerator: ${n.opType} '${n.name}' of '${x.name}', whose rank is unknown`);
      const norm = (a: number) => Math.min(rank, Math.max(0, a < 0 ? a + rank : a));
      const sa = n.attrs.start;
      const ea = n.attrs.end;
      const start = n.opType === 'Shape' && sa?.type === 'int' ? norm(Number(sa.value)) : 0;
      const end = n.opType === 'Shape' && ea?.type === 'int' ? norm(Number(ea.value)) : rank;
      const s = shapeExpr(n, x, start, end);
      const out = n.outputs[0];
      const value = n.opType === 'Shape' ? s : emit(() => g.op1('ReduceProd', [s], { keepdims: 0 }));
      emit(() =>
        g.nodes.push({
          id: -1,
          opType: 'Identity',
          domain: '',
          name: g.freshName('split_Identity'),
          inputs: [value],
          outputs: [out],
          attrs: {},
        }),
      );
      continue;
    }
    if (!hasGraph && n.inputs.every((v) => !v || host.has(v))) {
      hostNodes.push(n);
      for (const o of n.outputs) {
        host.add(o);
        // a symbol a host value introduces (a count of positions the host chose at run time): read from its shape
        o.shape?.forEach((d, axis) => {
          if (typeof d === 'string' && d !== '?' && !symbolSource.has(d)) symbolSource.set(d, { input: o, axis });
        });
      }
    } else deviceNodes.push(n);
  }

  // keep the host nodes that feed the device graph or a graph output
  const producer = new Map<Value, Node>();
  for (const n of hostNodes) for (const o of n.outputs) producer.set(o, n);
  const needed = new Set<Node>();
  const boundary = new Set<Value>();
  const deviceUses = new Set<Value>();
  for (const n of deviceNodes) for (const v of n.inputs) if (v) deviceUses.add(v);
  const stack: Value[] = [];
  for (const v of deviceUses) if (producer.has(v)) (boundary.add(v), stack.push(v));
  const hostOutputs = g.outputs.filter((v) => producer.has(v));
  stack.push(...hostOutputs);
  while (stack.length) {
    const n = producer.get(stack.pop()!);
    if (!n || needed.has(n)) continue;
    needed.add(n);
    for (const v of n.inputs) if (v) stack.push(v);
  }

  let hostGraph: Graph | null = null;
  if (needed.size > 0) {
    hostGraph = new Graph(`${g.name}_host`, { opset: g.opset, domains: g.domains });
    const used = new Set<Value>();
    for (const n of hostNodes)
      if (needed.has(n)) {
        hostGraph.nodes.push(n);
        for (const v of n.inputs) if (v) used.add(v);
      }
    for (const v of g.inputs) if (used.has(v)) hostGraph.inputs.push(v);
    for (const v of g.initializers)
      if (used.has(v)) (hostGraph.initializers.push(v), hostGraph.initData.set(v, g.initData.get(v)!));
    for (const v of boundary) hostGraph.outputs.push(v);
    for (const v of hostOutputs) if (!boundary.has(v)) hostGraph.outputs.push(v);
  }

  const device = new Graph(`${g.name}_device`, { opset: g.opset, domains: g.domains });
  device.nodes.push(...deviceNodes);
  for (const v of g.inputs) if (deviceUses.has(v) && !v.name.startsWith(SHAPE_INPUT_PREFIX)) device.inputs.push(v);
  for (const v of boundary) device.inputs.push(v);
  for (const v of g.initializers)
    if (deviceUses.has(v)) (device.initializers.push(v), device.initData.set(v, g.initData.get(v)!));
  for (const v of g.outputs) if (!producer.has(v)) device.outputs.push(v);
  return { host: hostGraph, device };
}
