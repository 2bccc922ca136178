// Benchmark: opening a generator for successive checkpoints of one training run (same adapter structure, other
// values), as evaluation during training and chats with a run's checkpoints do. Into an empty graph cache:
//   base    createGenerator with no adapter (compiles the base graphs)
//   ckpt 1  createGenerator with the first checkpoint
//   ckpt 2  createGenerator with a second checkpoint of the same structure
// Each line: wall time of createGenerator (decoder + vision graphs compiled or loaded, sessions opened) + one short
// greedy generation, and the graph cache's growth. With the adapter as graph inputs, ckpt 2 is a cache hit and adds
// nothing to the cache; with the adapter merged into the weights (before), every checkpoint compiled and stored its own
// graphs (a full copy of the weights). Run it in an older checkout for the "before" figures.
// Model: the 0.5B random LLaVA written by bench:generate (<os tmp>/lenslab-bench-generate/half-b) when present, else
// the demo model; --model <dir> picks another.
//
//   npm run bench:generate-adapter [-- --model <dir> --rank 8]
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadHfFolder } from '../../src-main/models/hf-folder';
import { createGenerator } from '../../src-main/models/generate';
import { writeTinyLlava } from '../../src-main/models/demo/tiny-llava';
import {
  loadAdapter,
  projectorParams,
  resolveLoraModules,
  saveAdapter,
  targetModulesRegex,
  type LoraSpec,
} from '../../src-main/models/peft';
import type { LlavaModelConfig } from '../../src-main/models/config';

const args = process.argv.slice(2);
const opt = (name: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const ROOT = join(tmpdir(), 'lenslab-bench-generate');
let modelDir = opt('model') ?? join(ROOT, 'half-b');
if (!existsSync(join(modelDir, 'config.json'))) {
  modelDir = join(tmpdir(), 'lenslab-bench-generate-adapter', 'demo');
  if (!existsSync(join(modelDir, 'config.json'))) writeTinyLlava(modelDir, 1);
}
const work = join(tmpdir(), 'lenslab-bench-generate-adapter', `run-${process.pid}`);
const cacheDir = join(work, 'cache');
rmSync(work, { recursive: true, force: true });
mkdirSync(cacheDir, { recursive: true });

function dirBytes(dir: string): number {
  let n = 0;
  for (const f of readdirSync(dir, { withFileTypes: true }))
    n += f.isDirectory() ? dirBytes(join(dir, f.name)) : statSync(join(dir, f.name)).size;
  return n;
}
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

const model = loadHfFolder(modelDir);
const cfg = model.config as LlavaModelConfig;
const r = Number(opt('rank') ?? 8);
const spec: LoraSpec = {
  mode: 'lora+projector',
  r,
  alpha: 2 * r,
  dropout: 0,
  targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  includeVision: false,
  useRslora: false,
};

/** A checkpoint of the run: small random LoRA matrices and a perturbed projector, as a PEFT folder. */
function checkpoint(k: number): string {
  let s = 12345 + k;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.02;
  const lora = new Map<string, { a: Float32Array; b: Float32Array }>();
  for (const m of resolveLoraModules(cfg, targetModulesRegex(cfg, spec)))
    lora.set(m.module, {
      a: Float32Array.from({ length: r * m.inFeatures }, rnd),
      b: Float32Array.from({ length: m.outFeatures * r }, rnd),
    });
  const saved = new Map(projectorParams(cfg).map((n) => [n, model.weights.get(n).map((x) => x + rnd())]));
  const dir = join(work, `checkpoint-${k}`);
  saveAdapter(dir, cfg, spec, lora, saved);
  return dir;
}

const messages = [{ role: 'user', content: 'What shapes are in the picture?' }];
const image = {
  data: new Uint8Array(cfg.vision.imageSize * cfg.vision.imageSize * 3).fill(128),
  width: cfg.vision.imageSize,
  height: cfg.vision.imageSize,
};

async function open(label: string, adapterDir: string | null): Promise<number> {
  const adapter = adapterDir ? loadAdapter(adapterDir, cfg) : null;
  const before = dirBytes(cacheDir);
  const t0 = performance.now();
  const g = await createGenerator(model, adapter, { cacheDir });
  const tOpen = performance.now() - t0;
  const t1 = performance.now();
  await g.generate({ image, messages }, { maxNewTokens: 4 });
  const tGen = performance.now() - t1;
  await g.dispose();
  console.log(
    `${label.padEnd(8)} createGenerator ${(tOpen / 1000).toFixed(2).padStart(7)} s   generate 4 tokens ${(tGen / 1000).toFixed(2).padStart(6)} s   cache +${mib(dirBytes(cacheDir) - before)}`,
  );
  return tOpen;
}

console.log(
  `model ${modelDir} (${cfg.text.numHiddenLayers} layers, hidden ${cfg.text.hiddenSize}), LoRA r=${r} on ${spec.targets.join(',')} + projector`,
);
const c1 = checkpoint(1);
const c2 = checkpoint(2);
await open('base', null);
const t1 = await open('ckpt 1', c1);
const t2 = await open('ckpt 2', c2);
console.log(`createGenerator, second checkpoint / first (baseline, compiles): ${(t2 / t1).toFixed(3)}`);
model.close();
rmSync(work, { recursive: true, force: true });
