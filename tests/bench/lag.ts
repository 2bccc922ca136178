// Benchmark: the main (backend) process's event-loop lag while a training run is going (it should stay under
// 50 ms). The backend is created in this process as `lenslab serve` creates it (createBackend, host 'serve', the
// HTTP + WebSocket server in front of it), and a WebSocket client subscribes to the events it forwards, reacting to
// them as the renderer's runs store does (runs.status → runs.get). Measured with
// perf_hooks.monitorEventLoopDelay({resolution: 10}) over three windows of the same run:
//   training  a short LoRA run on the demo model (its own job process), from runs.start until it completes
//             (cancelled after --max-seconds)
//   idle      the baseline: the same backend, server and client doing nothing, for as long as the training window
//   chat      (optional) one chat.generate on the demo model streaming chat.token events (model load included)
// The histogram's values include the 10 ms sampling interval itself: an idle loop reads about 10 ms, and a stall
// of the loop adds to that.
//
//   npm run bench:lag [-- --steps 1500 --batch 4 --items 24 --max-seconds 60 --no-chat --trace --keep]
// (--trace lists each stall over 50 ms with the event the client saw last; --keep leaves the data folder;
// --items: demo dataset size: runs.start's check renders and tokenizes every item, e.g. --items 3000.)
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { createBackend } from '../../src-main/services/backend';
import { startServer } from '../../src-main/transport/serve/server';
import { imageName, writeDemoDataset } from '../../src-main/models/demo/dataset';
import type { MethodName, Params, Result } from '../../src-main/contract/index';

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '1500' },
    items: { type: 'string', default: '24' },
    batch: { type: 'string', default: '4' },
    'max-seconds': { type: 'string', default: '60' },
    'no-chat': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    trace: { type: 'boolean', default: false },
  },
});
const STEPS = Number(values.steps);
const BATCH = Number(values.batch);
const MAX_MS = Number(values['max-seconds']) * 1000;
const RESOLUTION_MS = 10;
const TARGET_MS = 50;

const t0 = performance.now();
const say = (s = '') => process.stdout.write(`${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------ backend + server + a client, as serve mode runs

const dataDir = mkdtempSync(join(tmpdir(), 'lenslab-bench-lag-'));
const backend = createBackend({ dataDir, host: 'serve', log: { error: () => {}, warn: () => {} } });
const server = await startServer({ backend, staticDir: join(dataDir, 'no-renderer') });

/** A UI-like client: one WebSocket carrying requests and the forwarded events. */
class Client {
  private next = 1;
  private pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private listeners = new Set<(event: string, payload: any) => void>();
  readonly counts = new Map<string, number>();
  private constructor(private ws: WebSocket) {
    ws.on('message', (data) => {
      const m = JSON.parse(String(data));
      if (typeof m.event === 'string') {
        lastSeen = `${m.event} ${JSON.stringify(m.payload).slice(0, 60)}`;
        this.counts.set(m.event, (this.counts.get(m.event) ?? 0) + 1);
        for (const l of this.listeners) l(m.event, m.payload);
        return;
      }
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.error)
        p.reject(new Error(`${m.error.code}: ${m.error.message}${m.error.field ? ` (${m.error.field})` : ''}`));
      else p.resolve(m.result);
    });
  }
  static open(url: string): Promise<Client> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.once('open', () => resolve(new Client(ws)));
      ws.once('error', reject);
    });
  }
  call<M extends MethodName>(method: M, params: Params<M>): Promise<Result<M>> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }
  on(fn: (event: string, payload: any) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
  close(): void {
    this.ws.close();
  }
}
const client = await Client.open(`ws://127.0.0.1:${server.port}/ws?token=${server.token}`);

// ------------------------------------------------------------------ measuring

interface Window {
  name: string;
  ms: number;
  count: number;
  p50: number;
  p99: number;
  max: number;
  note: string;
}
/** --trace: stalls of the loop over the target, with what the client last saw before each. */
let lastSeen = '';
const stalls: string[] = [];
function startWindow(name: string): { h: IntervalHistogram; t: number; probe: NodeJS.Timeout } {
  const h = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  h.enable();
  const t = performance.now();
  let prev = t;
  const probe = setInterval(() => {
    const now = performance.now();
    if (now - prev > TARGET_MS)
      stalls.push(
        `${name.padEnd(16)} +${((prev - t) / 1000).toFixed(2)} s  ${(now - prev).toFixed(0)} ms  after ${lastSeen}`,
      );
    prev = now;
  }, 5);
  if (!values.trace) clearInterval(probe);
  return { h, t, probe };
}
function endWindow(w: { h: IntervalHistogram; t: number; probe: NodeJS.Timeout }, name: string, note = ''): Window {
  clearInterval(w.probe);
  w.h.disable();
  const ms = (ns: number) => ns / 1e6;
  return {
    name,
    ms: performance.now() - w.t,
    count: w.h.count,
    p50: ms(w.h.percentile(50)),
    p99: ms(w.h.percentile(99)),
    max: ms(w.h.max),
    note,
  };
}

// ------------------------------------------------------------------ setup: demo model, demo dataset, split, plan

const demo = await client.call('models.installDemo', {});
const src = join(dataDir, 'demo-src');
await writeDemoDataset(src, { seed: 5, count: Number(values.items), families: ['colors'] });
const imp = await client.call('datasets.import', { path: join(src, 'llava.json'), dataset: 'icons' });
await client.call('datasets.split', { datasetId: imp.datasetId, seed: 0, train: 0.75, val: 0.25, test: 0 });
const model = { id: demo.model.id };
const data = { datasetId: imp.datasetId, trainSplit: 'train' as const, evalSplit: 'val' as const };
const hparams = {
  method: 'lora' as const,
  rank: 4,
  alpha: 8,
  lr: 2e-3,
  batchSize: BATCH,
  maxSteps: STEPS,
  saveEvery: 50,
  warmupSteps: 10,
};
const est = await client.call('runs.estimate', { model, data, hparams });
if (est.refusal) throw new Error(`runs.estimate refused the run: ${est.refusal}`);
const image = join(src, imageName(0));
say(`lenslab bench:lag — data ${dataDir}`);
say(
  `model ${demo.model.name}; ${est.plan.trainSamples} train / ${est.plan.evalSamples} val samples; ${est.plan.totalSteps} LoRA steps of ${BATCH} (memory ${est.memory.summary})`,
);
say(`setup ${((performance.now() - t0) / 1000).toFixed(1)} s`);
await sleep(500);

// ------------------------------------------------------------------ (b) training window

const windows: Window[] = [];
let progressEvents = 0;
let finalStatus = 'running';
{
  let runId = -1;
  const finished = new Promise<string>((resolve) => {
    const off = client.on((event, p) => {
      if (p?.runId !== runId) return;
      if (event === 'runs.progress') progressEvents++;
      if (event === 'runs.status') {
        void client.call('runs.get', { id: runId }).catch(() => {}); // the renderer's store refreshes the row
        if (['completed', 'failed', 'cancelled', 'interrupted', 'paused'].includes(p.status)) {
          off();
          resolve(p.status);
        }
      }
    });
  });
  const w = startWindow('training');
  lastSeen = 'runs.start';
  const started = await client.call('runs.start', { name: 'bench-lag', model, data, hparams, evalMaxItems: 4 });
  runId = started.run.id;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), MAX_MS);
  });
  finalStatus = await Promise.race([finished, timeout]);
  clearTimeout(timer);
  const run = await client.call('runs.get', { id: runId });
  windows.push(endWindow(w, 'training', `run ${finalStatus} at step ${run.step}/${run.totalSteps}`));
  if (finalStatus === 'timeout') {
    await client.call('runs.cancel', { id: runId });
    finalStatus = `cancelled after ${MAX_MS / 1000} s`;
  }
}
await sleep(500);

