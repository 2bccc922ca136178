// Loads every op family so their gradient and shape rules are registered. Add new family files here.
export * from './elementwise';
export * from './matmul';
export * from './shape';
export * from './activations';
export * from './softmax';
export * from './reduce';
export * from './indexing';
export * from './norm';
export * from './loss';
export * from './rotary';
export * from './attention';
export * from './conv';
export * from './quantized';
export { registerOp, getOp, registeredOps, type GradContext, type GradRule, type OpSpec } from './registry';
export { unbroadcast, sumAll, type Operand } from './util';
