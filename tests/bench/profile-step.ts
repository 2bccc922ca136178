// npm run bench:profile [-- --vision-layers 2 --text-layers 4 --batch 2 --steps 2 --feature-cache --quantize-base int4 --sum --keep]
//
// Where a training step's time goes, from ORT's own profiler (session.ts LENSLAB_ORT_PROFILE): the VLM trainer runs
// the LoRA step (rank 16, q/k/v/o, as bench:train) on a LLaVA in the ~0.45B model's shapes (CLIP-B/16 at 224 px =
// 196 image tokens, Qwen2-0.5B-like 896-wide decoder with 14/2 heads and a 4864 MLP) but with fewer layers, so a
// profiled step takes seconds; each layer's work is the same as in the full model. Prints the step's node time by op
// type and by region (vision tower, decoder layers, backward, head + loss, optimizer), GEMM time and GFLOP/s
// (MatMul / Gemm FLOPs from the profiled shapes), and the named suspects: attention's softmax and masking, norms,
// casts, Where / Expand chains, LoRA's thin matmuls (an inner or outer dimension of 16), transposes, copies.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg, tmpdir } from 'node:os';
import { writeTinyLlava, type TinyLlavaOptions } from '../../src-main/models/demo/tiny-llava';

const args = process.argv.slice(2);
const arg = (name: string, d: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : d;
};
const visionLayers = arg('vision-layers', 2);
const textLayers = arg('text-layers', 4);
const batch = arg('batch', 2);
const steps = arg('steps', 2);
const qi = args.indexOf('--quantize-base');
const quantizeBase = qi >= 0 ? args[qi + 1] : 'none';

interface Ev {
  cat: string;
  name: string;
  dur: number;
  args?: {
    op_name?: string;
    input_type_shape?: Record<string, number[]>[];
    output_type_shape?: Record<string, number[]>[];
  };
}

const SLICE: TinyLlavaOptions = {
  imageSize: 224,
  patchSize: 16,
  visionHidden: 768,
  visionLayers,
  visionHeads: 12,
  visionIntermediate: 3072,
  textHidden: 896,
  textLayers,
  textHeads: 14,
  textKvHeads: 2,
  textIntermediate: 4864,
};

function shapes(e: Ev): number[][] {
  return (e.args?.input_type_shape ?? []).map((o) => Object.values(o)[0] ?? []);
}

/**
 * 2·M·K·N of a MatMul / Gemm (x batch): the profile lists the shapes of non-constant inputs and of the output only,
 * so K comes from the first input: prod(A) = batch·M·K and prod(out) = batch·M·N give K = prod(A)·N / prod(out).
 */
function gemmFlops(e: Ev): number {
  const a = shapes(e)[0];
  const out = (e.args?.output_type_shape ?? []).map((o) => Object.values(o)[0] ?? [])[0];
  if (!a || !out || out.length < 2) return 0;
  const prod = (x: number[]) => x.reduce((p, q) => p * q, 1);
  const n = out[out.length - 1];
  const k = (prod(a) * n) / prod(out);
  return 2 * prod(out) * k;
}

const GEMM = new Set([
  'MatMul',
  'Gemm',
  'FusedMatMul',
  'MatMulNBits',
  'MatMulInteger',
  'QGemm',
  'DynamicQuantizeMatMul',
]);

