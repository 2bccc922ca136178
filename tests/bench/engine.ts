// npm run bench:engine [-- --steps N --warmup N --rounds N --threads N --opt all|extended|basic|disabled --skip-torch
//                         --torch-coretype Haswell|SkylakeX|Zen --profile
//                         --B 4 --T 128 --D 768 --heads 12 --kv 4 --ffn 2048 --vocab 1024 --rank 16]
// npm run bench:engine -- --provider webgpu …: the step on an accelerator, resident vs copied (engine-device.ts)
//
// Step time of a transformer-block LoRA training step (B4, T128, D768, rank 16 by default) in Lenslab (ONNX Runtime,
// our autodiff + AdamW in one graph) and in PyTorch (Debian torch 1.13, same threads, same shapes, same maths:
// tests/bench/engine_torch.py), measured in the same run and interleaved (the machine is shared). Prints both, the
// ratio, and achieved GFLOP/s against an estimate of this CPU's peak.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { Graph } from '../../src-main/engine/graph/builder';
import { serializeModel } from '../../src-main/engine/graph/serialize';
import { Session } from '../../src-main/engine/runtime/session';
import { StepExecutor } from '../../src-main/engine/runtime/step-executor';
import { tensor } from '../../src-main/engine/runtime/tensor';
import { blockFeeds, blockForward, blockParams, blockTensors, type BlockConfig } from '../engine/block';
import { torchBlasWarning } from './torch-blas';

const args = process.argv.slice(2);
function arg(name: string, dflt: number): number {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
}
function flag(name: string): string | null {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : null;
}

const cfg: BlockConfig = {
  B: arg('B', 4),
  T: arg('T', 128),
  D: arg('D', 768),
  heads: arg('heads', 12),
  kv_heads: arg('kv', 4),
  ffn: arg('ffn', 2048),
  vocab: arg('vocab', 1024),
  rank: arg('rank', 16),
  lora_alpha: 32,
  rms_eps: 1e-6,
  rope_theta: 10000,
};
const threads = arg('threads', cpus().length);
const steps = arg('steps', 10);
const warmup = arg('warmup', 2);
const rounds = arg('rounds', 2);
const optimization = (flag('opt') ?? 'all') as 'disabled' | 'basic' | 'extended' | 'all';

/** Multiply-add FLOPs (2 per MAC) of one training step: forward, activation gradients through frozen weights,
 *  LoRA weight gradients; attention products; elementwise work ignored. */
function stepFlops(c: BlockConfig): { total: number; forward: number } {
  const N = c.B * c.T;
  const hd = c.D / c.heads;
  const qd = c.heads * hd;
  const kvd = c.kv_heads * hd;
  const lin = (i: number, o: number) => 2 * N * i * o;
  const lora = (i: number, o: number) => lin(i, c.rank) + lin(c.rank, o);
  const frozen = lin(c.D, qd) + 2 * lin(c.D, kvd) + lin(qd, c.D) + 3 * lin(c.D, c.ffn) + lin(c.D, c.vocab);
  const loras = lora(c.D, qd) + 2 * lora(c.D, kvd) + lora(qd, c.D);
  const attn = 2 * (2 * c.B * c.heads * c.T * c.T * hd); // QK^T and PV
  const forward = frozen + loras + attn;
  // backward: dX through every product (frozen weights: no dW), dA/dB of LoRA (~ lora cost), attention: dQ dK dP dV
  const backward = frozen + loras + loras + 2 * attn;
  return { total: forward + backward, forward };
}

