/**
 * bitcrush's core library: everything that runs in Node and in the browser alike (no `node:`
 * imports). File access is passed in (`ByteSource`, `FileSystemLike`); the Node entry
 * (`src/node/index.ts`) adds the file system, the native/worker backends and `loadModel`.
 */

// model files and tokenizers
export * from './io/errors.js';
export * from './io/bytes.js';
export type { Tokenizer } from './io/tokenizer.js';
export { openModel, openTokenizer, findTokenizer } from './io/load.js';
export { Llama2cModel, parseLlama2cHeader } from './io/llama2c.js';
export { HfModel, parseHfConfig } from './io/hf.js';
export { Llama2cTokenizer } from './io/llama2c-tokenizer.js';
export { HfTokenizer } from './io/hf-tokenizer.js';
export * from './model/config.js';
export * from './model/weights.js';

// compute
export type { Backend } from './backend/types.js';
export { createReferenceBackend } from './backend/reference.js';
export { createWasmBackend, type WasmBackend, type WasmBackendOptions } from './backend/wasm.js';

// running and evaluating a model
export type { Linear } from './runtime/linear.js';
export { DenseLinear, denseLinears, type LinearFactory } from './runtime/dense.js';
export { LlamaModel, type ModelOptions, type LlamaWeights, type LayerWeights } from './runtime/model.js';
export type { LogitsWanted } from './runtime/forward.js';
export { Sampler, Rng, argmax, type SamplerOptions } from './runtime/sampler.js';
export { generate, type GenerateOptions, type GenerateStats } from './runtime/generate.js';
export { perplexity, perplexityOfText, negLogProb, type PerplexityOptions, type PerplexityResult } from './eval/perplexity.js';

// quantization: methods, packed formats, the block-by-block pipeline
export { methods, methodNames, isMethodName, getMethod, type MethodName } from './methods/registry.js';
export type { QuantMethod, LayerResult, LayerContext } from './quant/method.js';
export { formatIds, findFormat, getFormat, bitsPerWeight, packedBytes } from './formats/registry.js';
export type { WeightFormat, PackedTensor, FormatParams } from './formats/types.js';
export { PackedModel, isPackedModel } from './packed/reader.js';
export { planPackedModel, type PackedModelInput, type PackedFilePlan } from './packed/writer.js';
export { calibrationFromText, sampleWindows, type CalibrationOptions, type CalibrationSet } from './pipeline/calibration.js';
export { quantizeModel, type PipelineOptions, type PipelineResult } from './pipeline/quantize.js';
