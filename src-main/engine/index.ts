// Lenslab engine public API: build ONNX graphs in TypeScript, differentiate them, and run them with onnxruntime-node.
// No Electron, no database: plain Node.

export {
  Graph,
  Value,
  attr,
  makeTensorData,
  type Dim,
  type Shape,
  type Node,
  type Attr,
  type AttrInput,
  type TensorData,
  type ExternalRef,
  type LazyRef,
  inMemoryData,
  type OpOptions,
  type GraphOptions,
} from './graph/builder';
export { registerShapeRule, getShapeRule, broadcastShapes, type ShapeRule, type OutType } from './graph/shape';
export type { DType, TypedArray } from './graph/dtype';
export {
  serializeModel,
  saveModel,
  irVersionFor,
  type SerializeOptions,
  type SerializedModel,
} from './graph/serialize';
export { gradients, onesLike, zerosLike, type GradientOptions } from './autodiff';
export * as ops from './ops';
export { adamwScalars, adamwUpdate, ADAMW_DEFAULTS, type AdamWConfig } from './optim/adamw';
export { clipByGlobalNorm, globalNorm } from './optim/clip';
export { lrAt, lrFactor, lrGraph, type Schedule } from './optim/schedules';
export {
  buildTrainStep,
  buildGradStep,
  buildApplyStep,
  stepNames,
  type ParamSpec,
  type ForwardBuilder,
  type ForwardResult,
  type TrainProgramOptions,
  type StepProgram,
} from './programs/train-step';
export { buildScore, type ScoreProgramOptions, type ScoreResult, type ScoreProgram } from './programs/score';
export { Session, availableProviders, type Provider, type SessionOptions } from './runtime/session';
export { tensor, scalarTensor, toNumbers, toFloat64, ort } from './runtime/tensor';
export {
  StepExecutor,
  type StepExecutorOptions,
  type StepResult,
  type ExecutorState,
  type Feeds,
} from './runtime/step-executor';
export {
  compileCached,
  contentHash,
  stableStringify,
  modelSource,
  ENGINE_GRAPH_VERSION,
  evictGraphCache,
  listGraphCache,
  graphCacheCap,
  parseByteSize,
  type CachedModel,
  type CompileCachedOptions,
  type EvictionReport,
} from './runtime/cache';
