/**
 * Hugging Face directories that are already quantized (config.json's `quantization_config`):
 * which importer reads them, and the bitcrush packed file they become. The packed file holds
 * exactly the checkpoint's numbers, so running it (in memory, `openQuantizedHf`) or writing it
 * (`bitcrush convert`) is the same model on the same packed kernels.
 */
import { BufferSource, readText, type FileSystemLike } from '../io/bytes.js';
import { check, InputError } from '../io/errors.js';
import { parseHfConfig, parseJson, quantizationConfig } from '../io/hf.js';
import { planPackedModel, type PackedFilePlan } from '../packed/writer.js';
import { PackedModel } from '../packed/reader.js';
import { gptqImporter, parseGptqConfig } from './gptq-import.js';
import { aqlmImporter, parseAqlmConfig } from './aqlm.js';
import { QuantizedHfModel, type LinearImporter } from './quantized-source.js';

export const IMPORTED_QUANT_METHODS = ['gptq', 'aqlm'] as const;

/**
 * The packed file a quantized directory is, without requantizing: `source` is recorded in the
 * header (the model directory relative to where the file goes, for its tokenizer).
 */
export function quantizedHfPlan(dir: string, fs: FileSystemLike, source: { model: string }): PackedFilePlan {
  const q = quantizationConfig(dir, fs);
  check(q !== undefined, dir, 'config.json has no quantization_config (a float model: use `bitcrush quantize`)');
  let importer: LinearImporter;
  if (q.method === 'gptq') importer = gptqImporter(parseGptqConfig(q.file, q.qc));
  else if (q.method === 'aqlm') importer = aqlmImporter(parseAqlmConfig(q.file, q.qc));
  else throw new InputError(q.file, `quantization_config.quant_method ${JSON.stringify(q.method)} is not supported (supported: ${IMPORTED_QUANT_METHODS.join(', ')})`);
  const config = parseHfConfig(q.file, parseJson(q.file, readText(fs.open(q.file))));
  const model = new QuantizedHfModel(dir, fs, config, importer);
  return planPackedModel({
    config: model.config,
    method: { name: q.method, options: { imported: { from: 'huggingface', quantization_config: q.qc }, source } },
    source: model,
    packed: model.packedTensors(),
  });
}

/** A quantized directory opened as the packed model it converts to (built in memory). */
export function openQuantizedHf(dir: string, fs: FileSystemLike): PackedModel {
  const plan = quantizedHfPlan(dir, fs, { model: '.' });
  const bytes = new Uint8Array(plan.size);
  let at = 0;
  for (const chunk of plan.chunks()) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return new PackedModel(new BufferSource(dir, bytes));
}
