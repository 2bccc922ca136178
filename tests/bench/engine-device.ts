// npm run bench:engine -- --provider webgpu [--steps N --warmup N --B 2 --T 32 --D 128 --heads 4 --kv 2 --ffn 256
//                                             --vocab 256 --rank 8]
//
// The LoRA transformer-block step of bench:engine on an accelerator provider, two ways, with the CPU in the same run:
//   resident  parameters, AdamW moments stay in device memory between steps (gpu-buffer outputs fed back); only the
//             data goes up and the loss / grad norm come down
//   copied    every output comes to the host and is fed back from there (what a plain ORT session does: the state
//             crosses the bus twice per step)
// Prints step times and the bytes crossing between host and device per step (SplitSession counts every CPU tensor fed
// to the device session and every CPU-bound output). On llvmpipe (a CPU Vulkan device) only the byte counts mean
// anything. For CUDA, the copied path is the one that exists today: its bytes per step are printed, and the share of a
// step spent copying needs a machine with a GPU (the copy time is bytes / PCIe bandwidth, the step time from this bench).

import { cpus } from 'node:os';
import { StepExecutor } from '../../src-main/engine/runtime/step-executor';
import type { Provider } from '../../src-main/engine/runtime/session';
import { blockFeeds, blockForward, blockParams, blockTensors, type BlockConfig } from '../engine/block';

const args = process.argv.slice(2);
function arg(name: string, dflt: number): number {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
}

export async function deviceBench(provider: Provider): Promise<void> {
  const cfg: BlockConfig = {
    B: arg('B', 2),
    T: arg('T', 32),
    D: arg('D', 128),
    heads: arg('heads', 4),
    kv_heads: arg('kv', 2),
    ffn: arg('ffn', 256),
    vocab: arg('vocab', 256),
    rank: arg('rank', 8),
    lora_alpha: 16,
    rms_eps: 1e-6,
    rope_theta: 10000,
  };
  const steps = arg('steps', 10);
  const warmup = arg('warmup', 2);
  const threads = arg('threads', cpus().length);
  const tensors = blockTensors(cfg, 0, 0.02);
  const params = blockParams(cfg);
  const feeds = blockFeeds(cfg, tensors);
  const stateBytes = params.reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1) * 4, 0) * 3;
  const dataBytes = Object.values(feeds).reduce(
    (a, t) => a + t.dims.reduce((x, y) => x * y, 1) * (t.type === 'int64' ? 8 : 4),
    0,
  );
  console.log(
    `bench:engine --provider ${provider}  LoRA block step B${cfg.B} T${cfg.T} D${cfg.D} heads ${cfg.heads}/${cfg.kv_heads} ffn ${cfg.ffn} vocab ${cfg.vocab} rank ${cfg.rank}; ${steps} timed steps after ${warmup}`,
  );
  console.log(`trainable state (params + AdamW m, v): ${stateBytes} bytes; data feeds: ${dataBytes} bytes per step`);
  const run = async (p: Provider, keepOnDevice: boolean) => {
    const ex = await StepExecutor.create(
      {
        params,
        forward: (g, pp) => blockForward(g, cfg, pp, tensors.frozen),
        adamw: { weightDecay: 0.01 },
        clipNorm: 1,
        keepOnDevice,
        session: { provider: p, threads },
      },
      tensors.init,
    );
    const ms: number[] = [];
    let first = 0;
    let last = 0;
    for (let i = 0; i < warmup + steps; i++) {
      const t = performance.now();
      const r = await ex.step(feeds, 1e-4);
      if (i >= warmup) ms.push(performance.now() - t);
      if (i === 0) first = r.loss;
      last = r.loss;
    }
    const tr = ex.transfer();
    const ran = ex.provider;
    await ex.dispose();
    ms.sort((a, b) => a - b);
    return { median: ms[ms.length >> 1], min: ms[0], tr, first, last, ran };
  };
  const cpu = await run('cpu', true);
  console.log(
    `cpu                  median ${cpu.median.toFixed(1)} ms/step (min ${cpu.min.toFixed(1)}); loss ${cpu.first.toFixed(4)} -> ${cpu.last.toFixed(4)}`,
  );
  // CUDA sessions are plain ORT sessions (no gpu-buffer outputs in onnxruntime-node): only the copied path exists
  for (const keep of provider === 'webgpu' ? [true, false] : [false]) {
    const r = await run(provider, keep);
    const per = (x: number) => (r.tr ? (x / r.tr.runs).toFixed(0) : '-');
    console.log(
      `${provider} ${keep ? 'resident' : 'copied  '}      median ${r.median.toFixed(1)} ms/step (min ${r.min.toFixed(1)}); ran on ${r.ran}; ` +
        `host->device ${per(r.tr?.toDevice ?? 0)} B/step, device->host ${per(r.tr?.fromDevice ?? 0)} B/step; loss ${r.first.toFixed(4)} -> ${r.last.toFixed(4)}`,
    );
  }
  console.log(
    `copied moves the state both ways every step (${stateBytes} B each way beyond the data); resident moves the data up and ~12 B of scalars down`,
  );
  if (provider === 'cuda')
    console.log(
      `CUDA: the copy share of a step is about (bytes up + down) / the PCIe bandwidth (~12 GB/s for PCIe 3 x16) over the step time above; with a GPU, rerun to judge a native IoBinding path`,
    );
}