/** Peak FP32 FLOP/s: cores x clock x SIMD lanes x 2 (FMA) x 2 FMA pipes (assumed, true for recent x86 cores). */
function peakEstimate(): { gflops: number; how: string } {
  const info = readFileSync('/proc/cpuinfo', 'utf8');
  const flags = /^flags\s*:(.*)$/m.exec(info)?.[1] ?? '';
  const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(info)?.[1] ?? '0');
  const model = /^model name\s*:\s*(.*)$/m.exec(info)?.[1] ?? '?';
  const lanes = /\bavx512f\b/.test(flags) ? 16 : /\bavx2\b/.test(flags) ? 8 : 4;
  const fmaPipes = 2;
  const cores = cpus().length;
  const gflops = (cores * mhz * lanes * 2 * fmaPipes) / 1000;
  return {
    gflops,
    how: `${cores} cores x ${(mhz / 1000).toFixed(2)} GHz (/proc/cpuinfo, base; boost may be higher) x ${lanes} fp32 lanes (${lanes === 16 ? 'avx512f' : lanes === 8 ? 'avx2' : 'sse'}) x 2 (FMA) x ${fmaPipes} FMA pipes [${model}]`,
  };
}

/** A plain ORT GEMM rate on this machine now ([B*T, D] @ [D, ffn]), as a practical ceiling. */
async function gemmRate(): Promise<number> {
  const M = cfg.B * cfg.T,
    K = cfg.D,
    N = cfg.ffn;
  const g = new Graph('gemm');
  const a = g.input('a', 'float32', [M, K]);
  const b = g.initializer(
    'b',
    'float32',
    [K, N],
    new Float32Array(K * N).map((_, i) => ((i % 13) - 6) / 13),
  );
  g.output(g.op1('MatMul', [a, b]), 'y');
  const s = await Session.create(serializeModel(g).model, { threads });
  const feeds = {
    a: tensor(
      'float32',
      [M, K],
      new Float32Array(M * K).map((_, i) => ((i % 7) - 3) / 7),
    ),
  };
  for (let i = 0; i < 3; i++) await s.run(feeds);
  let best = Infinity;
  for (let r = 0; r < 5; r++) {
    const t = performance.now();
    for (let i = 0; i < 5; i++) await s.run(feeds);
    best = Math.min(best, (performance.now() - t) / 5);
  }
  await s.dispose();
  return (2 * M * K * N) / (best / 1000) / 1e9;
}

async function lenslabRun(): Promise<{ ms: number[]; losses: number[]; dataMs: number; sessionMs: number }> {
  const t0 = performance.now();
  const tensors = blockTensors(cfg, 0, 0.02);
  const params = blockParams(cfg);
  const t1 = performance.now();
  const ex = await StepExecutor.create(
    {
      params,
      forward: (g, p) => blockForward(g, cfg, p, tensors.frozen),
      adamw: { weightDecay: 0.01 },
      clipNorm: 1,
      session: { threads, optimization },
    },
    tensors.init,
  );
  const t2 = performance.now();
  const feeds = blockFeeds(cfg, tensors);
  const ms: number[] = [];
  const losses: number[] = [];
  for (let i = 0; i < warmup + steps; i++) {
    const t = performance.now();
    const r = await ex.step(feeds, 1e-4);
    const dt = performance.now() - t;
    losses.push(r.loss);
    if (i >= warmup) ms.push(dt);
  }
  await ex.dispose();
  return { ms, losses, dataMs: t1 - t0, sessionMs: t2 - t1 };
}

/** OpenBLAS kernel for PyTorch: --torch-coretype X, else SkylakeX (AVX-512) on AVX-512 CPUs (its fastest here; the
 *  environment's OPENBLAS_CORETYPE=Haswell is 2-3x slower), else what the environment says. */
function torchCoretype(): string {
  const forced = flag('torch-coretype');
  if (forced) return forced;
  if (/\bavx512f\b/.test(readFileSync('/proc/cpuinfo', 'utf8'))) return 'SkylakeX';
  return process.env.OPENBLAS_CORETYPE ?? '';
}

/** --profile: ORT per-op profile of a few fused steps. The sum over nodes of each node's fastest kernel time is an
 *  estimate of the step time without contention from other processes on this shared machine. */
