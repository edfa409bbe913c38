/**
 * `quantize` flags for the tensors outside the blocks (src/pipeline/whole-model.ts): the output
 * head and the token embedding, each in low bits or kept float (16 or 32). The defaults are the
 * measured choice of docs/quantization.md ("Embedding and head").
 */
import { InvalidArgumentError, type Command } from 'commander';
import { UsageError } from '../io/errors.js';
import { getMethod } from '../methods/registry.js';
import type { TensorQuant, WholeModelOptions } from '../pipeline/whole-model.js';
import { intArg } from './options.js';

/** Bits the grid formats store; 16 and 32 keep the tensor float. */
const LOW_BITS = [2, 3, 4, 8];
const FLOAT_BITS = [16, 32];
/** Measured on bench-llama and stories260K (docs/quantization.md). */
export const DEFAULT_HEAD_BITS = 4;
export const DEFAULT_EMBED_BITS = 4;
export const DEFAULT_WHOLE_GROUP = 128;
const HEAD_METHODS = ['gptq', 'rtn'];

export interface WholeFlags {
  headBits: number;
  headMethod?: string;
  headGroupSize: number;
  embedBits: number;
  embedGroupSize: number;
}

function bitsArg(value: string): number {
  const n = intArg(2, 32)(value);
  if (!LOW_BITS.includes(n) && !FLOAT_BITS.includes(n)) throw new InvalidArgumentError(`expected one of ${[...LOW_BITS, ...FLOAT_BITS].join(', ')} (16/32 = keep float)`);
  return n;
}

export function addWholeFlags(cmd: Command): void {
  cmd
    .option('--head-bits <n>', `output head bits (${LOW_BITS.join(', ')}; 16 or 32 = keep float)`, bitsArg, DEFAULT_HEAD_BITS)
    .option('--head-method <name>', `head quantizer: ${HEAD_METHODS.join(' or ')}, calibrated on the final norm's output (default: gptq with --calib, else rtn)`)
    .option('--head-group-size <n>', 'columns per group of the head', intArg(1), DEFAULT_WHOLE_GROUP)
    .option('--embed-bits <n>', `token embedding bits, RTN row groups (${LOW_BITS.join(', ')}; 16 or 32 = keep float); a tied model with equal head and embedding grids stores one tensor for both`, bitsArg, DEFAULT_EMBED_BITS)
    .option('--embed-group-size <n>', 'columns per group of the embedding rows', intArg(1), DEFAULT_WHOLE_GROUP);
}

/** The pipeline's options from the flags; `haveCalibration`: --calib was given. */
export function wholeOptions(f: WholeFlags, haveCalibration: boolean): WholeModelOptions {
  const quant = (name: string, bits: number, groupSize: number): TensorQuant | undefined =>
    FLOAT_BITS.includes(bits) ? undefined : (({ method, opts }) => ({ method, options: opts }))(getMethod(name, { bits, groupSize }));
  const headMethod = f.headMethod ?? (haveCalibration ? 'gptq' : 'rtn');
  if (!HEAD_METHODS.includes(headMethod)) throw new UsageError(`--head-method ${headMethod}: expected ${HEAD_METHODS.join(' or ')}`);
  if (headMethod === 'gptq' && !haveCalibration && !FLOAT_BITS.includes(f.headBits)) throw new UsageError('--head-method gptq needs calibration data: pass --calib <text file>');
  return { head: quant(headMethod, f.headBits, f.headGroupSize), embed: quant('rtn', f.embedBits, f.embedGroupSize) };
}

/** The header's record of the choice (provenance, and part of the resume hash). */
export function describeWhole(o: WholeModelOptions): Record<string, unknown> {
  const of = (q: TensorQuant | undefined) => (q === undefined ? 'float' : { method: q.method.name, ...(q.options as object) });
  return { head: of(o.head), embed: of(o.embed) };
}
