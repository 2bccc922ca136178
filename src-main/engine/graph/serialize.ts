// Graph -> ONNX ModelProto bytes, with large initializers optionally moved to an external-data file.
// Field numbers follow onnx/onnx.proto (IR version 8..11).

import { basename } from 'node:path';
import { writeAll, writeFileAtomic } from '../../util/atomic-write';
import { collectGarbage } from '../../util/gc';
import { Attr, Graph, Shape, TensorData, Value } from './builder';
import { DTYPE_BYTES, ONNX_DTYPE, TypedArray, isTypedArrayOf } from './dtype';
import { PbWriter } from './protobuf';

export interface SerializeOptions {
  /** Move initializers of at least `threshold` bytes (default 1024) into the file named `location` (relative). */
  external?: { location: string; threshold?: number; align?: number };
  /** Write output shapes (not only dtypes) into the model. Default true (ORT then checks them against its inference). */
  outputShapes?: boolean;
  producerVersion?: string;
  /** Model metadata (metadata_props). */
  metadata?: Record<string, string>;
}

/** One initializer's bytes in the external-data file. */
export interface ExternalChunk {
  /** The initializer's name (for errors). */
  name: string;
  offset: number;
  length: number;
  /**
   * The bytes (exactly `length`): in-memory data as a view, lazy data (LazyRef) read now, so a caller that writes
   * the chunks one by one and drops each (saveModel) holds one lazy tensor at a time. Throws naming the tensor when a
   * lazy read gives the wrong type or size.
   */
  read(): Uint8Array;
}

export interface SerializedModel {
  model: Uint8Array;
  /** The external-data file (sparse: each chunk at its offset), when any initializer went external. */
  external: { location: string; size: number; chunks: ExternalChunk[] } | null;
}

/** IR version matching the default-domain opset (what onnx.helper would pick). */
export function irVersionFor(opset: number): number {
  if (opset >= 23) return 11;
  if (opset >= 21) return 10;
  if (opset >= 19) return 9;
  return 8;
}

function bytesOf(a: TypedArray): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** The bytes of a tensor's in-memory or lazy data, checked against its dtype and dims. */
function tensorBytes(name: string, td: TensorData, length: number): Uint8Array {
  if ('external' in td.data) throw new Error(`tensor '${name}': external data has no bytes here`);
  let arr: TypedArray;
  if ('lazy' in td.data) {
    arr = td.data.lazy.read();
    if (!isTypedArrayOf(td.dtype, arr))
      throw new Error(
        `tensor '${name}': lazy read gave a ${(arr as object)?.constructor?.name ?? typeof arr}, not ${td.dtype} data`,
      );
  } else arr = td.data;
  if (arr.byteLength !== length)
    throw new Error(
      `tensor '${name}': data size mismatch (${arr.byteLength} bytes for dims [${td.dims.join(',')}] of ${td.dtype}, ${length} expected)`,
    );
  return bytesOf(arr);
}