async function profileRun(): Promise<void> {
  const ort = await import('onnxruntime-node');
  const { buildTrainStep, stepNames } = await import('../../src-main/engine/programs/train-step');
  const dir = mkdtempSync(join(tmpdir(), 'lenslab-prof-'));
  const t = blockTensors(cfg, 0, 0.02);
  const params = blockParams(cfg);
  const prog = buildTrainStep({ params, forward: (g, p) => blockForward(g, cfg, p, t.frozen), clipNorm: 1 });
  const s = await ort.InferenceSession.create(serializeModel(prog.graph).model, {
    intraOpNumThreads: threads,
    graphOptimizationLevel: optimization,
    enableProfiling: true,
    profileFilePrefix: join(dir, 'prof'),
  });
  const feeds: Record<string, ReturnType<typeof tensor>> = {
    ...blockFeeds(cfg, t),
    lr: tensor('float32', [], [1e-4]),
    step: tensor('float32', [], [1]),
  };
  for (const p of params) {
    feeds[stepNames.param(p.name)] = tensor('float32', p.shape, t.init[p.name]);
    feeds[stepNames.m(p.name)] = tensor('float32', p.shape);
    feeds[stepNames.v(p.name)] = tensor('float32', p.shape);
  }
  for (let i = 0; i < 8; i++) await s.run(feeds);
  await (s as unknown as { endProfiling(): Promise<void> }).endProfiling();
  const file = readdirSync(dir).find((f) => f.startsWith('prof'))!;
  const events = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
    cat: string;
    name: string;
    dur: number;
    args: { op_name: string };
  }[];
  rmSync(dir, { recursive: true, force: true });
  const nodes = new Map<string, { op: string; min: number }>();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
    const n = nodes.get(e.name);
    if (!n) nodes.set(e.name, { op: e.args.op_name, min: e.dur });
    else n.min = Math.min(n.min, e.dur);
  }
  const byOp = new Map<string, number>();
  let total = 0;
  for (const n of nodes.values()) {
    byOp.set(n.op, (byOp.get(n.op) ?? 0) + n.min);
    total += n.min;
  }
  console.log(
    `profile: ${nodes.size} kernels; sum of per-kernel fastest times ${(total / 1000).toFixed(1)} ms/step (${(stepFlops(cfg).total / (total / 1e6) / 1e9).toFixed(0)} GFLOP/s) = uncontended estimate`,
  );
  console.log(
    '  ' +
      [...byOp]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 10)
        .map(([op, us]) => `${op} ${(us / 1000).toFixed(1)}`)
        .join(', ') +
      ' (ms)',
  );
  await s.release();
}

