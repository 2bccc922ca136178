// Child process of memory-measured.test.ts: trains a few steps with the VLM trainer and prints one JSON line with
// this process's peak RSS (VmHWM) and the estimate Lenslab shows before the run. Its own process, so the RSS is the
// run's alone.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { vlmTrainerModule } from '../../src-main/training/vlm-trainer';

const input = JSON.parse(process.argv[2]) as {
  model: string;
  data: string;
  quantizeBase: string;
  steps: number;
  batchSize: number;
};
const config = {
  model: input.model,
  data: { file: input.data },
  provider: 'cpu',
  hparams: {
    method: 'lora',
    rank: 8,
    alpha: 16,
    maxSteps: input.steps,
    batchSize: input.batchSize,
    saveEvery: 0,
    evalEvery: 0,
    quantizeBase: input.quantizeBase,
  },
  eval: { maxItems: 1 },
};
const check = vlmTrainerModule.validateConfig(config);
const out = mkdtempSync(join(tmpdir(), 'lenslab-mem-run-'));
const logs: string[] = [];
const trainer = vlmTrainerModule.createTrainer(config, { outDir: out, log: (l: string) => logs.push(l) });
const hwm = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;
await trainer.init(null);
const afterInit = { hwm: hwm(), rss: process.memoryUsage().rss };
const losses: number[] = [];
for (let i = 0; i < input.steps; i++) losses.push((await trainer.trainStep()).loss);
await trainer.dispose?.();
rmSync(out, { recursive: true, force: true });
const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
process.stdout.write(
  `${JSON.stringify({ peakRss: Number(m![1]) * 1024, estimate: check.memory!.breakdown.total, breakdown: check.memory!.breakdown, losses, logs, afterInit })}\n`,
);
