// 'auto' provider choice by measurement: a GPU provider is used only where one step of the actual program ran faster
// on it than on the CPU, on this machine, for this model. Integrated GPUs, software Vulkan devices (llvmpipe) and small
// models are often slower than a good CPU path, so presence alone decides nothing.
//
// The probe (given by the caller: it builds and times its own program on a provider) runs on the CPU and on every GPU
// provider this onnxruntime-node build can use (CUDA with its libraries installed; WebGPU where an adapter answers),
// and the verdict is cached in <cacheDir>/provider-choice.json under (machine, onnxruntime version, program key): a
// later run of the same model on the same machine pays nothing. A probe that fails (no adapter, driver refused)
// rules that provider out with its reason.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { cpus, hostname } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { writeFileAtomic, writeAll } from '../../util/atomic-write';
import { stableStringify } from './cache';
import { providerInstalled, type Provider } from './session';

export interface ProviderChoice {
  provider: Provider;
  /** Why, in words the Train view and Chat show ("auto: webgpu 31 ms/step vs cpu 2.1 ms/step, cpu is faster"). */
  reason: string;
  /** Measured ms per step by provider (probe runs only). */
  measured: Partial<Record<Provider, number>>;
  /** The verdict came from the cache file. */
  cached: boolean;
}

/** Times one step of the caller's program on `provider` (ms); throws when the provider cannot run it. */
export type ProviderProbe = (provider: Provider) => Promise<number>;

const FILE = 'provider-choice.json';

let webgpuUsable: Promise<string | null> | null = null;

/** null when a WebGPU adapter runs a tiny graph here, else the reason it does not (checked once per process). */
export function webgpuUnavailable(): Promise<string | null> {
  return (webgpuUsable ??= (async () => {
    if (!ort.listSupportedBackends().some((b) => b.name === 'webgpu'))
      return 'this onnxruntime-node build has no WebGPU provider';
    try {
      // a one-node model (Identity of a float input), written by hand: no engine import cycle
      const { Graph } = await import('../graph/builder');
      const { serializeModel } = await import('../graph/serialize');
      const g = new Graph('probe');
      g.output(g.op1('Identity', [g.input('x', 'float32', [1])]), 'y');
      const s = await ort.InferenceSession.create(serializeModel(g).model, {
        executionProviders: ['webgpu'],
        logSeverityLevel: 4,
      });
      await s.run({ x: new ort.Tensor('float32', new Float32Array([1]), [1]) });
      await s.release();
      return null;
    } catch (e) {
      return `no usable WebGPU adapter (${(e as Error).message.split('\n')[0]})`;
    }
  })());
}

/** GPU providers worth probing here, and why the others are not. */
export async function gpuCandidates(
  installed: (p: Provider) => boolean = (p) => providerInstalled(p),
): Promise<{ candidates: Provider[]; skipped: string[] }> {
  const candidates: Provider[] = [];
  const skipped: string[] = [];
  if (installed('cuda')) candidates.push('cuda');
  else skipped.push('cuda: provider libraries not installed');
  const w = await webgpuUnavailable();
  if (w === null) candidates.push('webgpu');
  else skipped.push(`webgpu: ${w}`);
  return { candidates, skipped };
}

/** This machine and runtime, for the cache key (a new GPU driver is not seen: delete the file to measure again). */
function machineKey(): unknown {
  return {
    host: hostname(),
    cpu: cpus()[0]?.model ?? '?',
    cores: cpus().length,
    ort: ort.env.versions.common,
    platform: `${process.platform}-${process.arch}`,
  };
}

function readCache(path: string): Record<string, ProviderChoice> {
  try {
    const j = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    return j && typeof j === 'object' ? (j as Record<string, ProviderChoice>) : {};
  } catch {
    return {};
  }
}

export interface ChooseOptions {
  /** Identifies the program (model, shapes, method): the verdict is cached per machine and key. */
  key: unknown;
  /** Where provider-choice.json lives (the graph cache folder); no caching without it. */
  cacheDir?: string;
  probe: ProviderProbe;
  /** Override the candidate list (tests). */
  candidates?: Provider[];
}

/** The provider 'auto' means for this program here: the fastest measured, the CPU unless a GPU beat it. */
export async function chooseProvider(o: ChooseOptions): Promise<ProviderChoice> {
  const id = createHash('sha256')
    .update(stableStringify({ machine: machineKey(), key: o.key }))
    .digest('hex')
    .slice(0, 32);
  const path = o.cacheDir ? join(o.cacheDir, FILE) : null;
  if (path && existsSync(path)) {
    const hit = readCache(path)[id];
    if (hit && typeof hit.provider === 'string' && typeof hit.reason === 'string') return { ...hit, cached: true };
  }
  const found = o.candidates ? { candidates: o.candidates, skipped: [] as string[] } : await gpuCandidates();
  let choice: ProviderChoice;
  if (found.candidates.length === 0) {
    choice = {
      provider: 'cpu',
      reason: `auto: no GPU provider usable here (${found.skipped.join('; ')})`,
      measured: {},
      cached: false,
    };
  } else {
    const measured: Partial<Record<Provider, number>> = {};
    const failed: string[] = [];
    measured.cpu = await o.probe('cpu');
    for (const p of found.candidates) {
      try {
        measured[p] = await o.probe(p);
      } catch (e) {
        failed.push(`${p}: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    let best: Provider = 'cpu';
    for (const [p, ms] of Object.entries(measured) as [Provider, number][]) if (ms < measured[best]!) best = p;
    const fmt = (p: Provider) =>
      `${p} ${measured[p]! < 10 ? measured[p]!.toFixed(1) : Math.round(measured[p]!)} ms/step`;
    const list = (Object.keys(measured) as Provider[]).map(fmt).join(' vs ');
    choice = {
      provider: best,
      reason: `auto: measured ${list}; ${best === 'cpu' ? 'the CPU is fastest here' : `${best} is fastest`}${failed.length ? ` (${failed.join('; ')})` : ''}`,
      measured,
      cached: false,
    };
  }
  if (path) {
    try {
      mkdirSync(o.cacheDir!, { recursive: true });
      const all = readCache(path);
      all[id] = { ...choice, cached: false };
      const bytes = Buffer.from(JSON.stringify(all, null, 1));
      writeFileAtomic(path, (fd) => writeAll(fd, bytes, 0));
    } catch {
      /* the verdict still holds for this run; it is measured again next time */
    }
  }
  return choice;
}
