// Eval/score program: forward only, loss per sample, no update. Trainable parameters are inputs with the same names
// as in the train step (param.<name>), so a step executor can score with its current parameters.

import { Graph, type Value } from '../graph/builder';
import { stepNames, type ParamSpec, type StepProgram } from './train-step';

export interface ScoreResult {
  /** Loss per sample, shape [B] (or any shape the caller wants reported). */
  losses: Value;
  outputs?: Record<string, Value>;
}

export interface ScoreProgramOptions {
  params: readonly ParamSpec[];
  forward: (g: Graph, params: Readonly<Record<string, Value>>) => ScoreResult;
  opset?: number;
  name?: string;
}

export interface ScoreProgram extends Omit<StepProgram, 'kind'> {
  kind: 'score';
}

export function buildScore(o: ScoreProgramOptions): ScoreProgram {
  const g = new Graph(o.name ?? 'score', { opset: o.opset });
  const params: Record<string, Value> = {};
  for (const p of o.params) params[p.name] = g.input(stepNames.param(p.name), p.dtype ?? 'float32', p.shape);
  const before = new Set(g.inputs);
  const res = g.scope('fwd', () => o.forward(g, params));
  const dataInputs = g.inputs.filter((v) => !before.has(v)).map((v) => v.name);
  g.output(res.losses, 'losses');
  const extra: string[] = [];
  for (const [k, v] of Object.entries(res.outputs ?? {})) {
    g.output(v, k);
    extra.push(k);
  }
  return { kind: 'score', graph: g, params: o.params, dataInputs, extraOutputs: extra };
}