function region(name: string): string {
  const n = name.replace(/_kernel_time$/, '').replace(/^fwd\//, '');
  if (n.startsWith('grad/')) return 'backward';
  if (n.startsWith('vision/')) return 'vision tower';
  if (n.startsWith('decoder/')) return 'decoder layers (forward)';
  if (n.startsWith('lm_head') || n.startsWith('loss')) return 'head + loss (forward)';
  if (/adamw|clip|optim/i.test(n)) return 'clip + AdamW';
  return n.split('/')[0].replace(/_\d+$/, '') || 'other';
}

function suspect(e: Ev): string | null {
  const op = e.args?.op_name ?? '';
  const n = e.name;
  if (GEMM.has(op)) {
    // MatMulNBits' packed weight is [N, K / 32, 16] bytes: its 16 is a block's bytes, not a LoRA rank
    const ins = op === 'MatMulNBits' ? shapes(e).slice(0, 1) : shapes(e);
    const s = [...ins, ...(e.args?.output_type_shape ?? []).map((o) => Object.values(o)[0] ?? [])];
    const thin = s.some((x) => x.length >= 2 && x[x.length - 1] === 16);
    if (thin) return 'LoRA thin matmuls (a dim of 16)';
    if (/attn|attention/i.test(n) && !/proj/i.test(n)) return 'attention score / value matmuls';
    return null;
  }
  if (op === 'Softmax' || op === 'SoftmaxGrad') return 'softmax';
  if (/LayerNorm|SimplifiedLayerNorm|RMSNorm|ReduceMean|Pow|Sqrt|Reciprocal/.test(op))
    return 'norms (LayerNorm / RMSNorm pieces)';
  if (op === 'Cast') return 'casts';
  if (op === 'DequantizeLinear' || op === 'BitwiseAnd' || op === 'BitShift' || op === 'BitwiseOr')
    return 'unpacking quantized weights for dX';
  if (op === 'Where' || op === 'Expand' || op === 'Equal' || op === 'Not' || op === 'And' || op === 'Or')
    return 'Where / Expand / mask chains';
  if (op === 'Transpose') return 'transposes';
  if (
    op === 'Concat' ||
    op === 'Slice' ||
    op === 'Split' ||
    op === 'Gather' ||
    op === 'GatherElements' ||
    op === 'ScatterElements' ||
    op === 'ScatterND' ||
    op === 'Pad' ||
    op === 'Tile'
  )
    return 'copies (Concat / Slice / Gather / Scatter / Pad)';
  if (
    op === 'Add' ||
    op === 'Mul' ||
    op === 'Sub' ||
    op === 'Div' ||
    op === 'Neg' ||
    op === 'Sigmoid' ||
    op === 'Tanh' ||
    op === 'Erf' ||
    op === 'Exp' ||
    op === 'Gelu' ||
    op === 'FastGelu' ||
    op === 'QuickGelu' ||
    op === 'BiasGelu'
  )
    return 'elementwise (Add / Mul / activations)';
  if (op.startsWith('Reduce')) return 'reductions';
  return null;
}

async function main(): Promise<void> {
  // bench:train's data (and demo model) only: its larger models are not needed here
  process.argv.push('--skip-large', '--skip-smolvlm');
  const { setup } = await import('./train');
  const { data } = await setup();
  const root = join(tmpdir(), 'lenslab-bench-train');
  const dir = join(root, `llava-slice-v${visionLayers}-t${textLayers}`);
  if (!existsSync(join(dir, 'model.safetensors'))) {
    process.stderr.write(`writing the ${visionLayers}+${textLayers}-layer slice of the 0.45B shapes to ${dir} ...\n`);
    writeTinyLlava(dir, 0, SLICE);
  }
  const prof = mkdtempSync(join(tmpdir(), 'lenslab-profile-'));
  process.env.LENSLAB_GRAPH_CACHE ??= join(root, 'graph-cache');
  process.env.LENSLAB_ORT_PROFILE = prof;
  process.env.LENSLAB_PROVIDER ??= 'cpu'; // no device probe: it would profile its own sessions
  const { vlmTrainerModule } = await import('../../src-main/training/vlm-trainer');
  const out = mkdtempSync(join(tmpdir(), 'lenslab-bench-run-'));
  const config = {
    model: dir,
    data: { file: data },
    hparams: {
      method: 'lora',
      rank: 16,
      alpha: 32,
      dropout: 0,
      maxSteps: steps + 1,
      batchSize: batch,
      saveEvery: 0,
      evalEvery: 0,
      lr: 1e-4,
      ...(quantizeBase !== 'none' ? { quantizeBase } : {}),
    },
    eval: { maxItems: 1 },
    featureCache: args.includes('--feature-cache'),
  };
  const tr = vlmTrainerModule.createTrainer(config, { outDir: out, log: () => {} });
  const t0 = performance.now();
  await tr.init(null);
  process.stderr.write(`init ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  const ms: number[] = [];
  for (let i = 0; i < steps + 1; i++) {
    const t = performance.now();
    await tr.trainStep();
    ms.push(performance.now() - t);
  }
  const phases = tr.phases?.();
  await tr.dispose?.();
  rmSync(out, { recursive: true, force: true });

  // the step session's profile: the largest file (others are the provider probe's or empty)
  const files = readdirSync(prof)
    .map((f) => join(prof, f))
    .sort((a, b) => readFileSync(b).length - readFileSync(a).length);
  const events = (JSON.parse(readFileSync(files[0], 'utf8')) as Ev[]).filter(
    (e) => e.cat === 'Node' && e.name.endsWith('_kernel_time'),
  );
  if (!args.includes('--keep')) rmSync(prof, { recursive: true, force: true });
  else console.log(`profile kept in ${prof}`);
  // the first run is the warm-up (allocations, prepacking): keep the last `steps` runs, split by repeated node names
  const firstName = events[0]?.name;
  const runStarts = events.map((e, i) => (e.name === firstName ? i : -1)).filter((i) => i >= 0);
  const all = events.slice(runStarts[Math.min(1, runStarts.length - 1)]);
  const profiled = Math.max(1, runStarts.length - 1);
  // each node's fastest run of the profiled steps: on a shared machine a node the OS preempted takes 10-30x its time
  // in one step, which sums would count; the minimum drops most of it (--sum: plain sums over the steps)
  const fastest = new Map<string, Ev>();
  for (const e of all) {
    const f = fastest.get(e.name);
    if (!f || e.dur < f.dur) fastest.set(e.name, e);
  }
  const useSum = args.includes('--sum');
  const timed = useSum ? all : [...fastest.values()];
  const runs = useSum ? profiled : 1;
  const total = timed.reduce((a, e) => a + e.dur, 0);
  const sumTotal = all.reduce((a, e) => a + e.dur, 0) / profiled;
  const by = (key: (e: Ev) => string | null) => {
    const m = new Map<string, { us: number; n: number; flops: number }>();
    for (const e of timed) {
      const k = key(e);
      if (k === null) continue;
      const r = m.get(k) ?? { us: 0, n: 0, flops: 0 };
      r.us += e.dur;
      r.n++;
      if (GEMM.has(e.args?.op_name ?? '')) r.flops += gemmFlops(e);
      m.set(k, r);
    }
    return [...m].sort((a, b) => b[1].us - a[1].us);
  };
  const pct = (us: number) => `${((100 * us) / total).toFixed(1)}%`;
  const perRun = (us: number) => `${(us / runs / 1000).toFixed(1)} ms`;
  const wall = [...ms.slice(1)].sort((a, b) => a - b)[Math.floor((ms.length - 1) / 2)];
  console.log(
    `bench:profile — LoRA step on a ${visionLayers}+${textLayers}-layer slice of the 0.45B LLaVA shapes, B${batch}, ${profiled} profiled steps; load average ${loadavg()[0].toFixed(1)}`,
  );
  console.log(
    useSum
      ? 'node times: summed over the profiled steps, per step'
      : `node times: each node's fastest of the ${profiled} profiled steps (${(total / 1000).toFixed(1)} ms a step, against ${(sumTotal / 1000).toFixed(1)} ms summed: the rest is mostly time other processes took)`,
  );
  console.log(
    `step wall time (median) ${wall.toFixed(0)} ms; node time per step ${perRun(total)} (${pct(total)} of the nodes' sum; the rest of the wall time is the session's own overhead and JS)`,
  );
  const gemm = by((e) => (GEMM.has(e.args?.op_name ?? '') ? 'gemm' : 'other'));
  for (const [k, r] of gemm)
    console.log(
      `  ${k.padEnd(6)} ${perRun(r.us).padStart(10)} ${pct(r.us).padStart(6)}${r.flops ? `  ${(r.flops / runs / 1e9).toFixed(1)} GFLOP a step, ${(r.flops / r.us / 1e3).toFixed(0)} GFLOP/s while in GEMMs, ${(r.flops / total / 1e3).toFixed(0)} GFLOP/s over all node time` : ''}`,
    );
  // ORT's thread_scheduling_stats: did a pool thread take part in the node, or did the calling thread run it alone
  const helped = (e: Ev) =>
    Object.values(
      (e.args as { thread_scheduling_stats?: { sub_threads?: Record<string, { num_run?: number }> } })
        ?.thread_scheduling_stats?.sub_threads ?? {},
    ).some((t) => (t.num_run ?? 0) > 0);
  const gemmUs = timed.filter((e) => GEMM.has(e.args?.op_name ?? '')).reduce((a, e) => a + e.dur, 0);
  const gemmHelped = timed.filter((e) => GEMM.has(e.args?.op_name ?? '') && helped(e)).reduce((a, e) => a + e.dur, 0);
  console.log(
    `  GEMM time in nodes where a pool thread took part: ${((100 * gemmHelped) / Math.max(1, gemmUs)).toFixed(0)}% (the rest ran on the calling thread alone)`,
  );
  console.log('by op type (top 16):');
  for (const [k, r] of by((e) => e.args?.op_name ?? '?').slice(0, 16))
    console.log(`  ${k.padEnd(28)} ${perRun(r.us).padStart(10)} ${pct(r.us).padStart(6)}  ${r.n / runs} nodes`);
  console.log('by region:');
  for (const [k, r] of by((e) => region(e.name)))
    console.log(`  ${k.padEnd(28)} ${perRun(r.us).padStart(10)} ${pct(r.us).padStart(6)}`);
  console.log('named suspects (outside the big GEMMs):');
  for (const [k, r] of by(suspect))
    console.log(`  ${k.padEnd(48)} ${perRun(r.us).padStart(10)} ${pct(r.us).padStart(6)}  ${r.n / runs} nodes`);
  console.log('slowest single nodes:');
  const agg = by((e) => `${e.name.replace(/_kernel_time$/, '')} [${e.args?.op_name}]`).slice(0, 12);
  for (const [k, r] of agg)
    console.log(`  ${k.slice(0, 90).padEnd(90)} ${perRun(r.us).padStart(10)} ${pct(r.us).padStart(6)}`);
  await plainGemms(timed, runs);
  if (phases)
    console.log(
      `trainer phases (all steps): ${Object.entries(phases.ms)
        .map(([k, v]) => `${k} ${(v / ms.length).toFixed(1)} ms`)
        .join(', ')}`,
    );
}

/**
 * The largest GEMM shapes of the step (MatMuls against a constant matrix: the profile lists only A's shape) next to
 * ORT's plain MatMul at the same [M, K] @ [K, N] measured right after, so a node running below the GEMM rate of its
 * own shape shows apart from the machine's load.
 */
async function plainGemms(timed: Ev[], runs: number): Promise<void> {
  const { Graph } = await import('../../src-main/engine/graph/builder');
  const { serializeModel } = await import('../../src-main/engine/graph/serialize');
  const { Session } = await import('../../src-main/engine/runtime/session');
  const { tensor } = await import('../../src-main/engine/runtime/tensor');
  delete process.env.LENSLAB_ORT_PROFILE; // these sessions are timed by the clock, not profiled
  const m = new Map<string, { M: number; K: number; N: number; us: number; n: number; flops: number }>();
  for (const e of timed) {
    if (e.args?.op_name !== 'MatMul' || shapes(e).length !== 1) continue;
    const a = shapes(e)[0];
    const out = (e.args?.output_type_shape ?? []).map((o) => Object.values(o)[0] ?? [])[0];
    if (!a || !out || a.length < 2) continue;
    const K = a[a.length - 1];
    const N = out[out.length - 1];
    const M = a.slice(0, -1).reduce((p, q) => p * q, 1);
    const key = `${M}x${K}x${N}`;
    const r = m.get(key) ?? { M, K, N, us: 0, n: 0, flops: 0 };
    r.us += e.dur;
    r.n++;
    r.flops += 2 * M * K * N;
    m.set(key, r);
  }
  const top = [...m.values()].sort((a, b) => b.us - a.us).slice(0, 6);
  console.log('largest GEMM shapes in the step vs ORT plain MatMul at the same shape (measured now):');
  for (const r of top) {
    const g = new Graph('gemm');
    const a = g.input('a', 'float32', [r.M, r.K]);
    const b = g.initializer(
      'b',
      'float32',
      [r.K, r.N],
      new Float32Array(r.K * r.N).map((_, i) => ((i % 13) - 6) / 130),
    );
    g.output(g.op1('MatMul', [a, b]), 'y');
    const sess = await Session.create(serializeModel(g).model, { provider: 'cpu' });
    const feeds = {
      a: tensor(
        'float32',
        [r.M, r.K],
        new Float32Array(r.M * r.K).map((_, i) => ((i % 7) - 3) / 7),
      ),
    };
    for (let i = 0; i < 2; i++) await sess.run(feeds);
    const ms: number[] = [];
    for (let i = 0; i < 7; i++) {
      const t = performance.now();
      await sess.run(feeds);
      ms.push(performance.now() - t);
    }
    await sess.dispose();
    ms.sort((x, y) => x - y);
    const plain = (2 * r.M * r.K * r.N) / (ms[0] / 1000) / 1e9;
    const inStep = r.flops / r.us / 1e3;
    console.log(
      `  [${r.M}x${r.K}]@[${r.K}x${r.N}] x${r.n / runs} a step: ${(r.us / runs / 1000).toFixed(1)} ms, ${inStep.toFixed(0)} GFLOP/s in the step; plain MatMul ${ms[0].toFixed(1)} ms (fastest of 7), ${plain.toFixed(0)} GFLOP/s: ${(inStep / plain).toFixed(2)}x`,
    );
  }
}

mkdirSync(tmpdir(), { recursive: true });
await main();