// ------------------------------------------------------------------ (a) idle baseline, the same length

{
  const w = startWindow('idle');
  await sleep(windows[0].ms);
  windows.push(endWindow(w, 'idle (baseline)', 'backend + server + client, nothing running'));
}

// ------------------------------------------------------------------ (c) chat generation streaming

let chatTokens = 0;
if (!values['no-chat']) {
  const before = client.counts.get('chat.token') ?? 0;
  const w = startWindow('chat');
  lastSeen = 'chat.generate';
  const r = await client.call('chat.generate', {
    requestId: 'bench-lag',
    modelId: demo.model.id,
    image: { path: image },
    messages: [{ role: 'user', content: 'What colour is the shape?' }],
    options: { maxNewTokens: 32 },
    save: false,
  });
  chatTokens = (client.counts.get('chat.token') ?? 0) - before;
  windows.push(
    endWindow(
      w,
      'chat.generate',
      `${r.ids.length} tokens (model load incl.), first token ${r.firstTokenMs.toFixed(0)} ms`,
    ),
  );
}

// ------------------------------------------------------------------ report

const base = windows.find((w) => w.name.startsWith('idle'))!;
const f = (x: number) => x.toFixed(1).padStart(7);
say();
say(`event-loop delay, ms (monitorEventLoopDelay, resolution ${RESOLUTION_MS} ms; idle reads ~${RESOLUTION_MS})`);
say(
  `${'window'.padEnd(16)} ${'secs'.padStart(6)} ${'samples'.padStart(7)} ${'p50'.padStart(7)} ${'p99'.padStart(7)} ${'max'.padStart(7)}   ratio p50/p99/max vs idle`,
);
for (const w of windows) {
  const ratio =
    w === base
      ? '-'
      : `${(w.p50 / base.p50).toFixed(2)} / ${(w.p99 / base.p99).toFixed(2)} / ${(w.max / base.max).toFixed(2)}`;
  say(
    `${w.name.padEnd(16)} ${(w.ms / 1000).toFixed(1).padStart(6)} ${String(w.count).padStart(7)} ${f(w.p50)} ${f(w.p99)} ${f(w.max)}   ${ratio.padEnd(22)} ${w.note}`,
  );
}
const train = windows[0];
say();
say(
  `progress events seen by the WebSocket client: ${progressEvents} (run ${finalStatus}); chat.token events: ${chatTokens}`,
);
say(
  `target: under ${TARGET_MS} ms while training: p99 ${train.p99.toFixed(1)} ms ${train.p99 < TARGET_MS ? 'ok' : 'OVER'}, max ${train.max.toFixed(1)} ms ${train.max < TARGET_MS ? 'ok' : 'OVER'}`,
);
if (values.trace) {
  say(`stalls over ${TARGET_MS} ms (5 ms probe): ${stalls.length}`);
  for (const l of stalls) say(`  ${l}`);
}
say(`total ${((performance.now() - t0) / 1000).toFixed(1)} s`);

client.close();
await backend.ctx.chat.close();
await backend.shutdown();
await server.close();
backend.close();
if (!values.keep) rmSync(dataDir, { recursive: true, force: true });
process.exit(0);
