// Chat templates come from downloaded folders, so they are untrusted programs: a loop over range(1e9) or two
// nested loops would otherwise abort V8 or spin the server's thread forever. They are parsed and rendered in a
// worker_thread with a V8 heap limit, and the calling thread waits for the answer synchronously (Atomics.wait on a
// shared flag, receiveMessageOnPort), so ChatTemplate.render stays a plain synchronous call for its many callers.
//
// Limits, checked inside the worker (so an overrun ends in a precise error within the time limit):
// - time: every 64 interpreter steps (expressions, statements, loop variable updates) the clock is read;
// - output: the characters the interpreter produces are counted as they are produced (every nesting level counts
//   them again, so the running budget is 4x the cap), and the result is capped;
// - range(): at most 100000 items, as Jinja's sandbox (transformers' ImmutableSandboxedEnvironment) refuses more;
// - memory: the worker's V8 heap is capped; running out ends the worker, not the process.
// A worker that does not answer in time (out of memory, stuck in native code) is terminated and a new one is
// started for the next call. The limits count from the request, never the worker's start-up (loading the template
// engine takes seconds on a loaded machine, which failed renders of ordinary templates).
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';

export interface TemplateLimits {
  /** wall-clock time for one parse or render, ms */
  timeMs: number;
  /** characters of rendered text */
  maxOutputChars: number;
  /** the worker's V8 old-generation heap, MiB */
  memoryMb: number;
}

export const DEFAULT_TEMPLATE_LIMITS: TemplateLimits = { timeMs: 2000, maxOutputChars: 4_000_000, memoryMb: 256 };

export type SandboxReply =
  { ok: true; text?: string } | { ok: false; kind: 'parse' | 'render' | 'limit'; message: string };