export function serializeModel(graph: Graph, opts: SerializeOptions = {}): SerializedModel {
  if (graph.parent) throw new Error('serializeModel: pass the root graph, not a subgraph');
  const ext = opts.external
    ? {
        location: opts.external.location,
        threshold: opts.external.threshold ?? 1024,
        align: opts.external.align ?? 4096,
      }
    : null;
  const chunks: ExternalChunk[] = [];
  let extSize = 0;
  const domains = new Map<string, number>([['', graph.opset], ...Object.entries(graph.domains)]);

  const writeTensor = (w: PbWriter, name: string, td: TensorData, allowExternal: boolean): void => {
    w.packedVarints(1, td.dims);
    w.uint(2, ONNX_DTYPE[td.dtype]);
    if (name) w.string(8, name);
    if ('external' in td.data) {
      const e = td.data.external;
      if (e.location.startsWith('/') || e.location.split(/[\\/]/).includes('..'))
        throw new Error(`tensor '${name}': external location '${e.location}' must be relative to the model folder`);
      w.message(13, (m) => m.string(1, 'location').string(2, e.location));
      w.message(13, (m) => m.string(1, 'offset').string(2, String(e.offset)));
      w.message(13, (m) => m.string(1, 'length').string(2, String(e.length)));
      w.uint(14, 1);
      return;
    }
    const length = td.dims.reduce((a, b) => a * b, 1) * DTYPE_BYTES[td.dtype];
    if (ext && allowExternal && length >= ext.threshold) {
      // in-memory data is checked now; lazy data when the chunk is read (see ExternalChunk.read)
      if (!('lazy' in td.data)) tensorBytes(name, td, length);
      const align = length >= 65536 ? Math.max(ext.align, 65536) : ext.align;
      const offset = Math.ceil(extSize / align) * align;
      chunks.push({ name, offset, length, read: () => tensorBytes(name, td, length) });
      extSize = offset + length;
      w.message(13, (m) => m.string(1, 'location').string(2, ext.location));
      w.message(13, (m) => m.string(1, 'offset').string(2, String(offset)));
      w.message(13, (m) => m.string(1, 'length').string(2, String(length)));
      w.uint(14, 1);
      return;
    }
    w.bytes(9, tensorBytes(name, td, length));
  };

  const writeValueInfo = (w: PbWriter, v: Value, withShape: boolean): void => {
    w.string(1, v.name);
    w.message(2, (tp) =>
      tp.message(1, (tt) => {
        tt.uint(1, ONNX_DTYPE[v.dtype]);
        if (withShape && v.shape !== null) writeShape(tt, v.shape);
      }),
    );
  };
  const writeShape = (w: PbWriter, shape: Shape): void => {
    w.message(2, (sp) => {
      for (const d of shape)
        sp.message(1, (dim) => {
          if (typeof d === 'number') dim.uint(1, d);
          else if (d !== '?') dim.string(2, d);
        });
    });
  };

  const writeAttr = (w: PbWriter, name: string, a: Attr): void => {
    w.string(1, name);
    switch (a.type) {
      case 'float':
        w.float(2, a.value).uint(20, 1);
        break;
      case 'int':
        w.uint(3, a.value).uint(20, 2);
        break;
      case 'string':
        w.string(4, a.value).uint(20, 3);
        break;
      case 'tensor':
        w.message(5, (t) => writeTensor(t, '', a.value, false)).uint(20, 4);
        break;
      case 'graph':
        w.message(6, (gw) => writeGraph(gw, a.value, true)).uint(20, 5);
        break;
      case 'floats':
        w.packedFloats(7, a.value).uint(20, 6);
        break;
      case 'ints':
        w.packedVarints(8, a.value).uint(20, 7);
        break;
      case 'strings':
        for (const s of a.value) w.string(9, s);
        w.uint(20, 8);
        break;
    }
  };

  const writeGraph = (w: PbWriter, g: Graph, isSub: boolean): void => {
    for (const n of g.nodes) {
      if (n.domain && !domains.has(n.domain))
        throw new Error(
          `node '${n.name}' (${n.opType}) uses domain '${n.domain}' with no opset; pass it in GraphOptions.domains`,
        );
      w.message(1, (nw) => {
        for (const x of n.inputs) nw.string(1, x ? x.name : '');
        for (const o of n.outputs) nw.string(2, o.name);
        nw.string(3, n.name);
        nw.string(4, n.opType);
        for (const [k, a] of Object.entries(n.attrs)) nw.message(5, (aw) => writeAttr(aw, k, a));
        if (n.domain) nw.string(7, n.domain);
      });
    }
    w.string(2, g.name);
    for (const v of g.initializers) w.message(5, (tw) => writeTensor(tw, v.name, g.initData.get(v)!, !isSub));
    const inputNames = new Set(g.inputs.map((v) => v.name));
    for (const v of g.initializers)
      if (inputNames.has(v.name))
        throw new Error(`'${v.name}' is both a graph input and an initializer (a fed value would be ignored)`);
    for (const v of g.inputs) w.message(11, (vw) => writeValueInfo(vw, v, true));
    if (g.outputs.length === 0 && !isSub) throw new Error(`graph '${g.name}' has no outputs`);
    for (const v of g.outputs) w.message(12, (vw) => writeValueInfo(vw, v, opts.outputShapes ?? true));
  };

  const w = new PbWriter(1 << 16);
  w.uint(1, irVersionFor(graph.opset));
  w.string(2, 'lenslab');
  w.string(3, opts.producerVersion ?? '0.1.0');
  w.message(7, (gw) => writeGraph(gw, graph, false));
  for (const [d, v] of domains) w.message(8, (ow) => (d ? ow.string(1, d).uint(2, v) : ow.uint(2, v)));
  for (const [k, v] of Object.entries(opts.metadata ?? {})) w.message(14, (m) => m.string(1, k).string(2, v));
  return { model: w.finish(), external: chunks.length ? { location: ext!.location, size: extSize, chunks } : null };
}

/** Garbage from lazy reads a save lets build up before it collects (see saveModel). */
const GC_AFTER_BYTES = 256 * 2 ** 20;

/**
 * Write `graph` to `path` (atomically). Initializers of at least `externalThreshold` bytes (default 1024; Infinity
 * keeps all inline) go to `<basename(path)>.data` next to it, which ORT memory-maps when loading from the path.
 * The data file is written chunk by chunk, each lazy initializer read just before its write, so the peak memory of a
 * save is the in-memory initializers plus the largest lazy one (and up to GC_AFTER_BYTES of garbage), not all of them.
 */
export function saveModel(
  graph: Graph,
  path: string,
  opts: Omit<SerializeOptions, 'external'> & { externalThreshold?: number } = {},
): { modelPath: string; dataPath: string | null } {
  const threshold = opts.externalThreshold ?? 1024;
  const location = `${basename(path)}.data`;
  const ser = serializeModel(graph, {
    ...opts,
    external: Number.isFinite(threshold) ? { location, threshold } : undefined,
  });
  let dataPath: string | null = null;
  if (ser.external) {
    dataPath = `${path}.data`;
    // one chunk at a time: a lazy initializer's bytes (e.g. a transposed weight) are garbage once written, and so
    // is what its read used (the float32 weight it quantized). V8 collects such buffers on its own schedule, which
    // let a 0.5B int4 save reach 1.35 GB; past GC_AFTER_BYTES of new buffers it is asked to collect now.
    writeFileAtomic(dataPath, (fd) => {
      let base = process.memoryUsage().arrayBuffers;
      for (const c of ser.external!.chunks) {
        writeAll(fd, c.read(), c.offset);
        if (process.memoryUsage().arrayBuffers - base > GC_AFTER_BYTES) {
          collectGarbage();
          base = process.memoryUsage().arrayBuffers;
        }
      }
    });
  }
  writeFileAtomic(path, (fd) => writeAll(fd, ser.model, 0));
  return { modelPath: path, dataPath };
}