function torchRun(): { ms: number[]; losses: number[]; blas: string; threads: number; torch: string } {
  const script = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, 'engine_torch.py');
  const env = { ...process.env };
  const ct = torchCoretype();
  if (ct) env.OPENBLAS_CORETYPE = ct;
  else delete env.OPENBLAS_CORETYPE;
  const res = spawnSync(
    '/usr/bin/python3',
    [script, JSON.stringify({ ...cfg, init_scale: 0.02, threads, steps, warmup })],
    { encoding: 'utf8', maxBuffer: 1 << 24, env },
  );
  if (res.status !== 0) throw new Error(`PyTorch bench failed: ${res.stderr || res.error}`);
  return JSON.parse(res.stdout.trim().split('\n').pop()!);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main() {
  const flops = stepFlops(cfg);
  const peak = peakEstimate();
  console.log(
    `bench:engine  LoRA transformer-block training step  B${cfg.B} T${cfg.T} D${cfg.D} heads ${cfg.heads}/${cfg.kv_heads} ffn ${cfg.ffn} vocab ${cfg.vocab} rank ${cfg.rank}`,
  );
  console.log(
    `threads ${threads}, ${steps} timed steps after ${warmup} warm-up, ${rounds} interleaved rounds, ORT optimization '${optimization}'`,
  );
  console.log(`work per step: ${(flops.total / 1e9).toFixed(2)} GFLOP (forward ${(flops.forward / 1e9).toFixed(2)})`);
  const L: number[] = [];
  const P: number[] = [];
  let torchInfo = { blas: '?', torch: '?', threads: 0 };
  let lensInfo = { dataMs: 0, sessionMs: 0 };
  let lossCheck = '';
  for (let r = 0; r < rounds; r++) {
    const a = await lenslabRun();
    const b = args.includes('--skip-torch')
      ? { ms: [NaN], losses: [NaN], blas: '-', threads: 0, torch: 'skipped' }
      : torchRun();
    L.push(...a.ms);
    P.push(...b.ms);
    torchInfo = b;
    lensInfo = a;
    lossCheck = `losses decrease over the timed steps: Lenslab ${a.losses[0].toFixed(4)} -> ${a.losses.at(-1)!.toFixed(4)}, PyTorch ${b.losses[0].toFixed(4)} -> ${b.losses.at(-1)!.toFixed(4)} (different random data; correctness is pinned by tests/engine fixtures)`;
  }
  const gemm = await gemmRate();
  if (args.includes('--profile')) await profileRun();
  const lm = median(L);
  const pm = median(P);
  const gf = (ms: number) => flops.total / (ms / 1000) / 1e9;
  console.log(lossCheck);
  console.log(`times: median (min) per step over ${L.length} steps each`);
  console.log(
    `Lenslab (onnxruntime-node ${(await import('onnxruntime-node')).env.versions.common}): median ${lm.toFixed(1)} ms/step (min ${Math.min(...L).toFixed(1)}), ${gf(lm).toFixed(1)} GFLOP/s; graph build + autodiff + serialize + ORT session ${lensInfo.sessionMs.toFixed(0)} ms`,
  );
  const blasWarning = torchBlasWarning();
  if (!Number.isFinite(pm)) console.log('PyTorch skipped (--skip-torch)');
  else if (blasWarning) console.log(blasWarning);
  if (Number.isFinite(pm))
    console.log(
      `PyTorch ${torchInfo.torch} (${torchInfo.threads} threads, BLAS ${torchInfo.blas}, OPENBLAS_CORETYPE=${torchCoretype() || 'auto'}): median ${pm.toFixed(1)} ms/step (min ${Math.min(...P).toFixed(1)}), ${gf(pm).toFixed(1)} GFLOP/s`,
    );
  if (Number.isFinite(pm))
    console.log(
      `ratio Lenslab/PyTorch step time: ${(lm / pm).toFixed(2)}x of medians, ${(Math.min(...L) / Math.min(...P)).toFixed(2)}x of minimums  (${lm < pm ? 'Lenslab faster' : 'PyTorch faster'})`,
    );
  console.log(`peak estimate ${peak.gflops.toFixed(0)} GFLOP/s = ${peak.how}`);
  console.log(
    `achieved (median; best step in brackets): Lenslab ${((100 * gf(lm)) / peak.gflops).toFixed(1)}% of peak [${((100 * gf(Math.min(...L))) / peak.gflops).toFixed(1)}%], PyTorch ${((100 * gf(pm)) / peak.gflops).toFixed(1)}% [${((100 * gf(Math.min(...P))) / peak.gflops).toFixed(1)}%]; plain ORT GEMM [${cfg.B * cfg.T}x${cfg.D}]@[${cfg.D}x${cfg.ffn}] now: ${gemm.toFixed(1)} GFLOP/s (${((100 * gemm) / peak.gflops).toFixed(1)}%)`,
  );
  console.log(
    `load average during run: ${(await import('node:os'))
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')} (the machine is shared; figures are noisy)`,
  );
}

const providerArg = flag('provider');
(providerArg && providerArg !== 'cpu'
  ? import('./engine-device').then((m) => m.deviceBench(providerArg as 'webgpu' | 'cuda'))
  : main()
).catch((e) => {
  console.error(e);
  process.exit(1);
});