// Plain JS run with eval: true, so it needs no build entry of its own and works the same from source and bundled.
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { port, flag, jinjaUrl, startDelayMs } = workerData;
const MAX_RANGE = 100000;
class LimitError extends Error {}
const ready = () => {
  Atomics.store(flag, 1, 1);
  Atomics.notify(flag, 1);
};
new Promise((res) => setTimeout(res, startDelayMs)).then(() => import(jinjaUrl)).then(({ Template, Interpreter, Environment }) => {
  let deadline = Infinity;
  let budget = Infinity;
  let steps = 0;
  const tick = () => {
    if ((++steps & 63) === 0 && Date.now() > deadline) throw new LimitError('time');
  };
  // {% break %} / {% continue %}: the engine drops what the iteration wrote before them (Jinja keeps it). A loop
  // body's block returns that text instead and a break is replayed when the loop asks for its next iteration.
  const STATEMENTS = new Set(['Program', 'Set', 'If', 'For', 'Macro', 'CallStatement', 'Break', 'Continue', 'FilterStatement', 'Comment']);
  const forBodies = new WeakSet();
  const pendingBreak = [];
  const isControl = (e) => e instanceof Error && (e.constructor.name === 'BreakControl' || e.constructor.name === 'ContinueControl');
  const evaluateBlock = Interpreter.prototype.evaluateBlock;
  const StringValue = evaluateBlock.call(new Interpreter(new Environment()), [], new Environment()).constructor;
  Interpreter.prototype.evaluateBlock = function (statements, environment) {
    const loopBody = forBodies.has(statements);
    const top = pendingBreak.length - 1;
    if (loopBody && pendingBreak[top]) {
      const e = pendingBreak[top];
      pendingBreak[top] = null;
      throw e;
    }
    let result = '';
    for (const statement of statements) {
      let v;
      try {
        v = this.evaluate(statement, environment);
      } catch (e) {
        if (!isControl(e)) throw e;
        const partial = result + (e.partialOutput || '');
        if (!loopBody) {
          e.partialOutput = partial;
          throw e;
        }
        e.partialOutput = '';
        if (e.constructor.name === 'BreakControl') pendingBreak[top] = e;
        return new StringValue(partial);
      }
      // an expression that is None prints "None" in Jinja; statements ({% set %}, {% if %}, ...) print nothing
      if (v.type === 'NullValue') {
        if (!STATEMENTS.has(statement.type)) result += 'None';
      } else if (v.type !== 'UndefinedValue') result += v.toString();
    }
    return new StringValue(result);
  };
  const evaluate = Interpreter.prototype.evaluate;
  Interpreter.prototype.evaluate = function (statement, environment) {
    tick();
    if (statement && statement.type === 'CallExpression') {
      try {
        return evaluate.call(this, statement, environment);
      } catch (e) {
        // name what was called: a Python method or global the engine does not have
        if (e instanceof Error && !e.calleeNamed && /Cannot call something that is not a function/.test(e.message)) {
          const c = statement.callee;
          const name = c && c.type === 'MemberExpression' && c.property ? c.property.value : c && c.value;
          e.message = 'unsupported Jinja feature: the method or function "' + name + '"';
          e.calleeNamed = true;
        }
        throw e;
      }
    }
    if (statement && statement.type === 'For') {
      forBodies.add(statement.body);
      pendingBreak.push(null);
      try {
        return evaluate.call(this, statement, environment);
      } finally {
        pendingBreak.pop();
      }
    }
    const r = evaluate.call(this, statement, environment);
    if (r && r.type === 'StringValue' && typeof r.value === 'string') {
      budget -= r.value.length;
      if (budget < 0) throw new LimitError('output');
    }
    return r;
  };
  const range = (start, stop, step = 1) => {
    if (stop === undefined) { stop = start; start = 0; }
    if (![start, stop, step].every((x) => typeof x === 'number' && Number.isFinite(x))) throw new Error('range() takes numbers');
    if (step === 0) throw new Error('range() step must not be zero');
    const n = Math.max(0, Math.ceil((stop - start) / step));
    if (n > MAX_RANGE) throw new Error('range too big: the sandbox blocks ranges larger than ' + MAX_RANGE + ' items (as Jinja\\'s sandbox in transformers does), got ' + n);
    const out = [];
    for (let i = 0; i < n; i++) out.push(start + i * step);
    return out;
  };
  // the engine's own range() is replaced wherever it is declared as a global
  // Python prints True / False / None where JS would print true / false / null
  const probe = new Environment();
  probe.set('b', true);
  probe.set('n', null);
  Object.getPrototypeOf(probe.lookupVariable('b')).toString = function () { return this.value ? 'True' : 'False'; };
  Object.getPrototypeOf(probe.lookupVariable('n')).toString = function () { return 'None'; };
  // loops set their variables on every iteration, even when their body is empty
  const setVariable = Environment.prototype.setVariable;
  Environment.prototype.setVariable = function (name, value) {
    tick();
    return setVariable.call(this, name, value);
  };
  const set = Environment.prototype.set;
  Environment.prototype.set = function (name, value) {
    return set.call(this, name, name === 'range' && typeof value === 'function' ? range : value);
  };
  const cache = new Map();
  const compile = (source) => {
    let t = cache.get(source);
    if (!t) {
      t = new Template(source);
      cache.set(source, t);
      if (cache.size > 16) cache.delete(cache.keys().next().value);
    }
    return t;
  };
  const answer = (reply) => {
    port.postMessage(reply);
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
  };
  port.on('message', (req) => {
    // tests: a worker starved of the CPU (it neither renders nor checks its clock)
    if (req.stallMs) for (const end = Date.now() + req.stallMs; Date.now() < end; );
    const limits = req.limits;
    deadline = Date.now() + limits.timeMs;
    budget = limits.maxOutputChars * 4;
    steps = 0;
    let stage = 'parse';
    try {
      const t = compile(req.source);
      if (req.op === 'parse') return answer({ ok: true });
      stage = 'render';
      const text = t.render(req.items);
      if (typeof text !== 'string') throw new Error('the template produced no text');
      if (text.length > limits.maxOutputChars) throw new LimitError('output');
      answer({ ok: true, text });
    } catch (e) {
      if (e instanceof LimitError) {
        answer({ ok: false, kind: 'limit', message: e.message === 'time'
          ? 'stopped after ' + limits.timeMs + ' ms (time limit): a loop that does not end, or one far too long'
          : 'stopped: the output exceeds ' + limits.maxOutputChars + ' characters (output limit)' });
      } else if (e instanceof RangeError && /Invalid (string|array) length|Maximum call stack/.test(e.message)) {
        answer({ ok: false, kind: 'limit', message: 'stopped: ' + e.message + ' (size limit)' });
      } else {
        answer({ ok: false, kind: stage, message: e instanceof Error ? e.message : String(e) });
      }
    } finally {
      deadline = Infinity;
      budget = Infinity;
    }
  });
  ready();
}, (e) => {
  port.on('message', () => {
    port.postMessage({ ok: false, kind: 'render', message: 'the template engine did not load: ' + (e && e.message) });
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
  });
  ready();
});
`;

interface Running {
  worker: Worker;
  port: MessagePort;
  flag: Int32Array;
  memoryMb: number;
}

let running: Running | null = null;
/** Worker starts and restarts, for tests. */
export const sandboxStats = { starts: 0, kills: 0 };
/** For tests: how long a new worker waits before loading the template engine (a slow start on a loaded machine). */
export const sandboxTestHooks = { startDelayMs: 0, /** the next request stalls the worker this long */ stallNextMs: 0 };
// Starting a worker and loading the template engine takes a few hundred ms on a quiet machine and many seconds on a
// loaded one; that is not the template's time, so it has its own, generous wait.
const STARTUP_WAIT_MS = 60_000;

function start(memoryMb: number): Running {
  const { port1, port2 } = new MessageChannel();
  // [0]: an answer is ready; [1]: the template engine is loaded
  const flag = new Int32Array(new SharedArrayBuffer(8));
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: {
      port: port2,
      flag,
      jinjaUrl: import.meta.resolve('@huggingface/jinja'),
      startDelayMs: sandboxTestHooks.startDelayMs,
    },
    transferList: [port2],
    resourceLimits: { maxOldGenerationSizeMb: memoryMb, maxYoungGenerationSizeMb: 16, stackSizeMb: 4 },
    stdout: true,
    stderr: true,
  });
  // an out-of-memory end is reported to the waiting call as a missing answer; nothing else to do here
  worker.on('error', () => {});
  worker.unref();
  port1.unref();
  sandboxStats.starts++;
  return { worker, port: port1, flag, memoryMb };
}

function kill(r: Running): void {
  sandboxStats.kills++;
  if (running === r) running = null;
  r.port.close();
  void r.worker.terminate();
}

/** Parse (op 'parse') or render a template in the sandbox worker, synchronously. */
export function sandboxCall(
  op: 'parse' | 'render',
  source: string,
  items: Record<string, unknown>,
  limits: TemplateLimits = DEFAULT_TEMPLATE_LIMITS,
): SandboxReply {
  if (running && running.memoryMb !== limits.memoryMb) kill(running);
  const r = (running ??= start(limits.memoryMb));
  if (Atomics.load(r.flag, 1) === 0 && Atomics.wait(r.flag, 1, 0, STARTUP_WAIT_MS) === 'timed-out') {
    kill(r);
    return {
      ok: false,
      kind: 'limit',
      message: `stopped: the template sandbox did not start within ${STARTUP_WAIT_MS / 1000} s`,
    };
  }
  Atomics.store(r.flag, 0, 0);
  try {
    const stallMs = sandboxTestHooks.stallNextMs;
    sandboxTestHooks.stallNextMs = 0;
    r.port.postMessage({ op, source, items, limits, stallMs });
  } catch (e) {
    return {
      ok: false,
      kind: 'render',
      message: `the template's variables cannot be passed to it (${(e as Error).message})`,
    };
  }
  // the worker checks the time itself; the extra wait covers a loaded machine
  const waitMs = limits.timeMs + 3000;
  Atomics.wait(r.flag, 0, 0, waitMs);
  const got = receiveMessageOnPort(r.port);
  if (!got) {
    kill(r);
    return {
      ok: false,
      kind: 'limit',
      message: `stopped: no answer within ${waitMs} ms, or the ${limits.memoryMb} MiB memory limit was reached`,
    };
  }
  return got.message as SandboxReply;
}

/** Stop the worker (it never keeps the process alive; this is for tests and shutdown). */
export function stopTemplateSandbox(): void {
  if (running) {
    const r = running;
    running = null;
    r.port.close();
    void r.worker.terminate();
  }
}
